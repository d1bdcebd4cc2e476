"""Composition root: builds every long-lived part from the settings, and closes them.

The only module of ``connector`` allowed to import ``adapters`` (an import-linter contract in
``pyproject.toml`` checks it).
"""

from __future__ import annotations

import importlib.util
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.fhir_factory import build_fhir_source
from adapters.sof.port import SqlOnFhirRunner
from connector.audit import AuditLog
from connector.audit_anchor import FILE_NAME as CHECKPOINTS_FILE
from connector.audit_anchor import AuditAnchor
from connector.clock import SystemClock
from connector.dataplane.calls import DataPlaneCalls
from connector.dataplane.service import DataPlaneService, RateLimit
from connector.db.aggregate import SqlAnswerStore
from connector.db.agreement_store import SqlAgreementStore
from connector.db.database import Database
from connector.db.engine import check_store, create_engine, migrate
from connector.db.gauges import StoreGauges
from connector.db.negotiation_store import SqlNegotiationStore
from connector.db.outbox_store import SqlOutbox
from connector.db.replay import SqlReplayGuard
from connector.db.signouts import SignOuts
from connector.db.synthetic_models import SqlSyntheticModelStore
from connector.db.transfer_store import SqlTransferStore
from connector.egress import EgressPolicy, guarded_client
from connector.errors import ConfigurationError
from connector.exchange.agreements import AgreementService
from connector.exchange.catalog_service import CatalogService
from connector.exchange.negotiations import NegotiationService
from connector.exchange.ports import DspStores
from connector.exchange.process import Participant
from connector.exchange.pull import DataPuller
from connector.exchange.sender import OutboxSender, SendPolicy
from connector.exchange.transfers import TransferService
from connector.federation.agreements import ConsumerAgreements
from connector.federation.channel import DataPlaneChannel
from connector.federation.coordinator import CoordinatorConfig, FederatedQueries
from connector.federation.directory import AgreementDirectory
from connector.federation.negotiate import HarvestNegotiator
from connector.federation.service import QueryService
from connector.files import narrow, open_private, private_dir
from connector.fulfilment.aggregate.codec import AggregateCodec
from connector.fulfilment.aggregate.fulfilment import AggregateFulfilment, SecureParty
from connector.fulfilment.cache import ViewCache
from connector.fulfilment.registry import FulfilmentRegistry
from connector.identity.credentials import read_credential_files
from connector.identity.did import build_did_document, did_from_url
from connector.identity.keys import ConnectorKeys, load_or_create_keys
from connector.identity.oidc import OidcVerifier
from connector.identity.resolver import DidResolver
from connector.identity.tokens import TokenIssuer, TokenVerifier
from connector.jobs import JobRunner, SqlJobStore
from connector.jobs.gauges import JobGauges
from connector.metrics import Metrics
from connector.optouts import OptOutService
from connector.ports import Clock, FhirSource, Fulfilment
from connector.publishing.datasets import DatasetService
from connector.publishing.harvest import HarvestService
from connector.publishing.healthdcat import Publisher
from connector.publishing.snapshot import PublishedCatalog
from connector.publishing.store import DatasetStore
from connector.settings import Settings
from connector.synthetic.fits import SyntheticFits
from connector.synthetic.fulfilment import SyntheticFulfilment

# What a synthetic pull without a fitted model is told to wait before asking again (seconds).
FIT_RETRY_SECONDS = 10

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
    db: Database
    stores: DspStores
    dataset_store: DatasetStore
    datasets: DatasetService
    catalog: CatalogService
    negotiations: NegotiationService
    transfers: TransferService
    agreements: AgreementService
    sender: OutboxSender
    published: PublishedCatalog
    fhir: FhirSource
    harvest: HarvestService
    oidc: OidcVerifier | None
    jobs: JobRunner
    optouts: OptOutService
    views: ViewCache
    fulfilments: FulfilmentRegistry
    dataplane: DataPlaneService
    puller: DataPuller
    queries: QueryService
    metrics: Metrics
    signouts: SignOuts

    @property
    def public_url(self) -> str:
        return self.settings.effective_public_url

    @property
    def dsp_base(self) -> str:
        return self.public_url + DSP_PATH

    async def aclose(self) -> None:
        await self.jobs.aclose()
        await self.fhir.aclose()
        await self.http.aclose()
        await self.peer_http.aclose()
        await self.sender.aclose()
        await self.engine.dispose()


def load_keys(settings: Settings, *, create: bool = True) -> ConnectorKeys:
    return load_or_create_keys(
        settings.effective_keys_dir,
        signing_key_file=settings.signing_key_file,
        key_agreement_key_file=settings.key_agreement_key_file,
        create=create,
    )


def management_api_key_file(settings: Settings) -> Path:
    return settings.data_dir / "management-api-key"


def management_api_key(settings: Settings) -> str:
    """The configured key, or one generated once and kept in the data directory."""
    if settings.management_api_key is not None:
        return settings.management_api_key.get_secret_value()
    path = management_api_key_file(settings)
    try:
        if path.exists():
            narrow(path)
            key = path.read_text().strip()
            if not key:
                raise ConfigurationError(
                    f"PHEMS_DATA_DIR: {path} is empty, so no management API key would match; "
                    "write a key into it, or delete it to have a new one generated at start"
                )
            return key
        private_dir(settings.data_dir)
        key = secrets.token_urlsafe(32)
        with open_private(path, exclusive=True) as out:
            out.write(key + "\n")
        return key
    except OSError as exc:
        raise ConfigurationError(f"PHEMS_DATA_DIR: cannot use {settings.data_dir}: {exc}") from exc


async def open_existing_store(settings: Settings) -> AsyncEngine:
    """The store of a connector that has run here, for commands that only read it: never
    created or migrated. Refused (ConfigurationError) when there is none, or when it is at
    another schema revision than this version's."""
    if not settings.database_url:
        if not settings.data_dir.is_dir():
            raise ConfigurationError(
                f"PHEMS_DATA_DIR: {settings.data_dir} does not exist; run this where the "
                "connector runs (its working directory), or set PHEMS_DATA_DIR to its data "
                "directory"
            )
        database = settings.data_dir / "phems.db"
        if not database.is_file():
            raise ConfigurationError(
                f"PHEMS_DATA_DIR: {settings.data_dir} holds no connector store ({database.name}); "
                "start the connector once, or set PHEMS_DATA_DIR / PHEMS_DATABASE_URL to its own"
            )
    engine = create_engine(settings.effective_database_url)
    try:
        await check_store(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine


def audit_anchor(settings: Settings, did: str, keys: ConnectorKeys) -> AuditAnchor:
    return AuditAnchor(settings.data_dir / CHECKPOINTS_FILE, did, keys)


def synthetic_installed() -> bool:
    """The ``synthetic`` extra (SDV) is importable (checked without importing it)."""
    return importlib.util.find_spec("sdv") is not None


def installed_fulfilments(
    engine: AsyncEngine,
    clock: Clock,
    *,
    did: str,
    keys: ConnectorKeys,
    resolver: DidResolver,
    fits: SyntheticFits | None = None,
) -> list[Fulfilment]:
    """The fulfilments this connector offers (one per output type). Aggregate queries take
    part in secure aggregation rounds as ``did`` with the key agreement key, the other
    participants' keys resolved from their DID documents. Synthetic bundles when the
    ``synthetic`` extra is installed (``fits``: their models and fit jobs)."""
    party = SecureParty(did, keys.key_agreement, resolver)
    installed: list[Fulfilment] = [
        AggregateFulfilment(SqlAnswerStore(engine, clock), clock, party=party)
    ]
    if fits is not None:
        installed.append(
            SyntheticFulfilment(
                fits.generator,
                fits.store,
                clock,
                request_fit=fits.request,
                retry_after=FIT_RETRY_SECONDS,
            )
        )
    return installed


async def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    fulfilments: list[Fulfilment] | None = None,
    metrics: Metrics | None = None,
) -> Services:
    """Everything long-lived. ``fulfilments`` replaces the installed ones (tests);
    ``metrics`` is the app's registry (services add their own counters and scrape-time
    sources to it)."""
    clock = clock or SystemClock()
    metrics = metrics or Metrics()
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
    db = Database(engine)
    negotiation_store = SqlNegotiationStore(db)
    outbox = SqlOutbox(db, negotiation_store)
    stores = DspStores(
        db=db,
        negotiations=negotiation_store,
        transfers=SqlTransferStore(db),
        agreements=SqlAgreementStore(db),
        outbox=outbox,
    )
    dataset_store = DatasetStore()
    fhir = build_fhir_source(settings)
    jobs = JobRunner(
        SqlJobStore(engine),
        clock,
        work_dir=settings.data_dir / "jobs",
        workers=settings.job_workers,
        concurrency=settings.job_workers,  # one job per worker process at a time
        poll_seconds=settings.job_poll_seconds,
        lease_seconds=settings.job_lease_seconds,
    )
    optouts = OptOutService(engine, audit, clock)
    views = ViewCache(
        root=settings.data_dir / "views",
        jobs=jobs,
        source=fhir,
        runner=SqlOnFhirRunner(),
        optouts=optouts,
        clock=clock,
        version_seconds=settings.fhir_version_cache_seconds,
    )
    fits = (
        SyntheticFits(
            jobs=jobs,
            views=views,
            store=SqlSyntheticModelStore(engine),
            root=settings.data_dir / "synthetic",
        )
        if fulfilments is None and synthetic_installed()
        else None
    )
    registry = FulfilmentRegistry(
        installed_fulfilments(engine, clock, did=did, keys=keys, resolver=resolver, fits=fits)
        if fulfilments is None
        else fulfilments
    )
    # Once any fulfilment is installed, a format nothing fulfils is neither offered nor accepted.
    formats = tuple(f.value for f in registry.formats) if registry.output_types else None
    trusted = list(settings.trusted_issuers)
    me = Participant(
        did=did,
        keys=keys,
        resolver=resolver,
        trusted_issuers=tuple(trusted),
        dsp_base=dsp_base,
        public_url=public_url,
        insecure_hosts=settings.insecure_did_hosts,
    )
    negotiations = NegotiationService(
        stores=stores, datasets=dataset_store, audit=audit, clock=clock, me=me
    )
    transfers = TransferService(
        stores=stores, datasets=dataset_store, audit=audit, clock=clock, me=me, formats=formats
    )
    sender = OutboxSender(
        stores=stores,
        tokens=tokens,
        timeout_seconds=settings.http_timeout_seconds,
        clock=clock,
        audit=audit,
        poll_seconds=settings.outbox_poll_seconds,
        policy=SendPolicy(batch=settings.outbox_concurrency),
        steps={"negotiation": negotiations.take_step, "transfer": transfers.take_step},
        socket_factory=egress.socket_factory,
    )
    outbox.on_enqueued = sender.wake
    metrics.add_source(StoreGauges(engine, clock))
    metrics.add_source(JobGauges(engine, clock))
    did_document = build_did_document(did, keys, dsp_base)
    published = PublishedCatalog(
        store=db,
        datasets=dataset_store,
        publisher=Publisher(
            public_url=public_url, did=did, name=settings.participant_name, formats=formats
        ),
    )
    agreements = AgreementService(
        stores=stores, resolver=resolver, did=did, did_document=did_document
    )
    puller = DataPuller(
        transfers=transfers,
        http=peer_http,
        tokens=tokens,
        clock=clock,
        timeout=httpx.Timeout(
            settings.http_timeout_seconds, read=settings.dataplane_pull_timeout_seconds
        ),
    )
    harvest = HarvestService(
        store=db, http=http, tokens=tokens, clock=clock, targets=list(settings.harvest_targets)
    )
    queries = QueryService(
        FederatedQueries(
            directory=AgreementDirectory(ConsumerAgreements(agreements)),
            negotiator=HarvestNegotiator(harvest, negotiations),
            channel=DataPlaneChannel(
                transfers=transfers, puller=puller, start_seconds=settings.query_timeout_seconds
            ),
            codec=AggregateCodec(clock),
            config=CoordinatorConfig.from_settings(settings),
        ),
        audit,
    )
    return Services(
        settings=settings,
        clock=clock,
        engine=engine,
        keys=keys,
        did=did,
        did_document=did_document,
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
        db=db,
        stores=stores,
        dataset_store=dataset_store,
        datasets=DatasetService(
            store=db,
            datasets=dataset_store,
            audit=audit,
            clock=clock,
            published=published,
            views=views,
            jobs=jobs,
        ),
        catalog=CatalogService(published=published, clock=clock, did=did, trusted_issuers=trusted),
        negotiations=negotiations,
        transfers=transfers,
        agreements=agreements,
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
        fhir=fhir,
        harvest=harvest,
        jobs=jobs,
        optouts=optouts,
        views=views,
        fulfilments=registry,
        dataplane=DataPlaneService(
            stores=stores,
            datasets=dataset_store,
            registry=registry,
            views=views,
            calls=DataPlaneCalls(engine),
            audit=audit,
            clock=clock,
            did=did,
            keys=keys,
            trusted_issuers=trusted,
            rate_limit=RateLimit(
                settings.dataplane_rate_limit,
                timedelta(seconds=settings.dataplane_rate_window_seconds),
            ),
            wait_seconds=settings.dataplane_wait_seconds,
            metrics=metrics,
        ),
        puller=puller,
        queries=queries,
        metrics=metrics,
    )
