"""A real third-party FHIR server for the tests and the benchmark: sekmet-fhir, in its own venv.

``ensure_sekmet()`` installs ``sekmet-fhir==0.1.1`` into ``build/sekmet-venv`` (reused when it is
there and importable); ``SekmetServer`` writes a YAML config, starts ``sekmet serve`` on
127.0.0.1, waits for ``/fhir/metadata`` and can be killed and restarted on the same data.
``load_ndjson`` loads a Bulk NDJSON directory with one transaction Bundle per chunk of a type:
sekmet resolves conditional references (``Practitioner?identifier=...``) only inside
transactions, and only against resources already stored, so the referenced types go first.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[3]
SEKMET_SPEC = "sekmet-fhir==0.1.1"
VENV = REPO / "build" / "sekmet-venv"
LOAD_FIRST = ("Organization", "Location", "Practitioner", "PractitionerRole", "Patient")
CHUNK = 250


def ensure_sekmet() -> Path:
    """Path of the ``sekmet`` executable, installing it on first use."""
    python, exe = VENV / "bin" / "python", VENV / "bin" / "sekmet"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with (VENV.parent / "sekmet-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions must not build it at once
        if exe.exists() and _importable(python):
            return exe
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", SEKMET_SPEC],
            check=True,
            timeout=900,
        )
        if not _importable(python):
            raise RuntimeError(f"{SEKMET_SPEC} installed into {VENV} but does not import")
        return exe


def _importable(python: Path) -> bool:
    check = (
        "import importlib.metadata as m, sekmet.main; assert m.version('sekmet-fhir') == '0.1.1'"
    )
    return python.exists() and subprocess.run([str(python), "-c", check]).returncode == 0


class SekmetServer:
    def __init__(
        self,
        exe: Path,
        workdir: Path,
        port: int,
        *,
        server_auth: dict[str, Any] | None = None,
        log_inbound: bool = False,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """``tls``: (certificate, key, CA bundle that verifies the certificate)."""
        self.exe = exe
        self.workdir = workdir
        self.port = port
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/fhir"
        self.ca_bundle = tls[2] if tls else None
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "sekmet.yaml"
        self.log = workdir / "sekmet.log"
        config = {
            "host": "127.0.0.1",
            "port": port,
            "base_url": self.base_url,
            "data_dir": str(workdir / "data"),
            # delay_seconds also paces $export jobs (min(1, delay)): keep exports quick.
            "simulator": {"enabled": False, "delay_seconds": 0.2},
            "log_inbound": log_inbound,
            "server_auth": server_auth or {"types": ["none"]},
        }
        if tls:
            config |= {"tls_certfile": str(tls[0]), "tls_keyfile": str(tls[1])}
        # JSON is YAML: no YAML writer needed.
        self.config.write_text(json.dumps(config, indent=2))

    def start(self, deadline_seconds: float = 60.0) -> None:
        env = {**os.environ, "SEKMET_CONFIG": str(self.config)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.exe), "serve"],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        verify: ssl.SSLContext | bool = True
        if self.ca_bundle:
            verify = ssl.create_default_context(cafile=str(self.ca_bundle))
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sekmet exited with {self.process.returncode}:\n{self.tail()}")
            try:
                metadata = httpx.get(f"{self.base_url}/metadata", timeout=2, verify=verify)
                if metadata.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sekmet not ready after {deadline_seconds} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: the server dies mid-whatever, like a crashed or OOM-killed server."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        self.process = None

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def load_ndjson(
        self, directory: Path, *, types: Iterable[str] | None = None, token: str | None = None
    ) -> dict[str, int]:
        """PUT every resource (keeping its id) in transaction Bundles; returns counts per type."""
        present = sorted(p.name.split(".")[0] for p in directory.glob("*.ndjson"))
        present = [t for t in present if t[0].isupper()]
        wanted = set(types) if types is not None else set(present)
        order = [t for t in LOAD_FIRST if t in present] + [
            t for t in present if t not in LOAD_FIRST
        ]
        headers = {"Content-Type": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        loaded: dict[str, int] = {}
        with httpx.Client(timeout=120) as client:
            for rtype in (t for t in order if t in wanted):
                resources = [
                    json.loads(line)
                    for path in sorted(directory.glob(f"{rtype}.*ndjson"))
                    for line in path.read_text().splitlines()
                    if line.strip()
                ]
                for start in range(0, len(resources), CHUNK):
                    entries = [
                        {
                            "fullUrl": f"{self.base_url}/{r['resourceType']}/{r['id']}",
                            "resource": r,
                            "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                        }
                        for r in resources[start : start + CHUNK]
                    ]
                    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
                    resp = client.post(self.base_url, json=bundle, headers=headers)
                    if resp.status_code != 200:
                        raise RuntimeError(f"loading {rtype}: {resp.status_code} {resp.text[:500]}")
                loaded[rtype] = len(resources)
        return loaded
