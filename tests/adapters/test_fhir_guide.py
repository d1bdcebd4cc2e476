"""docs/fhir-server.md: each of its settings blocks, run by bash, gives settings the connector
accepts and the FHIR source and authentication it describes."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.fhir.auth import BasicAuth, BearerAuth, NoAuth, SmartBackendAuth
from adapters.fhir_factory import build_fhir_auth, build_fhir_source
from adapters.fhir_rest import FhirRestSource
from adapters.ndjson_source import NdjsonFileSource
from connector.settings import load_settings
from tests.processes import REPO

GUIDE = REPO / "docs" / "fhir-server.md"
KEY_IN_GUIDE = "/etc/phems/smart-key.pem"


def _blocks() -> list[str]:
    text = GUIDE.read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    return [b for b in blocks if "export PHEMS_FHIR_SOURCE" in b]


def _variables(block: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHEMS_")}
    done = subprocess.run(
        ["bash", "-euc", block + '\nenv -0 | grep -z "^PHEMS_" || true'],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict(item.split("=", 1) for item in done.stdout.split("\0") if item)


def test_the_guide_shows_every_kind_of_source_and_authentication() -> None:
    kinds = [(v["PHEMS_FHIR_SOURCE"], v.get("PHEMS_FHIR_AUTH")) for v in map(_variables, _blocks())]
    assert kinds == [
        ("rest", "none"),
        ("rest", "bearer"),
        ("rest", "basic"),
        ("rest", "smart"),
        ("files", None),
    ]


@pytest.mark.parametrize("number", range(5))
async def test_each_block_configures_the_source_it_describes(
    number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = _variables(_blocks()[number])
    if variables.get("PHEMS_FHIR_SMART_KEY_FILE") == KEY_IN_GUIDE:
        key = ec.generate_private_key(ec.SECP384R1())
        path = tmp_path / "smart-key.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        variables["PHEMS_FHIR_SMART_KEY_FILE"] = str(path)
    for key_name in [k for k in os.environ if k.startswith("PHEMS_")]:
        monkeypatch.delenv(key_name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(data_dir=tmp_path)
    source = build_fhir_source(settings)
    try:
        if settings.fhir_source == "files":
            assert isinstance(source, NdjsonFileSource)
            return
        assert isinstance(source, FhirRestSource)
        expected = {"none": NoAuth, "bearer": BearerAuth, "basic": BasicAuth}
        expected["smart"] = SmartBackendAuth
        assert isinstance(build_fhir_auth(settings), expected[settings.fhir_auth])
    finally:
        await source.aclose()
