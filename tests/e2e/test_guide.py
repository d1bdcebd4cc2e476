"""docs/negotiate.md, run as written: its bash blocks in order, in one shell, in a fresh
directory, with the test's Python environment and two free ports instead of 8081 and 8082.
Whatever the page's last block did not stop is killed with the shell's process group."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port
from tests.processes import REPO

GUIDE = REPO / "docs" / "negotiate.md"
ACTIVATE = "source .venv/bin/activate"
PORTS = "export HOSPITAL_PORT=8081 RESEARCHER_PORT=8082"


def _script(hospital_port: int, researcher_port: int) -> str:
    text = GUIDE.read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    script = "\n".join(blocks)
    # The two lines that are the reader's own: their virtual environment and ports.
    for line in (ACTIVATE, PORTS):
        assert script.count(f"\n{line}\n") + script.startswith(f"{line}\n") == 1, line
    script = script.replace(ACTIVATE, f'export PATH="{Path(sys.executable).parent}:$PATH"')
    return script.replace(
        PORTS, f"export HOSPITAL_PORT={hospital_port} RESEARCHER_PORT={researcher_port}"
    )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(pgid):
            return
        os.killpg(pgid, sig)
        deadline = time.monotonic() + 15
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)


def _run_guide(directory: Path) -> tuple[int, str, bool]:
    """Run guide.sh in ``directory``: its exit code, its output with the connectors' logs,
    and whether it left processes running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHEMS_")}
    # This checkout's code, whatever the environment's `phems-connector` was installed from.
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "guide.sh"],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        # A connector's job pool helpers (the worker, multiprocessing's resource tracker) end
        # a moment after the connector itself, which is all `kill ... && wait` waits for.
        deadline = time.monotonic() + 5
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _group_alive(proc.pid)
        _kill_group(proc.pid)
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted((directory / "walkthrough").glob("*.log"))
    )
    return proc.returncode, f"{out}\n{logs}", left


def test_the_negotiation_guide_runs_as_written_and_again(tmp_path: Path) -> None:
    """Run twice in the same directory: the second run reuses `walkthrough/` (the authority,
    the connectors' keys and data) and gives the same results."""
    hp, rp = free_port(), free_port()
    while rp == hp:
        rp = free_port()
    (tmp_path / "guide.sh").write_text(_script(hp, rp))
    for run in ("first", "second"):
        code, out, left = _run_guide(tmp_path)
        assert code == 0, f"{run} run:\n{out}"
        assert not left, f"{run} run: the guide's last block left processes running"
        for expected in (
            "negotiation FINALIZED",
            '"state": "TERMINATED"',
            "no valid data permit",
            f"valid: signed by provider did:web:127.0.0.1%3A{hp} and consumer "
            f"did:web:127.0.0.1%3A{rp}",
            "transfer STARTED",
            "MeasureReport complete",
            '"offer-with-approval"',
            "approved negotiation FINALIZED",
            "audit log intact",
            "negotiation.approved",
        ):
            assert expected in out, f"{run} run: {expected!r} not in:\n{out}"


def test_walkthrough_directory_is_ignored_by_git() -> None:
    """It holds the authority's and the connectors' private keys."""
    assert "walkthrough/" in (REPO / ".gitignore").read_text().splitlines()
