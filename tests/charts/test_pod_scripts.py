"""The Python the chart runs in pods works: the helm test check and the wait-for-database init
container, run here against loopback servers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.charts.conftest import CHART, Manifest, find

MINIMAL = CHART / "ci" / "minimal-values.yaml"


@contextmanager
def serve(routes: dict[str, tuple[int, bytes]]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = routes.get(self.path, (404, b"{}"))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def helm_test_script(rendered: Callable[[Path], list[Manifest]]) -> tuple[str, str]:
    (pod,) = find(rendered(MINIMAL), "Pod")
    script = pod["spec"]["containers"][0]["command"][-1]
    base = script.split('base = "', 1)[1].split('"', 1)[0]
    return script, base


DSPACE_VERSION = json.dumps(
    {"protocolVersions": [{"version": "2025-1", "path": "/dsp/2025-1", "binding": "HTTPS"}]}
).encode()


@pytest.mark.parametrize(
    ("routes", "ok"),
    [
        ({"/readyz": (200, b"{}"), "/.well-known/dspace-version": (200, DSPACE_VERSION)}, True),
        (
            {
                "/readyz": (200, b"{}"),
                "/.well-known/dspace-version": (200, b'{"protocolVersions": []}'),
            },
            False,
        ),
        ({"/readyz": (200, b"{}")}, False),
    ],
)
def test_helm_test_pod_script(
    rendered: Callable[[Path], list[Manifest]], routes: dict[str, tuple[int, bytes]], ok: bool
) -> None:
    script, base = helm_test_script(rendered)
    with serve(routes) as url:
        done = subprocess.run(
            [sys.executable, "-c", script.replace(base, url)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        if ok:
            assert done.stdout.startswith("ok: ready, DSP 2025-1")


def test_wait_for_database_script(rendered: Callable[[Path], list[Manifest]]) -> None:
    (deployment,) = find(rendered(MINIMAL), "Deployment")
    script = deployment["spec"]["template"]["spec"]["initContainers"][0]["command"][-1]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        env = {**os.environ, "PHEMS_DATABASE_URL": f"postgresql+asyncpg://u:p@127.0.0.1:{port}/db"}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
