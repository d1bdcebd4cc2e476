"""Build the configured ``FhirSource`` (called by the composition root)."""

from __future__ import annotations

import ssl

from adapters.fhir.auth import (
    BasicAuth,
    BearerAuth,
    FhirAuth,
    NoAuth,
    SmartBackendAuth,
    load_smart_key,
)
from adapters.fhir.http import Timeouts
from adapters.fhir_rest import FhirRestSource
from adapters.ndjson_source import NdjsonFileSource
from connector.errors import ConfigurationError
from connector.ports import FhirSource
from connector.settings import Settings


def build_fhir_source(settings: Settings) -> FhirSource:
    """The file or REST source the settings describe; ``ConfigurationError`` names the
    setting that is missing or unusable."""
    if settings.fhir_source == "files":
        return NdjsonFileSource(settings.effective_fhir_files_dir)
    return FhirRestSource(
        settings.fhir_base_url,
        auth=build_fhir_auth(settings),
        ssl_context=_ssl_context(settings),
        timeouts=Timeouts(
            connect=settings.fhir_connect_timeout_seconds,
            read=settings.fhir_read_timeout_seconds,
            request=settings.fhir_request_timeout_seconds,
        ),
        page_size=settings.fhir_page_size,
    )


def build_fhir_auth(settings: Settings) -> FhirAuth:
    if settings.fhir_auth == "none":
        return NoAuth()
    if settings.fhir_auth == "bearer":
        if settings.fhir_token is None or not settings.fhir_token.get_secret_value():
            raise ConfigurationError("PHEMS_FHIR_TOKEN is required when PHEMS_FHIR_AUTH=bearer")
        return BearerAuth(settings.fhir_token.get_secret_value())
    if settings.fhir_auth == "basic":
        if not settings.fhir_username or settings.fhir_password is None:
            raise ConfigurationError(
                "PHEMS_FHIR_USERNAME and PHEMS_FHIR_PASSWORD are required when "
                "PHEMS_FHIR_AUTH=basic"
            )
        return BasicAuth(settings.fhir_username, settings.fhir_password.get_secret_value())
    if not settings.fhir_smart_client_id:
        raise ConfigurationError(
            "PHEMS_FHIR_SMART_CLIENT_ID is required when PHEMS_FHIR_AUTH=smart"
        )
    if settings.fhir_smart_key_file is None:
        raise ConfigurationError("PHEMS_FHIR_SMART_KEY_FILE is required when PHEMS_FHIR_AUTH=smart")
    try:
        key = load_smart_key(settings.fhir_smart_key_file)
    except ConfigurationError as exc:
        raise ConfigurationError(f"PHEMS_FHIR_SMART_KEY_FILE: {exc.detail}") from None
    return SmartBackendAuth(
        client_id=settings.fhir_smart_client_id,
        key=key,
        scope=settings.fhir_smart_scope,
        token_url=settings.fhir_smart_token_url,
    )


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.fhir_ca_bundle is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(settings.fhir_ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"PHEMS_FHIR_CA_BUNDLE: cannot load {settings.fhir_ca_bundle}: {exc}"
        ) from None
