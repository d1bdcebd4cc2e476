"""`/catalog`: this connector's HealthDCAT-AP catalog for machines and the catalog UI for people.

`GET /catalog` and `GET /catalog/datasets/{id}` negotiate the content: `text/turtle` (the
default), `application/ld+json`, `application/rdf+xml` or `text/html`; anything else is a 406
problem. The RDF catalog pages with `hydra:PagedCollection` (`?page=N`, 100 datasets a page),
as CKAN ckanext-dcat harvesters expect. Rendered bytes are cached per `dct:modified`.

The HTML list shows this connector's own datasets and those harvested from other hospitals,
with free-text search and filters (`catalog.search`); a harvested dataset's page is
`/catalog/datasets/{id}?provider=<DID>`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from catalog.formats import OutputType
from catalog.html import render_catalog_page, render_dataset_page
from catalog.model import Dataset
from catalog.paging import DEFAULT_PAGE_SIZE, catalog_page, page_count
from catalog.rdf import to_graph
from catalog.search import Query as SearchQuery
from catalog.search import search
from catalog.serialize import HTML, TURTLE, NotAcceptable, best_media_type, serialize
from connector.api.deps import ServicesDep
from connector.api.plain_words import plain_policy
from connector.api.problems import problem
from connector.api.ui_session import CSP, csrf_token, signed_in
from connector.composition import Services
from connector.errors import BadRequestError, NotFoundError
from connector.identity.tokens import bearer_token
from connector.publishing.harvest import HarvestedDataset
from connector.publishing.snapshot import public_view

router = APIRouter(prefix="/catalog", tags=["catalog"])
SITE_TITLE = "Health data catalogue"


def _media(request: Request) -> str | Response:
    try:
        return best_media_type(request.headers.get("accept"), default=TURTLE)
    except NotAcceptable as exc:
        return problem(406, "Not acceptable", f"{exc}; ask for text/turtle, "
                       "application/ld+json, application/rdf+xml or text/html")  # fmt: skip


def _rdf(body: bytes, media: str) -> Response:
    return Response(body, media_type=media, headers={"Vary": "Accept"})


def _html(text: str) -> HTMLResponse:
    return HTMLResponse(
        text,
        headers={"Vary": "Accept", "Cache-Control": "no-store", "Content-Security-Policy": CSP},
    )


def _dataset_url(services: Services, item: Dataset | HarvestedDataset) -> str:
    if isinstance(item, HarvestedDataset):
        from urllib.parse import quote

        return f"/catalog/datasets/{item.dataset.identifier}?provider={quote(item.provider_did)}"
    return f"/catalog/datasets/{item.identifier}"


def _outputs(services: Services, datasets: list[Dataset]) -> set[OutputType]:
    """The output types to filter by: what this connector delivers (once a fulfilment is
    installed: every one before) and what the listed datasets offer."""
    installed = set(services.fulfilments.output_types) or set(OutputType)
    return installed | {o for ds in datasets for o in ds.output_types}


async def _harvested_index(request: Request, services: Services) -> list[HarvestedDataset]:
    """The harvested datasets; for anyone but the signed-in operator without the offers
    made to us by name (they are between the provider and us)."""
    index = await services.harvest.index()
    if await signed_in(request, services.management_api_key, services.signouts) is not None:
        return index
    return [
        dataclasses.replace(h, dataset=view)
        for h in index
        if (view := public_view(h.dataset)) is not None
    ]


async def _everything(request: Request, services: Services) -> tuple[list[Dataset], dict[int, str]]:
    """Own and harvested datasets, and each one's page URL (keyed by object id)."""
    own = list((await services.published.snapshot()).public_by_id.values())
    harvested = await _harvested_index(request, services)
    urls = {id(d): _dataset_url(services, d) for d in own}
    urls |= {id(h.dataset): _dataset_url(services, h) for h in harvested}
    return own + [h.dataset for h in harvested], urls


@router.get("", response_model=None)
async def catalog(
    request: Request, services: ServicesDep, page: Annotated[int | None, Query(ge=1)] = None
) -> Response:
    media = _media(request)
    if isinstance(media, Response):
        return media
    if media == HTML:
        everything, urls = await _everything(request, services)
        query = SearchQuery.from_params(request.query_params.multi_items())
        found = search(everything, query)
        url_of: Callable[[Dataset], str] = lambda ds: urls[id(ds)]  # noqa: E731
        nonce = await signed_in(request, services.management_api_key, services.signouts)
        return _html(
            render_catalog_page(
                found,
                query=query,
                all_datasets=everything,
                dataset_url=url_of,
                site_title=SITE_TITLE,
                sign_out_csrf=csrf_token(nonce, services.management_api_key) if nonce else None,
                outputs=_outputs(services, everything),
            )  # fmt: skip
        )
    snap = await services.published.snapshot()
    public = snap.public or snap.catalog
    number = page or 1
    if number > page_count(len(public.datasets), DEFAULT_PAGE_SIZE):
        raise NotFoundError(f"no catalog page {number}")
    base = public.iri
    key = (f"{base}?page={number}&v={snap.version}&public", public.modified, media)
    body = services.published.cache.get_or_render(
        key,
        lambda: serialize(
            catalog_page(public, public.datasets, page=number, page_url_base=base), media
        ),
    )
    return _rdf(body, media)


async def _harvested(
    request: Request, services: Services, provider: str, dataset_id: str
) -> HarvestedDataset:
    for item in await _harvested_index(request, services):
        if item.provider_did == provider and item.dataset.identifier == dataset_id:
            return item
    raise NotFoundError(f"no harvested dataset {dataset_id} of {provider}")


async def _dataset_html(request: Request, services: Services, ds: Dataset, provider: str) -> str:
    own = provider == services.did
    nonce = await signed_in(request, services.management_api_key, services.signouts)
    hidden = {"provider": provider}
    csrf = csrf_token(nonce, services.management_api_key) if nonce else None
    if csrf:
        hidden["csrf"] = csrf
    return render_dataset_page(
        ds,
        describe_policy=plain_policy,
        request_access_url="/catalog/request-access",
        hidden_fields=hidden,
        site_title=SITE_TITLE,
        can_request=not own,
        sign_out_csrf=csrf,
    )


@router.get("/datasets/{dataset_id:path}", response_model=None)
async def dataset(
    dataset_id: str, request: Request, services: ServicesDep, provider: str | None = None
) -> Response:
    media = _media(request)
    if isinstance(media, Response):
        return media
    if provider and provider != services.did:
        if media != HTML:
            raise BadRequestError("harvested datasets are served as HTML only; ask their owner")
        item = await _harvested(request, services, provider, dataset_id)
        return _html(await _dataset_html(request, services, item.dataset, provider))
    ds = (await services.published.snapshot()).public_by_id.get(dataset_id)
    if ds is None and media != HTML and "authorization" in request.headers:
        # A dataset offered only to named recipients: described to them (a harvester sends
        # its connector's DSP token), with the offers they may use.
        caller = await services.verifier.verify(bearer_token(request.headers["authorization"]))
        view = await services.catalog.visible(caller, dataset_id)
        return _rdf(serialize(to_graph(view), media), media)
    if ds is None:  # unknown, or offered only to named recipients: not public metadata
        raise NotFoundError(f"no dataset {dataset_id}")
    if media == HTML:
        return _html(await _dataset_html(request, services, ds, services.did))
    body = services.published.cache.get_or_render(
        (ds.iri, ds.modified, media), partial(lambda d: serialize(to_graph(d), media), ds)
    )
    return _rdf(body, media)
