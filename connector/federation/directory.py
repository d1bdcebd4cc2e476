"""Which hospitals a federated query asks: the ``HospitalDirectory`` over the agreements this
connector holds as consumer.

An agreement is an aggregate one when one of its permissions has no ``outputType`` constraint
that refuses ``aggregate`` among the constraints it requires (those inside ``or`` / ``xone``
are left to the hospital, which evaluates the whole policy on every call). With no
names, every hospital with an aggregate agreement is asked; names are DIDs or agreement ids.
A hospital with two aggregate agreements (two datasets) is ambiguous: its patients would be
counted twice, so the user names the agreement to use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from catalog.formats import OutputType
from connector.errors import BadRequestError, PhemsError
from connector.federation.ports import Hospital
from connector.policy import Constraint, EvaluationContext, LeftOperand, Logic, validate_policy
from connector.policy.checks import check
from connector.policy.model import ConstraintNode


@dataclass(frozen=True)
class HeldAgreement:
    """An agreement this connector holds as consumer, as the directory needs it."""

    id: str
    provider_did: str
    dataset_id: str
    policy: Mapping[str, Any]
    address: str | None = None
    label: str = ""


class AgreementSource(Protocol):
    async def consumer_agreements(self) -> list[HeldAgreement]:
        """Every agreement this connector holds as consumer (FINALIZED negotiations)."""
        ...


_AGGREGATE = EvaluationContext(
    caller="", now=datetime.fromtimestamp(0, UTC), output_type=OutputType.AGGREGATE.value
)


def _required(nodes: Sequence[ConstraintNode]) -> Iterator[Constraint]:
    """The atoms a rule requires: its own and those under ``and`` / ``andSequence``."""
    for node in nodes:
        if isinstance(node, Constraint):
            yield node
        elif node.logic in (Logic.AND, Logic.AND_SEQUENCE):
            yield from _required(node.constraints)


def allows_aggregate(policy: Mapping[str, Any]) -> bool:
    """Whether the agreement's policy permits aggregate output (False when it cannot be read)."""
    try:
        parsed = validate_policy(policy)
    except PhemsError:
        return False
    return any(
        all(
            check(atom, _AGGREGATE)[0]
            for atom in _required(permission.constraints)
            if atom.left_operand is LeftOperand.OUTPUT_TYPE
        )
        for permission in parsed.permissions
    )


class AgreementDirectory:
    def __init__(self, source: AgreementSource) -> None:
        self._source = source

    async def hospitals(self, named: Sequence[str] = ()) -> list[Hospital]:
        held = [a for a in await self._source.consumer_agreements() if allows_aggregate(a.policy)]
        by_id = {a.id: a for a in held}
        chosen: list[HeldAgreement | str] = []
        if named:
            for name in dict.fromkeys(named):
                if name in by_id:
                    chosen.append(by_id[name])
                    continue
                theirs = [a for a in held if a.provider_did == name]
                chosen.append(self._one(name, theirs) if theirs else name)
        else:
            for did in dict.fromkeys(a.provider_did for a in held):
                chosen.append(self._one(did, [a for a in held if a.provider_did == did]))
        return [
            Hospital(c)
            if isinstance(c, str)
            else Hospital(c.provider_did, c.id, c.dataset_id, c.address, c.label)
            for c in chosen
        ]

    @staticmethod
    def _one(did: str, agreements: list[HeldAgreement]) -> HeldAgreement:
        if len(agreements) > 1:
            listed = ", ".join(f"{a.id} (dataset {a.dataset_id})" for a in agreements)
            raise BadRequestError(
                f"hospitals: {did} has {len(agreements)} aggregate agreements ({listed}); "
                "name the one to ask by its agreement id"
            )
        return agreements[0]
