"""Composition root: builds every long-lived part from the settings, and closes them.

The only module of ``connector`` allowed to import ``adapters`` (checked by a test).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.fhir_factory import build_fhir_source
from connector.api.oidc import OidcVerifier
from connector.audit import AuditLog
from connector.audit_anchor import FILE_NAME as CHECKPOINTS_FILE
from connector.audit_anchor import AuditAnchor
from connector.catalog_bridge import Publisher
from connector.clock import SystemClock
from connector.datasets import DatasetStore
from connector.db.engine import create_engine, migrate
from connector.db.replay import SqlReplayGuard
from connector.db.signouts import SignOuts
from connector.dsp.store import DspStore
from connector.egress import EgressPolicy, guarded_client
from connector.errors import ConfigurationError
from connector.exchange.catalog_service import CatalogService
from connector.exchange.negotiations import NegotiationService
from connector.exchange.sender import OutboxSender, SendPolicy
from connector.exchange.transfers import TransferService
from connector.files import narrow, open_private, private_dir
from connector.harvest import HarvestService
from connector.identity.credentials import read_credential_files
from connector.identity.did import build_did_document, did_from_url
from connector.identity.keys import ConnectorKeys, load_or_create_keys
from connector.identity.resolver import DidResolver
from connector.identity.tokens import TokenIssuer, TokenVerifier
from connector.ports import Clock, FhirSource
from connector.published import PublishedCatalog
from connector.settings import Settings

DSP_PATH = "/dsp/2025-1"


@dataclass
class Services:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    keys: ConnectorKeys
    did: str
    did_document: dict[str, object]
    http: httpx.AsyncClient  # for addresses the operator configured
    peer_http: httpx.AsyncClient  # for addresses peers give us (connector.egress)
    resolver: DidResolver
    audit: AuditLog
    tokens: TokenIssuer
    verifier: TokenVerifier
    management_api_key: str
    dsp_store: DspStore
    datasets: DatasetStore
    catalog: CatalogService
    negotiations: NegotiationService
    transfers: TransferService
    sender: OutboxSender
    published: PublishedCatalog
    fhir: FhirSource
    harvest: HarvestService
    oidc: OidcVerifier | None
    signouts: SignOuts

    @property
    def public_url(self) -> str:
        return self.settings.effective_public_url

    @property
    def dsp_base(self) -> str:
        return self.public_url + DSP_PATH

    async def aclose(self) -> None:
        await self.fhir.aclose()
        await self.http.aclose()
        await self.peer_http.aclose()
        await self.sender.aclose()
        await self.engine.dispose()


def load_keys(settings: Settings) -> ConnectorKeys:
    return load_or_create_keys(
        settings.effective_keys_dir,
        signing_key_file=settings.signing_key_file,
        key_agreement_key_file=settings.key_agreement_key_file,
    )


def management_api_key(settings: Settings) -> str:
    """The configured key, or one generated once and kept in the data directory."""
    if settings.management_api_key is not None:
        return settings.management_api_key.get_secret_value()
    path = settings.data_dir / "management-api-key"
    try:
        if path.exists():
            narrow(path)
            return path.read_text().strip()
        private_dir(settings.data_dir)
        key = secrets.token_urlsafe(32)
        with open_private(path, exclusive=True) as out:
            out.write(key + "\n")
        return key
    except OSError as exc:
        raise ConfigurationError(f"PHEMS_DATA_DIR: cannot use {settings.data_dir}: {exc}") from exc


def audit_anchor(settings: Settings, did: str, keys: ConnectorKeys) -> AuditAnchor:
    return AuditAnchor(settings.data_dir / CHECKPOINTS_FILE, did, keys)


async def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    try:
        private_dir(settings.data_dir)
    except OSError as exc:
        raise ConfigurationError(
            f"PHEMS_DATA_DIR: cannot create {settings.data_dir}: {exc}"
        ) from exc
    keys = load_keys(settings)
    api_key = management_api_key(settings)
    engine = create_engine(
        settings.effective_database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    try:
        await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    did = did_from_url(settings.effective_public_url)
    http = httpx.AsyncClient(timeout=settings.http_timeout_seconds, follow_redirects=False)
    egress = EgressPolicy(
        insecure_hosts=settings.insecure_did_hosts, networks=settings.peer_networks
    )
    peer_http = guarded_client(egress, timeout=settings.http_timeout_seconds)
    resolver = DidResolver(
        peer_http,
        clock,
        egress=egress,
        fetches_per_minute=settings.did_resolutions_per_minute,
        insecure_hosts=settings.insecure_did_hosts,
        cache_seconds=settings.did_cache_seconds,
        timeout_seconds=settings.http_timeout_seconds,
    )
    replay = SqlReplayGuard(engine, clock)
    public_url = settings.effective_public_url
    dsp_base = public_url + DSP_PATH
    audit = AuditLog(
        engine,
        clock,
        anchor=audit_anchor(settings, did, keys),
        checkpoint_seconds=settings.audit_checkpoint_seconds,
    )
    tokens = TokenIssuer(
        did,
        keys,
        settings.token_lifetime_seconds,
        read_credential_files(settings.effective_credentials_dir),
        clock,
    )
    store = DspStore(engine)
    datasets = DatasetStore()
    trusted = list(settings.trusted_issuers)
    sender = OutboxSender(
        store=store,
        tokens=tokens,
        timeout_seconds=settings.http_timeout_seconds,
        clock=clock,
        audit=audit,
        poll_seconds=settings.outbox_poll_seconds,
        policy=SendPolicy(batch=settings.outbox_concurrency),
        socket_factory=egress.socket_factory,
    )
    store.on_enqueued = sender.wake
    published = PublishedCatalog(
        store=store,
        datasets=datasets,
        publisher=Publisher(public_url=public_url, did=did, name=settings.participant_name),
    )
    return Services(
        settings=settings,
        clock=clock,
        engine=engine,
        keys=keys,
        did=did,
        did_document=build_did_document(did, keys, dsp_base),
        http=http,
        peer_http=peer_http,
        resolver=resolver,
        audit=audit,
        tokens=tokens,
        verifier=TokenVerifier(
            resolver,
            replay,
            trusted_issuers=settings.trusted_issuers,
            own_did=did,
            clock=clock,
            credential_cache_seconds=settings.did_cache_seconds,
        ),
        management_api_key=api_key,
        dsp_store=store,
        datasets=datasets,
        catalog=CatalogService(published=published, clock=clock, did=did, trusted_issuers=trusted),
        negotiations=NegotiationService(
            store=store,
            datasets=datasets,
            audit=audit,
            clock=clock,
            did=did,
            keys=keys,
            resolver=resolver,
            trusted_issuers=trusted,
            dsp_base=dsp_base,
            insecure_hosts=settings.insecure_did_hosts,
        ),
        transfers=TransferService(
            store=store,
            datasets=datasets,
            audit=audit,
            clock=clock,
            did=did,
            keys=keys,
            trusted_issuers=trusted,
            dsp_base=dsp_base,
            public_url=public_url,
            insecure_hosts=settings.insecure_did_hosts,
            resolver=resolver,
        ),
        sender=sender,
        oidc=OidcVerifier(
            http,
            issuer=settings.management_oidc_issuer,
            audience=settings.management_oidc_audience,
        )
        if settings.management_oidc_issuer
        else None,
        published=published,
        signouts=SignOuts(engine),
        fhir=build_fhir_source(settings),
        harvest=HarvestService(
            store=store,
            http=http,
            tokens=tokens,
            clock=clock,
            targets=list(settings.harvest_targets),
        ),
    )
