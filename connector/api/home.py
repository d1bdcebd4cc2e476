"""`/`: the connector's home page (the catalog's `foaf:homepage` and its contact link point
here). A browser gets an HTML page; a program gets the same facts as JSON links."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from connector.api.deps import ServicesDep
from connector.api.pages import html_page, wants_html
from connector.composition import DSP_PATH

router = APIRouter(tags=["discovery"])


@router.get("/", response_model=None, summary="What this connector is, with links")
async def home(request: Request, services: ServicesDep) -> Response | dict[str, Any]:
    snapshot = await services.published.snapshot()
    publisher = snapshot.catalog.publisher
    if not wants_html(request):
        return {
            "name": publisher.name,
            "did": services.did,
            "dsp": services.dsp_base,
            "catalog": services.public_url + "/catalog",
            "links": {
                "didDocument": "/.well-known/did.json",
                "dspaceVersion": "/.well-known/dspace-version",
                "openapi": "/openapi.json",
                "docs": "/docs",
            },
        }
    contact = publisher.contact
    own_pages = {services.public_url, services.public_url + "/", services.public_url + "/catalog"}
    return html_page(
        "home.html",
        name=publisher.name,
        datasets=len(snapshot.datasets),
        contact=contact,
        contact_url=None if contact.url in own_pages else contact.url,
        did=services.did,
        dsp_base=services.public_url + DSP_PATH,
    )
