"""HTML pages for people: the Jinja2 environment of the connector's own templates (on top of
the catalog's `base.html`), and whether a request comes from a browser.

A request wants HTML when its Accept header prefers `text/html` to problem+json: a browser's
`text/html,...,*/*;q=0.8` does, a program's `*/*` (curl, httpx) or `application/json` does not.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader

from catalog.html import environment
from catalog.serialize import HTML, NotAcceptable, best_media_type
from connector.api.ui_session import CSP

SITE_TITLE = "Health data catalogue"
PROBLEM = "application/problem+json"


@cache
def page_environment() -> Environment:
    return environment().overlay(
        loader=ChoiceLoader(
            [PackageLoader("connector.api", "templates"), PackageLoader("catalog", "templates")]
        )
    )


def html_page(template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    text = (
        page_environment()
        .get_template(template)
        .render(site_title=SITE_TITLE, catalog_url="/catalog", status=status, **values)
    )
    return HTMLResponse(
        text,
        status_code=status,
        headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP, "Vary": "Accept"},
    )


def wants_html(request: Request) -> bool:
    try:
        return (
            best_media_type(request.headers.get("accept"), offered=(HTML, PROBLEM), default=PROBLEM)
            == HTML
        )
    except NotAcceptable:
        return False
