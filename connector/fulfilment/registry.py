"""The installed fulfilments, one per output type: what the connector can deliver.

Catalog, dataset validation and transfer start read it: a format nothing can fulfil is neither
offered nor accepted once any fulfilment is installed.
"""

from __future__ import annotations

from collections.abc import Iterable

from catalog.formats import DSP_FORMATS, Format, OutputType
from connector.ports import Fulfilment


class FulfilmentRegistry:
    def __init__(self, fulfilments: Iterable[Fulfilment] = ()) -> None:
        self._by_type: dict[OutputType, Fulfilment] = {}
        for fulfilment in fulfilments:
            self.register(fulfilment)

    def register(self, fulfilment: Fulfilment) -> None:
        kind = fulfilment.output_type
        if kind in self._by_type:
            raise ValueError(f"a fulfilment for {kind.value} output is installed already")
        self._by_type[kind] = fulfilment

    def get(self, kind: OutputType | None) -> Fulfilment | None:
        return self._by_type.get(kind) if kind is not None else None

    @property
    def output_types(self) -> tuple[OutputType, ...]:
        return tuple(t for t in OutputType if t in self._by_type)

    @property
    def formats(self) -> tuple[Format, ...]:
        """The transfer formats that can be fulfilled, in the order of ``Format``."""
        return tuple(DSP_FORMATS[t] for t in self.output_types)
