"""Every file a connector creates in its data directory is owner-only from the start (issue 18,
finding 10): the database and SQLite's WAL and SHM files, the management API key, the keys,
the audit checkpoints and the sample data; files an older version left wider are narrowed.
A real `serve --with-sample-data` process under the usual umask 022."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.e2e.conftest import dataset
from tests.processes import start_connector, stop


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
        for p in [root, *root.rglob("*")]
        if not p.name.startswith("connector-")  # the test harness's own log file
    }


def test_every_file_of_a_running_connector_is_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "phems.db").touch(mode=0o644)  # as an older version left it
    (data / "phems.db").chmod(0o644)
    old = os.umask(0o022)
    try:
        c = start_connector(data, free_port(), args=("--with-sample-data",))
    finally:
        os.umask(old)
    try:
        key = {"X-Api-Key": c.api_key}
        r = httpx.post(c.url + "/management/datasets", json=dataset("modes"), headers=key)
        assert r.status_code == 201, r.text
        modes = _modes(data)
        assert {"phems.db-wal", "phems.db-shm", "management-api-key", "keys/signing.jwk"} <= set(
            modes
        )
        assert any(name.startswith("fhir/Patient.") for name in modes)
    finally:
        stop(c.proc)
    modes = _modes(data)
    assert "audit-checkpoints.jsonl" in modes
    wide = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert wide == {}
