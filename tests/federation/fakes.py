"""Fakes for the federation ports: a cell codec for a tiny measure (patients, by sex), hospitals
that answer in plain or secure mode from fixed cells, and a channel and directory over them.

The hospitals mask with the real code (``connector.federation.hospital.answer_session``) and
fetch each other's keys through whatever resolver the test hands them (the real
``DidResolver`` over the DID server on loopback, or ``MemoryKeys``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from connector.errors import BadRequestError, PhemsError
from connector.federation.hospital import KeyResolver, answer_session
from connector.federation.ports import (
    BudgetExhausted,
    Hospital,
    HospitalReply,
    HospitalUnreachable,
    NoAgreement,
    QueryRefused,
)
from connector.federation.wire import read_session
from connector.identity.did import Relationship
from connector.identity.signing import PrivateKey, PublicJwk, generate_key

POPULATION = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/measure-population",
            "code": "initial-population",
        }
    ]
}


class SexCodec:
    """Queries ``{"cohort": ..., "strata": ["female", "male", ...]}``: the patient count, then
    one count per stratum."""

    def layout(self, query: Mapping[str, Any]) -> list[str]:
        strata = query.get("strata", [])
        if not isinstance(strata, list) or not all(isinstance(s, str) for s in strata):
            raise BadRequestError("strata: a list of strings")
        return ["patients", *(f"sex={s}" for s in strata)]

    def report(self, query: Mapping[str, Any], cells: Sequence[int | None]) -> dict[str, Any]:
        def population(count: int | None) -> list[dict[str, Any]]:
            shown = {} if count is None else {"count": max(count, 0)}
            return [{"code": POPULATION, **shown}]

        strata = [
            {"value": {"text": name.removeprefix("sex=")}, "population": population(count)}
            for name, count in zip(self.layout(query)[1:], cells[1:], strict=True)
        ]
        group: dict[str, Any] = {"population": population(cells[0])}
        if strata:
            group["stratifier"] = [{"code": [{"text": "sex"}], "stratum": strata}]
        return {
            "resourceType": "MeasureReport",
            "status": "complete",
            "type": "summary",
            "measure": "https://example.org/Measure/test",
            "period": {"start": "2019-01-01", "end": "2024-12-31"},
            "group": [group],
        }

    def cells(self, query: Mapping[str, Any], report: Mapping[str, Any]) -> list[int | None]:
        try:
            group = report["group"][0]
            out = [group["population"][0].get("count")]
            strata = group.get("stratifier", [{"stratum": []}])[0]["stratum"]
            out += [s["population"][0].get("count") for s in strata]
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"no {exc} where the query's cells are") from None
        if len(out) != len(self.layout(query)):
            raise ValueError("another number of strata than the query's")
        return out


class MemoryKeys:
    """A ``KeyResolver`` over a dict of DIDs to X25519 public keys."""

    def __init__(self) -> None:
        self.keys: dict[str, PublicJwk] = {}

    async def resolve_key(
        self, did_url_or_kid: str, relationship: Relationship = "assertionMethod"
    ) -> PublicJwk:
        assert relationship == "keyAgreement"
        return self.keys[did_url_or_kid]


@dataclass
class FakeHospital:
    """A hospital with fixed true cells and a fixed ("cached") noise draw. ``behaviour``:
    ``ok``, ``down``, ``hang``, ``refuse``, ``budget``, ``no-agreement``, ``junk``,
    ``short`` (a share one value short), ``float`` (a share with a float), ``range`` (a
    value out of [0, modulus)), ``drop-after``
    (answers the first round, then is down)."""

    did: str
    true_cells: list[int]
    noise: list[int]
    key: PrivateKey = field(default_factory=lambda: generate_key("X25519"))
    behaviour: str = "ok"
    min_cell: int = 10
    asked: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def noisy(self) -> list[int]:
        return [t + n for t, n in zip(self.true_cells, self.noise, strict=True)]

    def plain_report(self, codec: SexCodec, query: Mapping[str, Any]) -> dict[str, Any]:
        cells = [None if v < self.min_cell else round(v, -1) for v in self.noisy]
        return codec.report(query, cells)

    async def answer(self, codec: SexCodec, resolver: KeyResolver, body: bytes) -> bytes:
        self.asked += 1
        query = orjson.loads(body)
        self.bodies.append(query)
        failing = {
            "down": HospitalUnreachable("connection refused (http://127.0.0.1:9/dataplane)"),
            "refuse": QueryRefused("policy: purpose is not permitted"),
            "budget": BudgetExhausted("epsilon budget exhausted: 1.0 of 1.0 spent"),
            "no-agreement": NoAgreement("no aggregate agreement; negotiate one first"),
        }
        if self.behaviour in failing:
            raise failing[self.behaviour]
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        if self.behaviour == "drop-after" and self.asked > 1:
            raise HospitalUnreachable("connection reset")
        session = read_session(query)
        if session is None:
            return orjson.dumps(self.plain_report(codec, query))
        share = await answer_session(
            query,
            session,
            self.noisy,
            layout=codec.layout(query),
            own_did=self.did,
            key=self.key,
            resolver=resolver,
        )
        out = share.as_json()
        if self.behaviour == "junk":
            return b"<html>502 Bad Gateway</html>"
        if self.behaviour == "short":
            out["maskedVector"] = out["maskedVector"][:-1]
        if self.behaviour == "float":
            out["maskedVector"][0] = 0.5
        if self.behaviour == "range":
            out["maskedVector"][2] = session.modulus
        return orjson.dumps(out)


class FakeNetwork:
    """The ``HospitalDirectory`` and ``QueryChannel`` over a set of fake hospitals."""

    def __init__(self, hospitals: Sequence[FakeHospital], resolver: KeyResolver) -> None:
        self.by_did = {h.did: h for h in hospitals}
        self.codec = SexCodec()
        self.resolver = resolver

    async def hospitals(self, named: Sequence[str] = ()) -> list[Hospital]:
        dids = list(named) or list(self.by_did)
        return [
            Hospital(d, agreement_id=f"agreement-{i}", dataset_id="ds", label=f"H{i}")
            for i, d in enumerate(dids)
        ]

    async def ask(self, hospital: Hospital, body: bytes) -> HospitalReply:
        target = self.by_did.get(hospital.did)
        if target is None:
            raise NoAgreement(f"no aggregate agreement with {hospital.did}")
        try:
            return HospitalReply(await target.answer(self.codec, self.resolver, body))
        except PhemsError as exc:  # the hospital's 4xx/5xx, as the data plane client sees it
            raise QueryRefused(f"HTTP {exc.status}: {exc.detail}") from None
