"""The SQL stores of the exchange on one engine, as the composition root builds them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db.agreement_store import SqlAgreementStore
from connector.db.database import Database
from connector.db.negotiation_store import SqlNegotiationStore
from connector.db.outbox_store import SqlOutbox
from connector.db.transfer_store import SqlTransferStore
from connector.exchange.ports import DspStores


class SqlStores(DspStores):
    """``DspStores`` typed with the SQL implementations (tests reach their internals)."""

    db: Database
    negotiations: SqlNegotiationStore
    transfers: SqlTransferStore
    agreements: SqlAgreementStore
    outbox: SqlOutbox


def sql_stores(engine: AsyncEngine) -> SqlStores:
    db = Database(engine)
    negotiations = SqlNegotiationStore(db)
    return SqlStores(
        db=db,
        negotiations=negotiations,
        transfers=SqlTransferStore(db),
        agreements=SqlAgreementStore(db),
        outbox=SqlOutbox(db, negotiations),
    )
