"""Real connector processes on loopback for end-to-end tests (started and always stopped)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


@dataclass
class ConnectorProcess:
    url: str
    did: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def api_key(self) -> str:
        return (self.data_dir / "management-api-key").read_text().strip()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown (durability tests)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def connector_env(
    data_dir: Path, port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHEMS_")}
    env.update(
        {
            "PHEMS_DATA_DIR": str(data_dir),
            "PHEMS_HOST": "127.0.0.1",
            "PHEMS_PORT": str(port),
            "PHEMS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PHEMS_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update(extra or {})
    return env


def wait_until_healthy(
    url: str, proc: subprocess.Popen[bytes], log: Path, deadline_s: float = 60
) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"connector exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"connector at {url} not healthy in {deadline_s}s:\n{log.read_text()}")


def start_connector(
    data_dir: Path,
    port: int,
    extra_env: Mapping[str, str] | None = None,
    *,
    args: tuple[str, ...] = (),
) -> ConnectorProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = connector_env(data_dir, port, extra_env)
    log_path = data_dir / f"connector-{port}.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", "serve", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(data_dir),
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, log_path)
    except BaseException:
        stop(proc)
        raise
    did = httpx.get(url + "/.well-known/did.json", timeout=5).json()["id"]
    return ConnectorProcess(url, did, data_dir, env, proc, log_path)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def running_connector(
    data_dir: Path, port: int, extra_env: Mapping[str, str] | None = None
) -> Iterator[ConnectorProcess]:
    connector = start_connector(data_dir, port, extra_env)
    try:
        yield connector
    finally:
        stop(connector.proc)
