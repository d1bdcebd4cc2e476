"""TLS to the FHIR server with a private CA (``PHEMS_FHIR_CA_BUNDLE``)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.fhir_factory import build_fhir_source
from connector.errors import FhirSourceError
from connector.settings import Settings
from tests.adapters.fhir.sekmet import SekmetServer
from tests.conftest import free_port


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("PHEMS test CA"))
        .issuer_name(_name("PHEMS test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path, ca_path = folder / "server.pem", folder / "server.key", folder / "ca.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, ca_path


@pytest.fixture
def tls_sekmet(sekmet_exe: Path, tmp_path: Path) -> Iterator[SekmetServer]:
    tls = make_ca_and_server_cert(tmp_path)
    server = SekmetServer(sekmet_exe, tmp_path / "sekmet", free_port(), tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_private_ca_bundle_is_trusted(tls_sekmet: SekmetServer) -> None:
    settings = Settings(
        fhir_source="rest",
        fhir_base_url=tls_sekmet.base_url,
        fhir_ca_bundle=tls_sekmet.ca_bundle,
    )
    source = build_fhir_source(settings)
    try:
        assert await source.count("Patient") == 0
    finally:
        await source.aclose()


async def test_without_the_ca_bundle_the_error_says_what_to_set(tls_sekmet: SekmetServer) -> None:
    source = build_fhir_source(Settings(fhir_source="rest", fhir_base_url=tls_sekmet.base_url))
    try:
        with pytest.raises(FhirSourceError, match="TLS failed.*PHEMS_FHIR_CA_BUNDLE") as caught:
            await source.count("Patient")
    finally:
        await source.aclose()
    assert tls_sekmet.base_url in str(caught.value)
