"""DSP error bodies for our exceptions (HTTPS bindings: a 4xx carries a ContractNegotiationError,
TransferError or CatalogError). The HTTP status is the exception's own ``status``. For a server
side error (status >= 500) the reason is the generic title, never the exception's detail."""

from __future__ import annotations

from connector.dsp.catalog_messages import CatalogError
from connector.dsp.negotiation_messages import ContractNegotiationError
from connector.dsp.transfer_messages import TransferError
from connector.errors import PhemsError


def negotiation_error(
    exc: PhemsError, *, provider_pid: str | None = None, consumer_pid: str | None = None
) -> ContractNegotiationError:
    return ContractNegotiationError(
        provider_pid=provider_pid or None,
        consumer_pid=consumer_pid or None,
        code=exc.code,
        reason=[_reason(exc)],
    )


def transfer_error(
    exc: PhemsError, *, provider_pid: str | None = None, consumer_pid: str | None = None
) -> TransferError:
    return TransferError(
        provider_pid=provider_pid or None,
        consumer_pid=consumer_pid or None,
        code=exc.code,
        reason=[_reason(exc)],
    )


def catalog_error(exc: PhemsError) -> CatalogError:
    return CatalogError(code=exc.code, reason=[_reason(exc)])


def _reason(exc: PhemsError) -> str:
    return exc.detail if exc.status < 500 else exc.title
