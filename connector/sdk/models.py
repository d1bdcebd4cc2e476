"""What the data user SDK returns: typed views of the management API's JSON (the JSON itself
stays on each as ``raw`` or ``answer``). pandas is imported on first use of a ``frame``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connector.federation.frame import answer_frame

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Dataset:
    """A dataset found in the harvested catalog, with the offers its provider showed us."""

    provider: str  # the provider's DID
    provider_address: str  # its DSP base URL
    publisher: str
    id: str
    title: str
    description: str
    output_types: tuple[str, ...]
    individuals: int | None
    min_age: int | None
    max_age: int | None
    offers: tuple[dict[str, Any], ...] = field(repr=False)
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Dataset:
        return cls(
            provider=str(item["provider"]),
            provider_address=str(item["providerAddress"]),
            publisher=str(item.get("publisher") or ""),
            id=str(item["id"]),
            title=str(item.get("title") or ""),
            description=str(item.get("description") or ""),
            output_types=tuple(item.get("outputTypes") or ()),
            individuals=item.get("individuals"),
            min_age=item.get("minAge"),
            max_age=item.get("maxAge"),
            offers=tuple(item.get("offers") or ()),
            raw=dict(item),
        )


class Datasets(list[Dataset]):
    """Search results: a list of ``Dataset``, and ``.frame``, the same as a DataFrame."""

    @property
    def frame(self) -> pd.DataFrame:
        return datasets_frame(self)


def datasets_frame(datasets: Sequence[Dataset]) -> pd.DataFrame:
    """Datasets as a DataFrame, one row a dataset."""
    import pandas as pd

    columns = ["publisher", "id", "title", "output_types", "individuals", "min_age", "max_age",
               "provider", "provider_address"]  # fmt: skip
    rows = [{c: getattr(d, c) for c in columns} for d in datasets]
    frame = pd.DataFrame(rows, columns=columns)
    frame["output_types"] = frame["output_types"].map(", ".join)
    frame["individuals"] = frame["individuals"].astype("Int64")
    return frame


def offer_output_type(offer: Mapping[str, Any]) -> str | None:
    """The ``phems:outputType`` an offer's policy requires (aggregate, synthetic, ...), if any."""
    text = json.dumps(offer)
    for kind in ("aggregate", "synthetic", "anonymized"):
        if f'"rightOperand": "{kind}"' in text:
            return kind
    return None


@dataclass(frozen=True)
class Agreement:
    """A signed contract agreement this connector holds as consumer."""

    id: str
    provider: str  # the provider's DID (assigner)
    consumer: str  # ours (assignee)
    dataset: str  # the dataset's id at the provider (target)
    negotiation_id: str
    provider_address: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def output_type(self) -> str | None:
        return offer_output_type(self.raw)

    @classmethod
    def from_negotiation(cls, negotiation: Mapping[str, Any]) -> Agreement:
        agreement = negotiation["agreement"]
        return cls(
            id=str(agreement["@id"]),
            provider=str(agreement.get("assigner") or negotiation.get("counterpartyId")),
            consumer=str(agreement.get("assignee") or ""),
            dataset=str(agreement.get("target") or ""),
            negotiation_id=str(negotiation["id"]),
            provider_address=str(negotiation.get("counterpartyAddress") or ""),
            raw=dict(agreement),
        )


@dataclass(frozen=True)
class Verified:
    """An agreement whose two signatures were checked offline against the parties' keys."""

    agreement_id: str
    provider: str
    consumer: str


@dataclass(frozen=True)
class QueryResult:
    """The combined answer of a federated aggregate query."""

    answer: dict[str, Any] = field(repr=False)

    @property
    def measure_report(self) -> dict[str, Any] | None:
        """The combined FHIR MeasureReport."""
        report = self.answer.get("measureReport")
        return report if isinstance(report, dict) else None

    @property
    def frame(self) -> pd.DataFrame:
        """One row per count or score (``connector.federation.frame``)."""
        return answer_frame(self.answer)

    @property
    def mode(self) -> str:
        return str(self.answer.get("mode"))

    @property
    def status(self) -> str:
        """complete, partial (some hospitals missing) or failed."""
        return str(self.answer.get("status"))

    @property
    def total(self) -> int | None:
        total = self.answer.get("total")
        return total if isinstance(total, int) else None

    @property
    def withheld(self) -> str | None:
        withheld = self.answer.get("withheld")
        return withheld if isinstance(withheld, str) else None

    @property
    def rounds(self) -> int:
        return int(self.answer.get("rounds") or 0)

    @property
    def hospitals(self) -> list[dict[str, Any]]:
        """Each hospital's status (answered, refused, budget-exhausted, unreachable, ...)."""
        return list(self.answer.get("hospitals", []))

    def __repr__(self) -> str:
        return f"QueryResult(mode={self.mode!r}, status={self.status!r}, total={self.total!r})"


@dataclass(frozen=True)
class SyntheticResult:
    """Synthetic patients fetched under an agreement: the FHIR Bundle as the hospital sent it,
    and the quality and privacy report it carries (computed at the hospital)."""

    transfer_id: str
    bundle: dict[str, Any] = field(repr=False)
    report: dict[str, Any] | None = field(repr=False)

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        """One flat DataFrame per resource type (``connector.synthetic.frames``)."""
        from connector.synthetic.frames import bundle_frames

        return bundle_frames(self.bundle)

    @property
    def patients(self) -> int:
        entries = self.bundle.get("entry") or []
        return sum(e.get("resource", {}).get("resourceType") == "Patient" for e in entries)

    @property
    def quality(self) -> float | None:
        """The SDMetrics overall quality score (0-1) of the model that made them."""
        score = ((self.report or {}).get("quality") or {}).get("score")
        return float(score) if isinstance(score, int | float) else None

    def __repr__(self) -> str:
        return f"SyntheticResult(patients={self.patients}, quality={self.quality})"
