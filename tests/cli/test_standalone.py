"""The product stands alone: a plain clone (exactly what the container image's build context
holds, with no `../shared` beside it) and the wheel built from it serve, validate and publish
with the SHACL shapes and Swagger UI they ship, under their licences."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from catalog.examples import example_dataset, example_policies
from catalog.validation import SHAPE_FILES
from connector.publishing.healthdcat import metadata_of
from connector.publishing.sample import SAMPLE_DATASET_ID
from tests.conftest import free_port
from tests.processes import REPO, connector_env, start_connector, stop

# What .dockerignore lets into the image's build context.
BUILD_CONTEXT = ("pyproject.toml", "README.md", "connector", "catalog", "adapters")
SWAGGER_UI = "connector/api/static/swagger-ui"


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plain-clone") / "phems-connector"
    root.mkdir()
    for name in BUILD_CONTEXT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    assert not (root.parent / "shared").exists()
    return root


@pytest.fixture(scope="module")
def wheel(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(clone)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    [built] = out.glob("phems_connector-*.whl")
    return built


def _publish_another(url: str, api_key: str) -> httpx.Response:
    ds = example_dataset(base_url=url, dataset_id="second", hospital_name="Kinderklinik")
    body = {
        "id": ds.identifier,
        "title": ds.title,
        "description": ds.description,
        "formats": [d.dsp_format for d in ds.distributions],
        "offers": list(example_policies(ds.identifier, base_url=url)),
        "metadata": metadata_of(ds),
    }
    return httpx.post(
        url + "/management/datasets", json=body, headers={"X-Api-Key": api_key}, timeout=60
    )


def _serves_and_publishes(code: Path, data_dir: Path) -> None:
    """`serve --with-sample-data` from `code` (on PYTHONPATH), then a publish and `catalog
    validate`: each validates against the shapes the code ships."""
    env = {"PYTHONPATH": str(code)}
    where = subprocess.run(
        [sys.executable, "-c", "import catalog.validation as v; print(v.DEFAULT_SHAPES_DIR)"],
        env=connector_env(data_dir, 0, env),
        cwd=str(data_dir.parent),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.strip() == str(code / "catalog" / "shapes"), where.stderr
    connector = start_connector(data_dir, free_port(), env, args=("--with-sample-data",))
    try:
        sample = httpx.get(connector.url + f"/catalog/datasets/{SAMPLE_DATASET_ID}", timeout=30)
        assert sample.status_code == 200, sample.text
        assert "healthdcatap" in sample.text.lower()
        published = _publish_another(connector.url, connector.api_key)
        assert published.status_code == 201, published.text
        docs = httpx.get(connector.url + "/docs/assets/swagger-ui-bundle.js", timeout=30)
        assert docs.status_code == 200
    finally:
        stop(connector.proc)
    validate = subprocess.run(
        [sys.executable, "-m", "connector", "catalog", "validate"],
        env=connector.env,
        cwd=str(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "conforms: 0 violation(s)" in validate.stdout


def test_a_plain_clone_without_shared_serves_and_publishes(clone: Path, tmp_path: Path) -> None:
    _serves_and_publishes(clone, tmp_path / "data")


def test_the_wheel_ships_shapes_swagger_ui_and_their_licences(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for shape in SHAPE_FILES:
        assert f"catalog/shapes/{shape}" in names, shape
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE", "README.md"):
        assert f"{SWAGGER_UI}/{asset}" in names, asset
    notice = zipfile.ZipFile(wheel).read("catalog/shapes/NOTICE.md").decode()
    assert "CC BY 4.0" in notice and "© European Union" in notice
    for template in ("home.html", "error.html"):
        assert f"connector/api/templates/{template}" in names


def test_the_installed_wheel_serves_and_publishes(wheel: Path, tmp_path: Path) -> None:
    """As the container image installs it (`pip install .`), away from any source tree."""
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site)]
        + [str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    _serves_and_publishes(site, tmp_path / "data")
