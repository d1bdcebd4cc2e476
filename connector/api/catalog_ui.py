"""Catalog UI actions: operator sign-in, "request access" (starts a contract negotiation through
this connector) and the negotiation's progress page.

State-changing requests need the session cookie and the form's CSRF token (`ui_session`).
Forms are plain `application/x-www-form-urlencoded` posts: no JavaScript needed.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from connector.api.deps import ServicesDep
from connector.api.pages import html_page
from connector.api.plain_words import plain_policy
from connector.api.research_ui import agreement_url
from connector.api.ui_session import (
    check_csrf,
    clear_session_cookie,
    csrf_token,
    expires_at,
    new_session,
    set_session_cookie,
    signed_in,
)
from connector.composition import Services
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import Role
from connector.errors import BadRequestError, ForbiddenError, NotFoundError
from connector.publishing.harvest import HarvestedDataset

router = APIRouter(prefix="/catalog", tags=["catalog"], include_in_schema=False)
STEPS = (
    ("REQUESTED", "Request sent"),
    ("AGREED", "Hospital agreed"),
    ("VERIFIED", "Agreement verified"),
    ("FINALIZED", "Access granted"),
)
ORDER = {"INITIAL": 0, "REQUESTED": 1, "OFFERED": 1, "ACCEPTED": 1, "AGREED": 2}
ORDER |= {"VERIFIED": 3, "FINALIZED": 4}


async def _form(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise BadRequestError("expected a form (application/x-www-form-urlencoded)")
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))


def _safe_next(value: str) -> str:
    """Only local paths under /catalog: never redirect elsewhere after sign-in."""
    return value if value.startswith("/catalog") and not value.startswith("//") else "/catalog"


@router.get("/signin")
async def signin_form(next: str = "/catalog") -> HTMLResponse:
    return html_page("signin.html", next_url=_safe_next(next), error=None)


@router.post("/signin", response_model=None)
async def signin(request: Request, services: ServicesDep) -> Response:
    form = await _form(request)
    target = _safe_next(form.get("next", "/catalog"))
    supplied = form.get("api_key", "").encode()
    if not supplied or not hmac.compare_digest(supplied, services.management_api_key.encode()):
        response = html_page("signin.html", next_url=target, error="That key is not right.")
        response.status_code = 401
        return response
    redirect = RedirectResponse(target, status_code=303)
    secure = services.public_url.startswith("https://")
    set_session_cookie(redirect, new_session(services.management_api_key), secure=secure)
    return redirect


@router.post("/signout", response_model=None)
async def signout(request: Request, services: ServicesDep) -> Response:
    """End this browser's session: the cookie is cleared and its nonce recorded, so a copy of
    the cookie no longer works either."""
    form = await _form(request)
    key = services.management_api_key
    nonce = await signed_in(request, key, services.signouts)
    if nonce is not None:
        if not check_csrf(nonce, key, form.get("csrf", "")):
            raise ForbiddenError("the form is stale or forged (CSRF token); reload the page")
        await services.signouts.record(
            nonce, expires_at=expires_at(nonce), now=services.clock.now()
        )
    redirect = RedirectResponse("/catalog", status_code=303)
    clear_session_cookie(redirect, secure=services.public_url.startswith("https://"))
    return redirect


async def _find(services: Services, provider: str, dataset_id: str) -> HarvestedDataset:
    for item in await services.harvest.index():
        if item.provider_did == provider and item.dataset.identifier == dataset_id:
            return item
    raise NotFoundError(f"no harvested dataset {dataset_id} of {provider}")


@router.post("/request-access", response_model=None)
async def request_access(request: Request, services: ServicesDep) -> Response:
    form = await _form(request)
    dataset_id, provider = form.get("dataset_id", ""), form.get("provider", "")
    page = f"/catalog/datasets/{dataset_id}?provider={quote(provider)}"
    nonce = await signed_in(request, services.management_api_key, services.signouts)
    if nonce is None:
        return RedirectResponse(f"/catalog/signin?next={quote(page)}", status_code=303)
    if not check_csrf(nonce, services.management_api_key, form.get("csrf", "")):
        raise ForbiddenError("the form is stale or forged (CSRF token); reload the page")
    if provider == services.did:
        raise BadRequestError("this connector holds that dataset itself")
    item = await _find(services, provider, dataset_id)
    offer = next((p for p in item.dataset.policies if p.get("@id") == form.get("offer_id")), None)
    if offer is None:
        raise BadRequestError("choose one of the dataset's offers")
    n = await services.negotiations.request(
        counterparty_address=item.provider_address,
        counterparty_did=item.provider_did,
        offer={**offer, "target": dataset_id},
    )
    return RedirectResponse(f"/catalog/negotiations/{quote(n.id, safe=':')}", status_code=303)


def _outcome(n: Negotiation) -> tuple[str, str, str]:
    state = str(n.state)
    if state == "FINALIZED":
        return "success", "Access granted", "The hospital signed the agreement; you can now "\
            "start transfers under it and ask your questions."  # fmt: skip
    if state == "TERMINATED":
        return "failure", "Request refused", "The negotiation ended without an agreement."
    return "pending", "Waiting for the hospital", "The request is on its way; no action needed."


@router.get("/negotiations/{nid}", response_model=None)
async def negotiation_page(nid: str, request: Request, services: ServicesDep) -> Response:
    nonce = await signed_in(request, services.management_api_key, services.signouts)
    if nonce is None:
        target = quote(f"/catalog/negotiations/{nid}")
        return RedirectResponse(f"/catalog/signin?next={target}", status_code=303)
    n = await services.negotiations.get_local(nid)
    dataset_id = str((n.offer or {}).get("target", ""))
    title, provider = dataset_id, None
    for item in await services.harvest.index():
        if item.provider_did == n.counterparty_did:
            provider = item.dataset.publisher.name
            if item.dataset.identifier == dataset_id:
                title = item.dataset.title
    outcome, headline, explanation = _outcome(n)
    reached = ORDER.get(str(n.state), 0)
    steps = [
        {
            "label": label,
            "state": "done"
            if ORDER[key] <= reached and reached
            else "current"
            if ORDER[key] == reached + 1 and outcome == "pending"
            else "todo",
        }
        for key, label in STEPS
    ]
    agreement = n.agreement or {}
    return html_page(
        "negotiation.html",
        final=outcome != "pending",
        outcome=outcome,
        headline=headline,
        explanation=explanation,
        steps=steps,
        reasons=list(n.termination_reason),
        state=str(n.state),
        negotiation_id=n.id,
        agreement_id=agreement.get("@id"),
        # Our agreements as consumer are the researcher's to use (the provider's side is not).
        agreement_url=agreement_url(agreement["@id"])
        if agreement.get("@id") and n.role is Role.CONSUMER
        else None,
        dataset_title=title,
        provider=provider,
        conditions=plain_policy(n.offer) if n.offer else "unknown",
        sign_out_csrf=csrf_token(nonce, services.management_api_key),
    )
