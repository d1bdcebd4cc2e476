"""The demo's processes: connectors (``phems-connector serve``) and, where one is installed, a
FHIR REST server (sekmet-fhir), each on a free loopback port, logged to a file, stopped on the
way out. Nothing is downloaded: a FHIR server that is not installed is not used."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

import connector

SOURCE_ROOT = Path(connector.__file__).resolve().parent.parent  # what the children import
LOAD_FIRST = ("Organization", "Location", "Practitioner", "PractitionerRole", "Patient")
CHUNK = 250


class DemoError(Exception):
    """A step of the demo failed; the message says which and where its log is."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _spawn(name: str, args: list[str], env: Mapping[str, str], cwd: Path, url: str) -> Process:
    log = cwd / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
        )  # fmt: skip
    return Process(name, url, proc, log)


def _wait(process: Process, probe: str, deadline_s: float = 90) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise DemoError(
                f"{process.name} exited with {process.proc.returncode} (log {process.log}):\n"
                + process.tail()
            )
        try:
            if httpx.get(probe, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.stop()
    raise DemoError(f"{process.name} did not start in {deadline_s:g} s (log {process.log})")


def start_connector(name: str, data_dir: Path, port: int, env: Mapping[str, str]) -> Process:
    """``phems-connector serve --with-sample-data`` on 127.0.0.1:``port`` (SQLite in
    ``data_dir``), once healthy."""
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    full = {k: v for k, v in os.environ.items() if not k.startswith("PHEMS_")}
    full |= {
        "PHEMS_DATA_DIR": str(data_dir),
        "PHEMS_HOST": "127.0.0.1",
        "PHEMS_PORT": str(port),
        "PHEMS_PUBLIC_URL": url,
        "PHEMS_LOG_LEVEL": "WARNING",
        "PHEMS_OUTBOX_POLL_SECONDS": "0.1",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])
        ),
        **env,
    }
    args = [sys.executable, "-m", "connector", "serve", "--with-sample-data"]
    process = _spawn(name, args, full, data_dir, url)
    _wait(process, url + "/healthz")
    return process


def find_sekmet(given: Path | None = None) -> Path | None:
    """The ``sekmet`` executable: given, on PATH, beside this Python, or where the tests
    install it (``build/sekmet-venv``); None when there is none."""
    candidates = [
        given,
        Path(found) if (found := shutil.which("sekmet")) else None,
        Path(sys.executable).parent / "sekmet",
        SOURCE_ROOT / "build" / "sekmet-venv" / "bin" / "sekmet",
    ]
    return next((c for c in candidates if c is not None and c.is_file()), None)


def start_fhir_server(exe: Path, workdir: Path, port: int) -> Process:
    """sekmet-fhir on 127.0.0.1:``port`` without authentication, once it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}/fhir"
    config = {
        "host": "127.0.0.1",
        "port": port,
        "base_url": base,
        "data_dir": str(workdir / "data"),
        "simulator": {"enabled": False, "delay_seconds": 0.2},
        "server_auth": {"types": ["none"]},
    }
    (workdir / "sekmet.yaml").write_text(json.dumps(config))  # JSON is YAML
    env = {**os.environ, "SEKMET_CONFIG": str(workdir / "sekmet.yaml")}
    process = _spawn("fhir-server", [str(exe), "serve"], env, workdir, base)
    _wait(process, base + "/metadata")
    return process


def load_fhir(base_url: str, directory: Path) -> int:
    """PUT every resource of a Bulk NDJSON directory into the server (keeping its id), in
    transaction Bundles, referenced types first; the number of resources."""
    present = sorted({p.name.split(".")[0] for p in directory.glob("*.ndjson")})
    order = [t for t in LOAD_FIRST if t in present] + [t for t in present if t not in LOAD_FIRST]
    loaded = 0
    with httpx.Client(timeout=120) as http:
        for rtype in order:
            resources = [
                json.loads(line)
                for path in sorted(directory.glob(f"{rtype}.*ndjson"))
                for line in path.read_text().splitlines()
                if line.strip()
            ]
            for start in range(0, len(resources), CHUNK):
                entries = [
                    {
                        "fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}",
                        "resource": r,
                        "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                    }
                    for r in resources[start : start + CHUNK]
                ]
                bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
                response = http.post(
                    base_url, json=bundle, headers={"Content-Type": "application/fhir+json"}
                )
                if response.status_code != 200:
                    raise DemoError(f"loading {rtype} into {base_url}: HTTP {response.status_code}")
            loaded += len(resources)
    return loaded
