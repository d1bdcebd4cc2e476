"""Connector settings: one class, built once (``load_settings``) and passed down.

Sources, highest priority first: explicit overrides, ``PHEMS_*`` environment variables,
the optional YAML or TOML file named by ``PHEMS_CONFIG_FILE``, then the defaults below.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
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

SUPPORTED_DB_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")
# Read from the environment outside this class (the file source below; catalog/validation.py).
OTHER_VARIABLES = {
    "PHEMS_CONFIG_FILE": (
        "A YAML (.yaml, .yml) or TOML (.toml) file of settings, keyed by the setting names "
        "without the PHEMS_ prefix, in lower case; the environment wins over the file."
    ),
    "PHEMS_SHACL_DIR": (
        "Directory of the SHACL shapes datasets are validated with (dcat-ap-3.0.1/ and "
        "healthdcat-ap-r8/). Empty: the shapes shipped with the connector."
    ),
}
# Never a setting: the test suite's own variables.
IGNORED_PREFIXES = ("PHEMS_TEST_",)
_HOST = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)$"
)
_DID = re.compile(r"^did:(web|key):[A-Za-z0-9._%:-]+$")


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
        description=(
            "Comma-separated issuer DIDs (did:web or did:key) whose credentials this connector "
            "trusts: the data space authority's, and a Health Data Access Body's for data "
            "permits. Empty: no credential is trusted (serve warns)."
        ),
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
    # FHIR REST paging and timeouts (one block: issue 19)
    fhir_page_size: int = Field(
        1000,
        ge=1,
        le=10000,
        description=(
            "Resources asked for per page of a FHIR search (_count); the server may send fewer. "
            "Large pages save round trips: a server's own default (often 20) makes a full scan "
            "mostly waiting."
        ),
    )
    fhir_connect_timeout_seconds: float = Field(
        10.0, gt=0, description="Seconds to open a connection to the FHIR server."
    )
    fhir_read_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="Seconds the FHIR server may stay silent while answering before it times out.",
    )
    fhir_request_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description=(
            "Seconds one request to the FHIR server may take in all, retries and back-off "
            "included: a server that never answers fails after this long. Bulk $export file "
            "downloads are limited by the read timeout only."
        ),
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
    query_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Federated queries: how long to wait for each hospital's answer.",
    )
    query_min_total: int = Field(
        20,
        ge=0,
        description="Federated queries: no result when the patient count over all hospitals "
        "is under this.",
    )
    query_breakdown_min_hospitals: int = Field(
        3,
        ge=0,
        description="Federated queries: a per-hospital breakdown only when at least this many "
        "hospitals each report query_breakdown_min_each patients or more.",
    )
    query_breakdown_min_each: int = Field(
        20,
        ge=0,
        description="Federated queries: the patient count a hospital must report to count "
        "towards query_breakdown_min_hospitals.",
    )

    # -- fulfilment: the data plane, the view cache and long jobs ----------------------------
    dataplane_rate_limit: int = Field(
        50,
        ge=1,
        description=(
            "Data plane calls one data user may make to this connector in the rate-limit "
            "window, over all their agreements (the MII feasibility portal's default: 50 a "
            "week); beyond it a 429 with Retry-After."
        ),
    )
    dataplane_rate_window_seconds: int = Field(
        7 * 24 * 3600, ge=1, description="The rate-limit window (default a week)."
    )
    dataplane_wait_seconds: float = Field(
        20.0,
        ge=0,
        description=(
            "How long a data plane call waits for the dataset's flattened tables to be built "
            "before it is answered 503 with Retry-After (nothing spent)."
        ),
    )
    dataplane_pull_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description=(
            "Consumer side: how long this connector waits for a provider's data plane answer "
            "when a data user pulls through it (an aggregate query or a synthetic bundle can "
            "take a while)."
        ),
    )
    job_workers: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "Worker processes for CPU-heavy jobs (building the flattened tables, statistics, "
            "fitting synthesizers), and how many jobs run at once: with 2 or more a long "
            "synthesizer fit does not hold up another dataset's tables; each replica has its "
            "own pool."
        ),
    )
    job_poll_seconds: float = Field(
        2.0, gt=0, description="How often the job loop looks for due jobs it was not told of."
    )
    job_lease_seconds: float = Field(
        60.0,
        ge=5,
        description=(
            "A running job's lease, renewed while it runs: after a crash, another replica (or "
            "this one, restarted) takes the job over once it has expired."
        ),
    )
    fhir_version_cache_seconds: float = Field(
        5.0,
        ge=0,
        description=(
            "How long the FHIR source's data version is reused before it is asked again (on a "
            "REST server the question costs requests)."
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
                _check_config_file(path, "YAML")
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            elif path.suffix == ".toml":
                _check_config_file(path, "TOML")
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
            if scheme.startswith("postgresql+") and scheme not in SUPPORTED_DB_SCHEMES:
                raise ValueError(
                    f"the {scheme.removeprefix('postgresql+')} driver is not supported; use "
                    "postgresql+asyncpg://user:password@host:5432/name (asyncpg ships with the "
                    "connector; TLS as ?ssl=require)"
                )
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
            _check_http_url(value)
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(
                f"no user, password, query or fragment allowed (the DID derives from it): {value!r}"
            )
        return value

    @field_validator("trusted_issuers")
    @classmethod
    def _check_issuers(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _DID.match(item):
                raise ValueError(
                    f"{item!r} is not an issuer DID; expected did:web:<host> or did:key:z... "
                    "(comma-separated)"
                )
        return value

    @field_validator("management_api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "the key is empty: set one, or unset the variable to have a key generated "
                "in the data directory"
            )
        return value

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


def _check_http_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {value!r}")
    host = parts.netloc.rpartition("@")[2]
    host = host if host.startswith("[") and host.endswith("]") else host.rsplit(":", 1)[0]
    if not _HOST.match(host) or any(c.isspace() for c in value):
        raise ValueError(f"not a valid host name in {value!r}")
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number from 0 to 65535)
    except ValueError:
        raise ValueError(f"not a valid port in {value!r}") from None


def _known_variables() -> set[str]:
    return {f"PHEMS_{name.upper()}" for name in Settings.model_fields} | set(OTHER_VARIABLES)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``PHEMS_*`` variable that is no setting (a typo is otherwise
    ignored), with the nearest setting's name when there is one."""
    known = _known_variables()
    out = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("PHEMS_") or upper in known:
            continue
        if upper.startswith(IGNORED_PREFIXES):
            continue
        # Compared without the common prefix, which would make every name look alike.
        suffixes = sorted(k.removeprefix("PHEMS_") for k in known)
        near = difflib.get_close_matches(upper.removeprefix("PHEMS_"), suffixes, n=1, cutoff=0.7)
        hint = f"; did you mean PHEMS_{near[0]}?" if near else ""
        out.append(f"{name} is not a setting and is ignored{hint}")
    return out


def _check_config_file(path: Path, kind: Literal["YAML", "TOML"]) -> None:
    """The file parses and holds a mapping of settings, or a SettingsError on one line."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if kind == "YAML" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"PHEMS_CONFIG_FILE: cannot read {path}: {exc}") from None
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        problem = " ".join(str(exc).split())  # TOML's words carry the line and column
        mark = getattr(exc, "problem_mark", None)
        if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
            problem = f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
        raise SettingsError(f"PHEMS_CONFIG_FILE: {path} is not valid {kind}: {problem}") from None
    if data is not None and not isinstance(data, dict):
        raise SettingsError(
            f"PHEMS_CONFIG_FILE: {path} must hold settings as keys and values "
            f"(port: 8080), not a {type(data).__name__}"
        )


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; raise ``SettingsError`` with the offending setting named."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        if first["type"] == "extra_forbidden":
            # Only a config file (or a caller) can name a field that does not exist.
            known = sorted(name for name in Settings.model_fields)
            near = difflib.get_close_matches(field, known, n=1, cutoff=0.7)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise SettingsError(f"PHEMS_CONFIG_FILE: unknown setting {field!r}{hint}") from None
        env = f"PHEMS_{field.upper()}" if first["loc"] else "settings"
        msg = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{env}: {msg}") from None
