"""The data user's Python client: harvest, search, negotiate, query, verify, all through the
data user's own connector (its management API over HTTP), synchronous for scripts and
Jupyter::

    from connector.sdk import Client

    with Client("http://127.0.0.1:8080", api_key) as phems:
        phems.harvest("http://hospital-a:8080/dsp/2025-1", "http://hospital-b:8080/dsp/2025-1")
        found = phems.search("asthma", output="aggregate")
        agreements = [phems.negotiate(d) for d in found]
        result = phems.query("cohort.json", hospitals=agreements, mode="secure")
        result.frame, result.measure_report

Errors are ``connector.sdk.errors`` (one tree under ``PhemsError``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx

from connector.sdk.errors import (
    BY_STATUS,
    BadRequest,
    BudgetExhausted,
    ClientError,
    InvalidAgreement,
    NegotiationRefused,
    NotFound,
    NotReady,
    PolicyRefused,
    QueryFailed,
    Unreachable,
    from_response,
)
from connector.sdk.models import (
    Agreement,
    Dataset,
    Datasets,
    QueryResult,
    SyntheticResult,
    Verified,
    offer_output_type,
)

Hospital = str | Agreement | Dataset
FAILED_AS: dict[str, type[ClientError]] = {
    "refused": PolicyRefused,
    "budget-exhausted": BudgetExhausted,
    "unreachable": Unreachable,
    "timeout": Unreachable,
}


def who(hospital: Mapping[str, Any]) -> str:
    """A hospital of a query answer as people read it: its label and DID."""
    did, label = str(hospital.get("did")), hospital.get("label")
    return f"{label} ({did})" if label and label != did else did


class Client:
    """The management API of the data user's own connector (``base_url``, its API key)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._http = httpx.Client(
            base_url=self.base_url + "/management",
            headers={"X-Api-Key": api_key},
            timeout=httpx.Timeout(timeout),
            transport=transport,
            trust_env=False,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- HTTP -------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json_body: Any = None,
        params: Any = None,
        timeout: httpx.Timeout | None = None,
    ) -> Any:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._http.request(method, path, json=json_body, params=params, **extra)
        except httpx.TransportError as exc:
            raise Unreachable(
                f"cannot reach the connector at {self.base_url}: {exc or type(exc).__name__}",
                url=self.base_url,
            ) from None
        if response.status_code >= 400:
            raise from_response(response, what)
        return response.json()

    # -- catalogs ---------------------------------------------------------------------------

    def harvest(self, *catalog_urls: str) -> dict[str, Any]:
        """Harvest these hospitals' DSP catalogs (their DSP base URLs; none: the connector's
        ``PHEMS_HARVEST_TARGETS``) into the connector's index. The report names each hospital
        and, for one that failed, why; ``Unreachable`` when none could be harvested."""
        body = {"targets": list(catalog_urls)} if catalog_urls else None
        report: dict[str, Any] = self._call("POST", "/harvest", "harvest", json_body=body)
        targets = report.get("targets", [])
        if targets and all(t.get("state") == "failed" for t in targets):
            reasons = "; ".join(f"{t['address']}: {t.get('error')}" for t in targets)
            raise Unreachable(f"harvest: no catalog could be harvested: {reasons}")
        return report

    def search(
        self,
        text: str | None = None,
        *,
        hospital: str | Sequence[str] | None = None,
        output: str | Sequence[str] | None = None,
        min_age: int | None = None,
        max_age: int | None = None,
    ) -> Datasets:
        """The harvested datasets matching every word of ``text`` and each filter (publisher
        names, output types such as ``aggregate`` or ``synthetic``, an age range that must
        overlap the dataset's); ``.frame`` shows them as a DataFrame."""
        params: list[tuple[str, str | int]] = [("q", text or "")]
        params += [("hospital", h) for h in _many(hospital)]
        params += [("output", o) for o in _many(output)]
        params += [(k, v) for k, v in (("min_age", min_age), ("max_age", max_age)) if v is not None]
        found = self._call("GET", "/harvest/datasets", "search", params=params)
        return Datasets(Dataset.from_json(item) for item in found)

    def catalog(self, provider_address: str) -> dict[str, Any]:
        """A provider's DSP catalog, asked now (it lists what this connector may use)."""
        catalog: dict[str, Any] = self._call(
            "POST",
            "/catalog/request",
            f"catalog of {provider_address}",
            json_body={"counterpartyAddress": provider_address},
        )
        return catalog

    # -- negotiation ------------------------------------------------------------------------

    def negotiate(
        self,
        dataset: Dataset | str,
        provider: str | None = None,
        *,
        output: str = "aggregate",
        offer: str | None = None,
        timeout: float = 60.0,
    ) -> Agreement:
        """Negotiate a contract for ``dataset`` (found by ``search``, or its id with the
        provider's DSP base URL) on its offer for ``output`` (or the offer whose ``@id`` is
        ``offer``), and wait for the signed agreement. ``NegotiationRefused`` names the
        provider's reason; ``Unreachable`` a provider that cannot be reached."""
        negotiation_id = self.start_negotiation(dataset, provider, output=output, offer=offer)
        return self.wait_for_agreement(negotiation_id, timeout=timeout)

    def start_negotiation(
        self,
        dataset: Dataset | str,
        provider: str | None = None,
        *,
        output: str = "aggregate",
        offer: str | None = None,
    ) -> str:
        """Ask for a contract and return the negotiation's id at once (REQUESTED)."""
        dataset_id = dataset.id if isinstance(dataset, Dataset) else dataset
        address = provider or (dataset.provider_address if isinstance(dataset, Dataset) else None)
        if not address:
            raise BadRequest(f"negotiate {dataset_id}: give the provider's DSP base URL")
        catalog = self.catalog(address)  # the offers as they stand now, for us
        entry = _catalog_dataset(catalog, dataset_id, address)
        chosen = _choose_offer(
            entry, offer=offer, output=output, where=f"{dataset_id} at {address}"
        )
        body = {"counterpartyAddress": address, "offer": chosen | {"target": entry["@id"]}}
        started = self._call("POST", "/negotiations", f"negotiate {dataset_id}", json_body=body)
        return str(started["id"])

    def negotiation(self, negotiation_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call(
            "GET", f"/negotiations/{negotiation_id}", f"negotiation {negotiation_id}"
        )
        return found

    def wait_for_agreement(self, negotiation_id: str, *, timeout: float = 60.0) -> Agreement:
        """Follow a negotiation until it is FINALIZED (the agreement) or TERMINATED
        (``NegotiationRefused``); ``NotReady`` when neither happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            n = self.negotiation(negotiation_id)
            if n["state"] == "FINALIZED":
                return Agreement.from_negotiation(n)
            if n["state"] == "TERMINATED":
                reason = "; ".join(n.get("terminationReason") or []) or "no reason given"
                raise NegotiationRefused(
                    f"negotiation with {n.get('counterpartyId')} refused: {reason}",
                    url=str(n.get("counterpartyAddress") or ""),
                )
            if time.monotonic() > deadline:
                raise NotReady(
                    f"negotiation {negotiation_id} with {n.get('counterpartyId')} is still "
                    f"{n['state']} after {timeout:g} s (a person may have to approve it)"
                )
            time.sleep(pause)
            pause = min(pause * 1.5, 1.0)

    def agreements(self) -> list[Agreement]:
        """The agreements this connector holds as consumer."""
        held = self._call("GET", "/agreements", "agreements")
        return [
            Agreement(
                id=a["id"],
                provider=a["providerDid"],
                consumer=a["consumerDid"],
                dataset=a.get("datasetId") or "",
                negotiation_id=a["negotiationId"],
                provider_address="",
                raw=a["agreement"],
            )
            for a in held
            if a.get("role") == "consumer"
        ]

    def verify(self, agreement: Agreement | str) -> Verified:
        """Export an agreement and check both signatures offline against the parties' DID
        keys (``phems-connector agreements verify``); ``InvalidAgreement`` names the problem."""
        from connector.errors import AuthenticationError
        from connector.identity.agreement_proof import verify_proof

        agreement_id = agreement.id if isinstance(agreement, Agreement) else agreement
        proof = self._call(
            "GET", f"/agreements/{agreement_id}/export", f"export agreement {agreement_id}"
        )
        try:
            result = verify_proof(proof)
        except AuthenticationError as exc:
            raise InvalidAgreement(f"agreement {agreement_id} NOT valid: {exc.detail}") from None
        return Verified(result.agreement_id, result.provider, result.consumer)

    # -- aggregate queries ------------------------------------------------------------------

    def query(
        self,
        query: Mapping[str, Any] | str | Path,
        hospitals: Iterable[Hospital] = (),
        *,
        mode: Literal["plain", "secure"] = "plain",
        timeout: float | None = None,
    ) -> QueryResult:
        """Run an aggregate query (a CCDL cohort with its measures, as a dict or a JSON file)
        at the hospitals of ``hospitals`` (agreements, datasets found by ``search``, DIDs or
        agreement ids; none: every aggregate agreement held), plain or with secure
        aggregation. A partial answer is returned (``.status``, ``.hospitals``); when no
        hospital answered, the error says why for each."""
        body: dict[str, Any] = {"query": _read_query(query), "mode": mode}
        named = [_hospital_key(h) for h in hospitals]
        if named:
            body["hospitals"] = named
        if timeout is not None:
            body["timeoutSeconds"] = timeout
        # the connector waits for the hospitals, with its own timeouts and rounds
        wait = httpx.Timeout(10.0, read=3600.0)
        answer = self._call("POST", "/queries", "query", json_body=body, timeout=wait)
        if answer.get("status") == "failed":
            raise _no_answer(answer)
        return QueryResult(answer)

    # -- synthetic patients -----------------------------------------------------------------

    def synthetic(
        self,
        agreement: Agreement | Dataset | str,
        patients: int = 100,
        *,
        seed: int | None = None,
        timeout: float = 600.0,
        waiting: Callable[[float, str], None] | None = None,
    ) -> SyntheticResult:
        """Synthetic patients as a FHIR Bundle with its quality and privacy report, under a
        synthetic agreement (or its id; a dataset found by ``search`` is negotiated for
        first). A transfer in the synthetic format is started, then the hospital is asked
        through it; while it prepares the data or fits its model (503 with a retry time) the
        call waits, up to ``timeout`` seconds in all (``waiting(seconds, why)`` is told before
        each wait), then raises ``NotReady``. The policy's patient limit refuses more
        (``PolicyRefused``), a spent ``count`` or rate limit is ``BudgetExhausted``."""
        import tempfile

        from connector.synthetic.client import (
            ConnectorUnreachable,
            FetchRefused,
            FetchTimedOut,
            fetch,
        )

        if isinstance(agreement, Dataset):
            agreement = self.negotiate(agreement, output="synthetic")
        agreement_id = agreement.id if isinstance(agreement, Agreement) else agreement
        with tempfile.TemporaryDirectory(prefix="phems-synthetic-") as tmp:
            out = Path(tmp) / "bundle.json"
            try:
                fetched = fetch(
                    out, connector=self.base_url, api_key=self._api_key,
                    agreement_id=agreement_id, patients=patients, seed=seed,
                    timeout=timeout, waiting=waiting,
                )  # fmt: skip
            except FetchTimedOut as exc:
                raise NotReady(f"synthetic patients: {exc}") from None
            except ConnectorUnreachable as exc:
                raise Unreachable(f"synthetic patients: {exc}", url=self.base_url) from None
            except FetchRefused as exc:
                kind = BY_STATUS.get(exc.status, ClientError)
                raise kind(f"synthetic patients: {exc}", url=self.base_url) from None
            bundle = json.loads(out.read_bytes())
        # the Bundle's last entry, a DocumentReference, carries the report (fetch reads it)
        return SyntheticResult(fetched.transfer_id, bundle, fetched.report)


def _many(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _catalog_dataset(catalog: Mapping[str, Any], dataset_id: str, where: str) -> dict[str, Any]:
    entries = catalog.get("dataset") or []
    entries = entries if isinstance(entries, list) else [entries]
    for entry in entries:
        iri = str(entry.get("@id", ""))
        if iri == dataset_id or iri.endswith("/" + dataset_id):
            return dict(entry)
    raise NotFound(f"negotiate {dataset_id}: {where} offers no such dataset to this connector")


def _choose_offer(
    entry: Mapping[str, Any], *, offer: str | None, output: str, where: str
) -> dict[str, Any]:
    offers = entry.get("hasPolicy") or []
    offers = offers if isinstance(offers, list) else [offers]
    for candidate in offers:
        if offer is not None and candidate.get("@id") == offer:
            return dict(candidate)
        if offer is None and offer_output_type(candidate) == output:
            return dict(candidate)
    wanted = f"offer {offer}" if offer else f"an offer for {output} output"
    raise NotFound(f"negotiate {where}: no {wanted} is shown to this connector")


def _read_query(query: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(query, Mapping):
        return dict(query)
    path = Path(query)
    try:
        parsed = json.loads(path.read_text())
    except OSError as exc:
        raise BadRequest(f"query: cannot read {path}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"query: {path} is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise BadRequest(f"query: {path} is not a JSON object")
    return parsed


def _hospital_key(hospital: Hospital) -> str:
    if isinstance(hospital, Agreement):
        return hospital.id
    if isinstance(hospital, Dataset):
        return hospital.provider
    return hospital


def _no_answer(answer: Mapping[str, Any]) -> ClientError:
    hospitals = list(answer.get("hospitals", []))
    reasons = "; ".join(f"{who(h)}: {h.get('status')}: {h.get('detail')}" for h in hospitals)
    message = f"no hospital answered: {reasons}"
    kinds = {FAILED_AS.get(str(h.get("status")), QueryFailed) for h in hospitals}
    kind = kinds.pop() if len(kinds) == 1 else QueryFailed
    return kind(message, answer=answer)
