"""The researcher's pages after "Access granted": the agreements this connector holds as
consumer, a transfer started under one, and on an aggregate transfer the cohort builder (or a
pasted or uploaded CCDL query) whose answer is shown as a table and a bar chart.

Only the signed-in operator sees them (``ui_session``); every post carries the CSRF token. The
work is the connector's own services', as the management API does it: ``transfers.request``
starts a transfer, ``puller.pull`` sends a query through this connector's data plane client
(``POST /management/transfers/{id}/data``). A refusal, an unreachable hospital or a bad query
is a section of the page, with the hospital's own words.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from catalog.formats import FORMATS, Format
from connector.api.cohort_builder import CONDITION_SYSTEMS, CohortForm
from connector.api.deps import ServicesDep
from connector.api.forms import form_fields
from connector.api.pages import html_page
from connector.api.plain_words import plain_policy
from connector.api.query_run import QueryFailure, agreed_purpose, encode, parse_ccdl, run_query
from connector.api.synthetic_pull import MAX_PATIENTS, SyntheticAsk, download
from connector.api.ui_session import check_csrf, csrf_token, signed_in
from connector.composition import Services
from connector.dsp.agreement import AgreementRecord
from connector.dsp.states import Role, TransferState
from connector.dsp.transfer import Transfer
from connector.errors import BadRequestError, ForbiddenError, NotFoundError
from connector.publishing.harvest import HarvestedDataset

router = APIRouter(prefix="/catalog", tags=["catalog"], include_in_schema=False)
FORMAT_LABELS = {
    Format.AGGREGATE: "Aggregate statistics",
    Format.SYNTHETIC: "Synthetic data",
    Format.ANONYMIZED: "Anonymised extract",
}


def format_label(fmt: str) -> str:
    return FORMAT_LABELS[Format(fmt)] if fmt in FORMATS else fmt


def _signin(target: str) -> RedirectResponse:
    return RedirectResponse(f"/catalog/signin?next={quote(target)}", status_code=303)


def agreement_url(aid: str) -> str:
    return f"/catalog/agreements/{quote(aid, safe=':')}"


def transfer_url(tid: str) -> str:
    return f"/catalog/transfers/{quote(tid, safe=':')}"


async def _post_session(request: Request, services: Services) -> tuple[str, dict[str, str]] | None:
    """The session nonce and the form of a post from the signed-in operator; None when not
    signed in (the caller sends the browser to sign in). A wrong CSRF token is refused."""
    form = await form_fields(request)
    nonce = await signed_in(request, services.management_api_key, services.signouts)
    if nonce is None:
        return None
    if not check_csrf(nonce, services.management_api_key, form.get("csrf", "")):
        raise ForbiddenError("the form is stale or forged (CSRF token); reload the page")
    return nonce, form


async def _consumer_agreement(services: Services, aid: str) -> AgreementRecord:
    """One of this connector's agreements as consumer: the provider's side of an agreement is
    not the researcher's to use."""
    agreement = await services.agreements.get(aid)
    if agreement.role is not Role.CONSUMER:
        raise NotFoundError(f"no agreement {aid} as consumer")
    return agreement


async def _consumer_transfer(services: Services, tid: str) -> Transfer:
    t = await services.transfers.get_local(tid)
    if t.role is not Role.CONSUMER:
        raise NotFoundError(f"no transfer {tid} as consumer")
    return t


async def _harvested(services: Services, provider: str, dataset_id: str) -> HarvestedDataset | None:
    for item in await services.harvest.index():
        if item.provider_did == provider and item.dataset.identifier == dataset_id:
            return item
    return None


async def _describe(services: Services, a: AgreementRecord) -> dict[str, Any]:
    item = await _harvested(services, a.provider_did, a.dataset_id)
    formats = (
        [d.dsp_format for d in item.dataset.distributions] if item is not None else list(FORMATS)
    )
    return {
        "agreement_id": a.id,
        "agreement_url": agreement_url(a.id),
        "dataset_title": item.dataset.title if item else a.dataset_id,
        "provider": item.dataset.publisher.name if item else a.provider_did,
        "conditions": plain_policy(a.agreement),
        "signed": a.created_at.strftime("%d %B %Y, %H:%M UTC"),
        "formats": [{"value": f, "label": format_label(f)} for f in dict.fromkeys(formats)],
    }


@router.get("/agreements", response_model=None)
async def agreements_page(request: Request, services: ServicesDep) -> Response:
    nonce = await signed_in(request, services.management_api_key, services.signouts)
    if nonce is None:
        return _signin("/catalog/agreements")
    held = [a for a in await services.agreements.list() if a.role is Role.CONSUMER]
    return html_page(
        "agreements.html",
        agreements=[await _describe(services, a) for a in held],
        sign_out_csrf=csrf_token(nonce, services.management_api_key),
    )


@router.get("/agreements/{aid}", response_model=None)
async def agreement_page(aid: str, request: Request, services: ServicesDep) -> Response:
    nonce = await signed_in(request, services.management_api_key, services.signouts)
    if nonce is None:
        return _signin(agreement_url(aid))
    a = await _consumer_agreement(services, aid)
    transfers = [
        t for t in await services.transfers.list(role=Role.CONSUMER) if t.agreement_id == a.id
    ]
    csrf = csrf_token(nonce, services.management_api_key)
    return html_page(
        "agreement.html",
        **await _describe(services, a),
        transfers=[
            {"url": transfer_url(t.id), "id": t.id, "state": str(t.state), "format": t.format}
            for t in transfers
        ],
        csrf=csrf,
        sign_out_csrf=csrf,
    )


@router.post("/transfers", response_model=None)
async def start_transfer(request: Request, services: ServicesDep) -> Response:
    """Start a transfer under one of our agreements, as ``POST /management/transfers`` does."""
    session = await _post_session(request, services)
    if session is None:
        return _signin("/catalog/agreements")
    _, form = session
    aid = form.get("agreement_id", "")
    await _consumer_agreement(services, aid)
    if form.get("format") not in FORMATS:
        raise BadRequestError("choose one of the dataset's transfer formats")
    t = await services.transfers.request(agreement_id=aid, format=form["format"])
    return RedirectResponse(transfer_url(t.id), status_code=303)


async def _transfer_page(
    services: Services,
    nonce: str,
    t: Transfer,
    *,
    status: int = 200,
    **result: Any,
) -> Response:
    a = await _consumer_agreement(services, t.agreement_id or "")
    facts = await _describe(services, a)
    csrf = csrf_token(nonce, services.management_api_key)
    values: dict[str, Any] = {
        "fields": {
            "sex": "any",
            "condition_system": "icd-10",
            "stratify": "none",
            "purpose": agreed_purpose(a.agreement),
        },
        "ccdl_text": "",
        "mode": "builder",
        "answer": None,
        "failure": None,
        "query_json": None,
        "query_display": None,
        "synthetic_fields": {"patients": "100", "purpose": agreed_purpose(a.agreement)},
        **result,
    }
    return html_page(
        "transfer.html",
        status=status,
        **facts,
        **values,
        transfer_id=t.id,
        transfer_url=transfer_url(t.id),
        state=str(t.state),
        format=t.format,
        format_label=format_label(t.format or ""),
        waiting=t.state in (TransferState.INITIAL, TransferState.REQUESTED),
        started=t.state is TransferState.STARTED,
        aggregate=t.format == Format.AGGREGATE,
        synthetic=t.format == Format.SYNTHETIC,
        max_patients=MAX_PATIENTS,
        reasons=list(t.reason),
        condition_systems=[(k, label) for k, (_, label) in CONDITION_SYSTEMS.items()],
        csrf=csrf,
        sign_out_csrf=csrf,
    )


def _builder(form: dict[str, str]) -> CohortForm:
    try:
        return CohortForm.from_fields(form)
    except BadRequestError as exc:
        raise QueryFailure(400, "The cohort form has a mistake", exc.detail) from None


@router.get("/transfers/{tid}", response_model=None)
async def transfer_page(tid: str, request: Request, services: ServicesDep) -> Response:
    nonce = await signed_in(request, services.management_api_key, services.signouts)
    if nonce is None:
        return _signin(transfer_url(tid))
    return await _transfer_page(services, nonce, await _consumer_transfer(services, tid))


@router.post("/transfers/{tid}/query", response_model=None)
async def run_aggregate_query(tid: str, request: Request, services: ServicesDep) -> Response:
    """Run the cohort builder's query, or a pasted or uploaded CCDL one, under an aggregate
    transfer; the page again, with the answer or the reason there is none."""
    session = await _post_session(request, services)
    if session is None:
        return _signin(transfer_url(tid))
    nonce, form = session
    t = await _consumer_transfer(services, tid)
    if t.format != Format.AGGREGATE:
        raise BadRequestError(f"transfer {tid} is {t.format}, not an aggregate transfer")
    mode = "ccdl" if form.get("mode") == "ccdl" else "builder"
    kept: dict[str, Any] = {"mode": mode, "ccdl_text": form.get("ccdl", "")}
    if mode == "builder":
        kept["fields"] = form
    try:
        if mode == "builder":
            query = _builder(form).ccdl()
        else:
            text = form.get("ccdl_file", "").strip() or form.get("ccdl", "")
            kept["ccdl_text"] = text
            query = parse_ccdl(text)
        body = encode(query)
        kept["query_json"] = body.decode()
        if isinstance(query.get("display"), str):
            kept["query_display"] = query["display"]
        answer = await run_query(services.puller, tid, body)
    except QueryFailure as failure:
        return await _transfer_page(services, nonce, t, status=failure.status,
                                    failure=failure, **kept)  # fmt: skip
    return await _transfer_page(services, nonce, t, answer=answer, **kept)


@router.post("/transfers/{tid}/synthetic", response_model=None)
async def download_synthetic(tid: str, request: Request, services: ServicesDep) -> Response:
    """The synthetic patients (a FHIR Bundle with the model's report) or the report page, as a
    download; the transfer page with the reason when the hospital does not deliver."""
    session = await _post_session(request, services)
    if session is None:
        return _signin(transfer_url(tid))
    nonce, form = session
    t = await _consumer_transfer(services, tid)
    if t.format != Format.SYNTHETIC:
        raise BadRequestError(f"transfer {tid} is {t.format}, not a synthetic transfer")
    kept = {"synthetic_fields": form}
    try:
        return await download(services.puller, tid, SyntheticAsk.from_fields(form))
    except QueryFailure as failure:
        return await _transfer_page(services, nonce, t, status=failure.status,
                                    failure=failure, **kept)  # fmt: skip
