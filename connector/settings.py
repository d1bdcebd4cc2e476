"""Connector settings: one class, built once (``load_settings``) and passed down.

Sources, highest priority first: explicit overrides, ``PHEMS_*`` environment variables,
the optional YAML or TOML file named by ``PHEMS_CONFIG_FILE``, then the defaults below.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

CommaList = Annotated[list[str], NoDecode]

SUPPORTED_DB_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg", "postgresql+psycopg")


class SettingsError(ValueError):
    """A setting has a value the connector cannot use; the message names the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PHEMS_", extra="forbid", validate_default=True, frozen=True
    )

    data_dir: Path = Field(
        Path("phems-data"),
        description="Directory for the embedded SQLite database, generated keys and sample data.",
    )
    database_url: str = Field(
        "",
        description=(
            "SQLAlchemy async URL of the store "
            "(sqlite+aiosqlite:///..., postgresql+asyncpg://...). "
            "Empty: a SQLite file in data_dir."
        ),
    )
    public_url: str = Field(
        "",
        description=(
            "URL other connectors reach this one at; the did:web DID derives from it. "
            "Empty: http://<host>:<port> of serve."
        ),
    )
    host: str = Field("127.0.0.1", description="Interface serve binds to.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port serve listens on.")
    participant_name: str = Field(
        "PHEMS hospital", description="Human-readable name of this participant (catalog publisher)."
    )
    keys_dir: Path | None = Field(
        None,
        description=(
            "Directory with signing.jwk and key-agreement.jwk (e.g. a Kubernetes Secret mount). "
            "Empty: <data_dir>/keys, generated on first start."
        ),
    )
    signing_key_file: Path | None = Field(
        None, description="JWK file of the signing key (Ed25519 or P-256); overrides keys_dir."
    )
    key_agreement_key_file: Path | None = Field(
        None, description="JWK file of the X25519 key agreement key; overrides keys_dir."
    )
    trusted_issuers: CommaList = Field(
        default_factory=list,
        description="Comma-separated issuer DIDs whose credentials this connector trusts.",
    )
    insecure_did_hosts: CommaList = Field(
        default_factory=list,
        description="Comma-separated host:port values for which did:web may use plain http.",
    )
    peer_networks: CommaList = Field(
        default_factory=list,
        description=(
            "Comma-separated CIDR networks (e.g. 10.20.0.0/16) where other participants may "
            "be reached besides public addresses: a data space inside a private network. "
            "Peers' DID documents, callbacks and endpoints are never fetched from other "
            "internal addresses (loopback, link-local, private)."
        ),
    )
    harvest_targets: CommaList = Field(
        default_factory=list,
        description=(
            "Comma-separated DSP base URLs (https://host/dsp/2025-1) of the hospital connectors "
            "whose catalogs this connector harvests (data user role)."
        ),
    )
    credentials_dir: Path | None = Field(
        None,
        description=(
            "Directory of VC-JWT files (*.jwt) this connector presents in its tokens. "
            "Empty: <data_dir>/credentials."
        ),
    )
    management_api_key: SecretStr | None = Field(
        None,
        description="API key for the management API (X-Api-Key header). Empty: generated once.",
    )
    management_oidc_issuer: str = Field(
        "",
        description=(
            "OIDC issuer whose access tokens (Authorization: Bearer) the management API also "
            "accepts, e.g. the hospital's Keycloak realm URL. Empty: API key only."
        ),
    )
    management_oidc_audience: str = Field(
        "phems-connector",
        description="Audience (aud) that OIDC access tokens for the management API must carry.",
    )
    token_lifetime_seconds: int = Field(
        120, ge=10, le=300, description="Lifetime of self-issued tokens (at most 5 minutes)."
    )
    did_cache_seconds: int = Field(
        300, ge=0, description="How long resolved did:web documents are cached."
    )
    did_resolutions_per_minute: int = Field(
        60,
        ge=1,
        description=(
            "New did:web documents on one host one client address may make this connector "
            "fetch in a minute, and ten times that on all hosts (a token naming an unknown DID "
            "is resolved before its signature can be checked). Behind a proxy, let the server "
            "see client addresses (FORWARDED_ALLOW_IPS)."
        ),
    )
    http_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of outbound HTTP calls to other connectors."
    )
    # What one client may make the server hold (docs/install.md, "Limits"). A body larger than
    # its surface's limit is refused with 413 before it is read (after authentication where
    # the surface has one); headers larger than max_header_bytes with 431.
    management_max_body_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="Largest request body the management API (/management) accepts, in bytes.",
    )
    dsp_max_body_bytes: int = Field(
        256 << 10,
        ge=1024,
        description="Largest DSP message (/dsp/2025-1) accepted, in bytes; a message is a few KB.",
    )
    dataplane_max_body_bytes: int = Field(
        1 << 20,
        ge=1024,
        description=(
            "Largest data plane request body (/dataplane: a query, e.g. a CCDL cohort of tens "
            "of KB) accepted, in bytes."
        ),
    )
    catalog_max_body_bytes: int = Field(
        64 << 10,
        ge=1024,
        description=(
            "Largest request body of the catalog and its UI forms (/catalog) and every other "
            "unauthenticated route, in bytes."
        ),
    )
    max_header_bytes: int = Field(
        32 << 10,
        ge=4096,
        description=(
            "Largest request line plus headers accepted, in bytes (431 beyond). A DSP token "
            "carrying several credentials is a few KB."
        ),
    )
    header_read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description=(
            "A client has this long to send a request's line and headers once it connected "
            "(or once the previous answer on the connection went out); then it is disconnected."
        ),
    )
    body_read_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description=(
            "Longest wait for the next part of a request body; a client that sends nothing for "
            "this long gets 408 and is disconnected."
        ),
    )
    max_connections: int = Field(
        1000,
        ge=10,
        description=(
            "Open client connections the server keeps at once; further ones are closed at once "
            "until some end (the header timeout ends idle ones)."
        ),
    )
    audit_checkpoint_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "How often the audit chain's head is signed and written to "
            "<data_dir>/audit-checkpoints.jsonl while it moves (entries newer than the last "
            "checkpoint are not anchored yet)."
        ),
    )
    fhir_source: Literal["files", "rest"] = Field(
        "files", description="Where FHIR data comes from: Bulk NDJSON files or a FHIR REST server."
    )
    fhir_files_dir: Path | None = Field(
        None,
        description="Directory of Bulk NDJSON files (Type.*.ndjson[.gz]). Empty: <data_dir>/fhir.",
    )
    fhir_base_url: str = Field("", description="Base URL of the FHIR REST server.")
    fhir_auth: Literal["none", "bearer", "basic", "smart"] = Field(
        "none", description="Authentication to the FHIR REST server."
    )
    fhir_token: SecretStr | None = Field(
        None, description="Static bearer token for the FHIR server."
    )
    fhir_username: str = Field("", description="User name for basic auth to the FHIR server.")
    fhir_password: SecretStr | None = Field(None, description="Password for basic auth.")
    fhir_smart_client_id: str = Field("", description="SMART Backend Services client id.")
    fhir_smart_token_url: str = Field("", description="SMART Backend Services token endpoint.")
    fhir_smart_key_file: Path | None = Field(
        None, description="Private JWK/PEM used for the SMART private_key_jwt assertion."
    )
    fhir_smart_scope: str = Field(
        "system/*.read", description="Scopes requested with SMART Backend Services."
    )
    fhir_ca_bundle: Path | None = Field(
        None, description="CA bundle (PEM) for TLS to the FHIR server."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_json: bool = Field(True, description="Structured JSON logs (one object a line).")
    outbox_poll_seconds: float = Field(
        0.2, gt=0, description="How often the state-machine loop looks for due work."
    )
    outbox_concurrency: int = Field(
        16,
        ge=1,
        le=1000,
        description=(
            "Outbound DSP messages a replica claims from the outbox and sends at once "
            "(retries, and messages waiting behind an earlier one of their process); "
            "those its own requests queue are sent right after their commit, besides."
        ),
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=500,
        description=(
            "PostgreSQL connections each replica opens as needed and keeps open. Keep "
            "replicas x (pool size + overflow) below the server's max_connections."
        ),
    )
    database_max_overflow: int = Field(
        20,
        ge=0,
        le=500,
        description=(
            "PostgreSQL connections a replica may open beyond the pool under load; once open "
            "they stay open like the pool's (closing one on return and reopening it at the "
            "next peak cost more than keeping it)."
        ),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("PHEMS_CONFIG_FILE")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise SettingsError(f"PHEMS_CONFIG_FILE: no such file: {path}")
            if path.suffix in (".yaml", ".yml"):
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            elif path.suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            else:
                raise SettingsError(f"PHEMS_CONFIG_FILE: expected .yaml, .yml or .toml: {path}")
        return tuple(sources)

    @field_validator(
        "trusted_issuers", "insecure_did_hosts", "harvest_targets", "peer_networks", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("peer_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not a CIDR network: {item!r}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value:
            scheme = value.split("://", 1)[0] if "://" in value else ""
            if scheme == "postgresql" or scheme == "postgres":
                return "postgresql+asyncpg://" + value.split("://", 1)[1]
            if scheme not in SUPPORTED_DB_SCHEMES:
                raise ValueError(
                    f"unknown database scheme {scheme or value!r}; "
                    f"use one of {', '.join(SUPPORTED_DB_SCHEMES)}"
                )
        return value

    @field_validator("management_oidc_issuer")
    @classmethod
    def _check_issuer(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
            if not parts.netloc or not (
                parts.scheme == "https" or (parts.scheme == "http" and loopback)
            ):
                raise ValueError(f"not an https URL (http only on loopback): {value!r}")
        return value.rstrip("/")

    @field_validator("public_url", "fhir_base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"not an http(s) URL: {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_fhir(self) -> Settings:
        if self.fhir_source == "rest" and not self.fhir_base_url:
            raise ValueError("fhir_base_url is required when fhir_source is 'rest'")
        return self

    # Derived values (not settings themselves).
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'phems.db'}"

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def effective_keys_dir(self) -> Path:
        return self.keys_dir or self.data_dir / "keys"

    @property
    def effective_credentials_dir(self) -> Path:
        return self.credentials_dir or self.data_dir / "credentials"

    @property
    def effective_fhir_files_dir(self) -> Path:
        return self.fhir_files_dir or self.data_dir / "fhir"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; raise ``SettingsError`` with the offending setting named."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        env = f"PHEMS_{field.upper()}" if first["loc"] else "settings"
        msg = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{env}: {msg}") from None
