"""A fulfilment that runs a function: for tests and benchmarks of the road around it, the way
httpx's ``MockTransport`` runs a handler instead of a network call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from catalog.formats import OutputType
from connector.ports import FlatViews, FulfilmentRequest, FulfilmentResult, RequestFacts

Handler = Callable[[FulfilmentRequest, RequestFacts, FlatViews], bytes]


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


class FakeFulfilment:
    """``facts`` (default: the output type alone) states what a request asks; ``handler``
    makes the answer from the request and the flat views it was given. ``calls`` records
    every ``fulfil`` so a test can see what reached the fulfilment, and what never did."""

    def __init__(
        self,
        output_type: OutputType,
        handler: Handler,
        *,
        facts: Callable[[FulfilmentRequest], RequestFacts] | None = None,
        media_type: str = "application/json",
    ) -> None:
        self._output_type = output_type
        self._handler = handler
        self._facts = facts
        self.media_type = media_type
        self.calls: list[tuple[FulfilmentRequest, RequestFacts, FlatViews]] = []

    @property
    def output_type(self) -> OutputType:
        return self._output_type

    def facts(self, request: FulfilmentRequest) -> RequestFacts:
        if self._facts is not None:
            return self._facts(request)
        return RequestFacts(output_type=self._output_type)

    async def prepare(
        self, request: FulfilmentRequest, facts: RequestFacts, views: FlatViews
    ) -> None:
        return None

    async def fulfil(
        self, request: FulfilmentRequest, facts: RequestFacts, views: FlatViews
    ) -> FulfilmentResult:
        self.calls.append((request, facts, views))
        body = self._handler(request, facts, views)
        return FulfilmentResult(self.media_type, _once(body), {"bytes": len(body)})
