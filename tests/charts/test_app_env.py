"""End to end without a cluster: the environment, arguments and scripts the chart renders start
the real connector against PostgreSQL, and the helm test pod's check passes against it.

Only what a laptop cannot give is changed: absolute volume paths move under a temporary
directory and the listen address becomes 127.0.0.1 on a free port.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.charts.conftest import CHART, REPO, Manifest, find, helm_of
from tests.conftest import free_port

MINIMAL = CHART / "ci" / "minimal-values.yaml"


@pytest.fixture
def database(pg_url: str) -> Iterator[str]:
    """A fresh, empty database on the shared PostgreSQL (dropped afterwards)."""
    admin = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"phems_chart_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pod_env(docs: list[Manifest], root: Path, secrets: dict[str, str]) -> dict[str, str]:
    (configmap,) = find(docs, "ConfigMap")
    (deployment,) = find(docs, "Deployment")
    env = {k: re.sub(r"^/", f"{root}/", v) for k, v in configmap["data"].items()}
    for entry in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "valueFrom" in entry:
            env[entry["name"]] = secrets[entry["valueFrom"]["secretKeyRef"]["key"]]
        else:  # the kubelet's $(VAR) expansion
            env[entry["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m[1]], entry["value"]
            )
    return env


def test_rendered_chart_runs_the_connector(database: str, tmp_path: Path) -> None:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    docs = helm_of("4").render(
        MINIMAL,
        sets=[
            f"connector.publicUrl={public_url}",
            f"connector.insecureDidHosts[0]=127.0.0.1:{port}",
            "database.external.host=127.0.0.1",
            f"database.external.name={database}",
            "database.external.user=postgres",
            "fhir.source=files",
        ],
    )
    env = pod_env(docs, tmp_path, {"password": "unused", "management-api-key": "k" * 48})
    env["PHEMS_HOST"], env["PHEMS_PORT"] = "127.0.0.1", str(port)
    base_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    (deployment,) = find(docs, "Deployment")
    spec = deployment["spec"]["template"]["spec"]

    wait = spec["initContainers"][0]["command"][-1]
    waited = subprocess.run(
        [sys.executable, "-c", wait],
        env={**base_env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert waited.returncode == 0, waited.stderr

    args = [
        {"0.0.0.0": "127.0.0.1", "8080": str(port)}.get(a, a) for a in spec["containers"][0]["args"]
    ]
    log = (tmp_path / "connector.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "connector", *args],
        env={**base_env, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        (pod,) = find(docs, "Pod")
        check = pod["spec"]["containers"][0]["command"][-1].replace(
            "http://phems-phems-connector:80", public_url
        )
        # The check waits for /readyz itself (with its own deadline); stop early if the
        # connector exits instead.
        probe = subprocess.Popen(
            [sys.executable, "-c", check], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 180
        while probe.poll() is None:
            if server.poll() is not None or time.monotonic() > deadline:
                probe.kill()
            try:
                probe.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
        out, err = probe.communicate(timeout=10)
        assert probe.returncode == 0, err + (tmp_path / "connector.log").read_text()
        assert out.startswith("ok: ready, DSP 2025-1")
        assert (tmp_path / "data" / "keys" / "signing.jwk").is_file()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()
