"""All tables of the store. Changes here need an Alembic revision in ``migrations/versions``."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

used_jtis = sa.Table(
    "used_jtis",
    metadata,
    sa.Column("jti", sa.String(255), primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

# The hash chain (see connector/audit.py): one row per entry, linked by prev_hash. Written only
# by the chainer, from audit_pending.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(512), nullable=False),
    sa.Column("event", sa.String(128), nullable=False),
    sa.Column("negotiation_id", sa.String(255)),
    sa.Column("agreement_id", sa.String(255)),
    sa.Column("transfer_id", sa.String(255)),
    sa.Column("purpose", sa.String(512)),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Entries written in their business transaction, not yet chained. The chainer moves them into
# audit_log in id order (see connector/audit.py); ids only order the rows waiting here.
audit_pending = sa.Table(
    "audit_pending",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(512), nullable=False),
    sa.Column("event", sa.String(128), nullable=False),
    sa.Column("negotiation_id", sa.String(255)),
    sa.Column("agreement_id", sa.String(255)),
    sa.Column("transfer_id", sa.String(255)),
    sa.Column("purpose", sa.String(512)),
    sa.Column("details", sa.Text, nullable=False),
)

# One row (id=1): the newest chained entry's seq and hash. Locked while chaining, so chainers
# of several replicas take turns, and lets `audit verify` notice a deleted tail.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

_ts = sa.DateTime(timezone=True)

# Datasets this connector offers, with their ODRL offers (JSON) and HealthDCAT-AP metadata.
datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("title", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # published | retired
    sa.Column("document", sa.Text, nullable=False),  # JSON: metadata, offers, formats
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("modified_at", _ts, nullable=False),
)

negotiations = sa.Table(
    "negotiations",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),  # our pid
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("provider_pid", sa.String(255)),
    sa.Column("consumer_pid", sa.String(255)),
    sa.Column("counterparty_did", sa.String(512), nullable=False),
    sa.Column("counterparty_address", sa.String(2048)),
    sa.Column("dataset_id", sa.String(512)),
    sa.Column("approval", sa.String(16)),  # None | pending | approved | rejected
    sa.Column("document", sa.Text, nullable=False),  # JSON of the rest of the negotiation
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.UniqueConstraint("role", "counterparty_did", "consumer_pid", name="uq_negotiation_cpid"),
    # Consumer side of a provider-initiated negotiation: one per initial offer (0006).
    sa.Index("uq_negotiation_ppid", "role", "counterparty_did", "provider_pid", unique=True),
)

transfers = sa.Table(
    "transfers",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("provider_pid", sa.String(255)),
    sa.Column("consumer_pid", sa.String(255)),
    sa.Column("agreement_id", sa.String(255)),
    sa.Column("counterparty_did", sa.String(512), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.UniqueConstraint("role", "counterparty_did", "consumer_pid", name="uq_transfer_cpid"),
)

agreements = sa.Table(
    "agreements",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("negotiation_id", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("dataset_id", sa.String(512), nullable=False),
    sa.Column("provider_did", sa.String(512), nullable=False),
    sa.Column("consumer_did", sa.String(512), nullable=False),
    sa.Column("agreement", sa.Text, nullable=False),  # JSON, without signature property
    sa.Column("provider_signature", sa.Text, nullable=False),
    sa.Column("consumer_signature", sa.Text, nullable=False),
    sa.Column("uses", sa.Integer, nullable=False, default=0),
    sa.Column("epsilon_spent", sa.Float, nullable=False, default=0.0),
    sa.Column("created_at", _ts, nullable=False),
)

# Outbound DSP messages. Handlers insert rows in the transaction that records the state change;
# one loop claims due rows (FOR UPDATE SKIP LOCKED), sends them and marks them sent.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("process_kind", sa.String(16), nullable=False),  # negotiation | transfer
    sa.Column("process_id", sa.String(255), nullable=False, index=True),
    sa.Column("message_type", sa.String(64), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("audience", sa.String(512), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", _ts, nullable=False, index=True),
    sa.Column("sent_at", _ts),
    sa.Column("failed_at", _ts),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", _ts, nullable=False),
    sa.Index(
        "ix_outbox_due",
        "next_attempt_at",
        postgresql_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
    ),
)

# The merged index of other connectors' catalogs (data user role), one row per dataset.
harvested_datasets = sa.Table(
    "harvested_datasets",
    metadata,
    sa.Column("provider_did", sa.String(512), primary_key=True),
    sa.Column("dataset_id", sa.String(512), primary_key=True),
    sa.Column("provider_address", sa.String(2048), nullable=False),  # DSP base URL
    sa.Column("modified", sa.String(64)),  # dct:modified as the provider wrote it
    sa.Column("document", sa.Text, nullable=False),  # JSON: HealthDCAT-AP model + visible offers
    sa.Column("harvested_at", _ts, nullable=False),
)

# Durable long jobs (view cache builds, statistics, synthesizer fits), claimed by a loop with a
# lease like the outbox (connector/jobs). ``key`` makes enqueueing idempotent; ``node`` pins a
# job to the replica whose data directory it writes (None: any replica).
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("node", sa.String(255)),
    sa.Column("params", sa.Text, nullable=False),  # JSON
    sa.Column("state", sa.String(16), nullable=False),  # queued | running | done | failed
    sa.Column("stage", sa.String(255), nullable=False),
    sa.Column("percent", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("run_after", _ts, nullable=False),
    sa.Column("lease_until", _ts),
    sa.Column("owner", sa.String(255)),
    sa.Column("result", sa.Text),  # JSON
    sa.Column("error", sa.Text),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("finished_at", _ts),
    sa.UniqueConstraint("key", name="uq_jobs_key"),
    sa.Index("ix_jobs_claim", "state", "run_after"),
)

# Patients who opted out of secondary use (the hospital's list; FHIR Consents are read from the
# data). Removed inside the seam before any fulfilment sees the data.
optouts = sa.Table(
    "optouts",
    metadata,
    sa.Column("patient_id", sa.String(255), primary_key=True),
    sa.Column("added_at", _ts, nullable=False),
    sa.Column("added_by", sa.String(512), nullable=False),
)

# One row per data plane call that was let through (its budget spent), for rate limits.
dataplane_calls = sa.Table(
    "dataplane_calls",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("consumer", sa.String(512), nullable=False),
    sa.Column("agreement_id", sa.String(255), nullable=False),
    sa.Column("transfer_id", sa.String(255), nullable=False),
    sa.Column("output_type", sa.String(32), nullable=False),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("called_at", _ts, nullable=False),
    sa.Index("ix_dataplane_calls_consumer", "consumer", "called_at"),
)

# Released aggregate answers (JSON: noisy, rounded values, suppressed cells null; never a true
# value) by dataset, data version and query digest: a repeated query gets the same answer.
aggregate_answers = sa.Table(
    "aggregate_answers",
    metadata,
    sa.Column("dataset_id", sa.String(512), primary_key=True),
    sa.Column("data_version", sa.String(255), primary_key=True),
    sa.Column("query_digest", sa.String(64), primary_key=True),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
)

# Catalog UI sessions signed out before they expired (kept until then).
ui_signouts = sa.Table(
    "ui_signouts",
    metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("expires_at", _ts, nullable=False),
)

# Fitted synthesizers (connector/synthetic): one row per dataset, data version and settings;
# the model files live in the data directory, at ``directory``.
synthetic_models = sa.Table(
    "synthetic_models",
    metadata,
    sa.Column("dataset_id", sa.String(512), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),  # data version + settings digest
    sa.Column("version", sa.String(255), nullable=False),
    sa.Column("backend", sa.String(64), nullable=False),
    sa.Column("directory", sa.String(2048), nullable=False),
    sa.Column("fitted_at", _ts, nullable=False),
    sa.Column("accepted", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("summary", sa.Text, nullable=False),  # JSON: scores only
)
