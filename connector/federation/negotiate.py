"""Negotiating first where needed: a hospital named in a federated query (by its DID) with which
this connector holds no aggregate agreement yet gets one, from its harvested catalog.

The ``HarvestNegotiator`` looks up the hospital's datasets in the harvested index (harvest its
catalog first: ``POST /management/harvest``), keeps those distributed for aggregate queries
whose offers permit aggregate output, and asks for a contract on the first such offer, then the
next if the hospital refuses, until one is FINALIZED. A hospital with two such datasets is
ambiguous (its patients would be counted twice): the user negotiates for one and names the
agreement. The negotiation is the ordinary consumer one (signed by both parties, audited); it
runs under the query's per-hospital timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from catalog.formats import OutputType
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import NegotiationState
from connector.errors import PhemsError
from connector.federation.directory import allows_aggregate
from connector.federation.ports import (
    Hospital,
    HospitalUnreachable,
    NoAgreement,
    QueryRefused,
)
from connector.publishing.harvest import HarvestedDataset


class Harvested(Protocol):
    async def index(self) -> list[HarvestedDataset]: ...


class Negotiations(Protocol):
    """What ``connector.exchange.negotiations.NegotiationService`` offers a consumer."""

    async def request(
        self, *, counterparty_address: str, counterparty_did: str, offer: dict[str, Any]
    ) -> Negotiation: ...

    async def get_local(self, id: str) -> Negotiation: ...


class HarvestNegotiator:
    def __init__(
        self,
        harvested: Harvested,
        negotiations: Negotiations,
        *,
        poll_seconds: float = 0.1,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._harvested = harvested
        self._negotiations = negotiations
        self._poll = poll_seconds
        self._sleep = sleep
        self._monotonic = monotonic
        self._pending: dict[str, asyncio.Future[Hospital]] = {}

    async def agreement(self, did: str) -> Hospital:
        """The hospital with a new aggregate agreement, or a ``HospitalFailure`` saying why
        there is none. Concurrent queries naming one hospital share one negotiation."""
        running = self._pending.get(did)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Hospital] = asyncio.get_running_loop().create_future()
        self._pending[did] = future
        try:
            hospital = await self._negotiate(did)
        except asyncio.CancelledError:  # this caller's timeout: waiters try again
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: a waiter may not exist
            raise
        else:
            future.set_result(hospital)
            return hospital
        finally:
            del self._pending[did]

    async def _negotiate(self, did: str) -> Hospital:
        datasets = [
            d
            for d in await self._harvested.index()
            if d.provider_did == did and OutputType.AGGREGATE in d.dataset.output_types
        ]
        candidates = [d for d in datasets if any(allows_aggregate(o) for o in d.dataset.policies)]
        if not candidates:
            found = (
                f"its {len(datasets)} dataset(s) for aggregate queries offer no permission for "
                "aggregate output"
                if datasets
                else "the harvested catalog has no dataset of it for aggregate queries "
                "(harvest its catalog first)"
            )
            raise NoAgreement(f"no aggregate agreement with {did}, and none to negotiate: {found}")
        if len(candidates) > 1:
            listed = ", ".join(d.dataset.identifier for d in candidates)
            raise NoAgreement(
                f"{did} offers {len(candidates)} datasets for aggregate queries ({listed}): "
                "negotiate for one and name its agreement"
            )
        chosen = candidates[0]
        offers = [o for o in chosen.dataset.policies if allows_aggregate(o)]
        return await self._first_agreed(did, chosen, offers)

    async def _first_agreed(
        self, did: str, chosen: HarvestedDataset, offers: Sequence[dict[str, Any]]
    ) -> Hospital:
        refusals: list[str] = []
        for offer in offers:
            body = {**offer, "target": offer.get("target") or chosen.dataset.identifier}
            try:
                n = await self._negotiations.request(
                    counterparty_address=chosen.provider_address,
                    counterparty_did=did,
                    offer=body,
                )
            except PhemsError as exc:
                detail = f"cannot ask {did} for a contract: {exc.detail}"
                raise HospitalUnreachable(detail) from None
            n = await self._until_final(n)
            if n.state is NegotiationState.FINALIZED and n.agreement is not None:
                return Hospital(
                    did,
                    str(n.agreement.get("@id") or n.agreement.get("uid")),
                    chosen.dataset.identifier,
                    chosen.provider_address,
                    chosen.dataset.title,
                )
            reason = "; ".join(n.termination_reason) or n.termination_code or "no reason given"
            refusals.append(f"offer {offer.get('@id', '?')}: {reason}")
        listed = " | ".join(refusals)
        raise QueryRefused(f"{did} refused a contract for aggregate queries: {listed}")

    async def _until_final(self, n: Negotiation) -> Negotiation:
        """Follow the negotiation to FINALIZED or TERMINATED (the caller's timeout bounds it)."""
        while not n.state.is_terminal:
            await self._sleep(self._poll)
            n = await self._negotiations.get_local(n.id)
        return n
