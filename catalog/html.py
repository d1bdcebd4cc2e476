"""HTML pages of the catalog for people (Jinja2 templates in `catalog/templates/`).

Pure functions from models to strings; the HTTP layer decides URLs. Policies are put in plain
words by a `describe_policy(policy_dict) -> str` supplied by the policy engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape

from catalog.codes import EHDS_REGULATION, CodingSystem, HealthCategory, label_of
from catalog.formats import OutputType
from catalog.model import Dataset
from catalog.search import Query, facets
from catalog.statistics import describe_count

DescribePolicy = Callable[[dict[str, Any]], str]

OUTPUT_LABELS = {
    OutputType.AGGREGATE.value: "Aggregate statistics",
    OutputType.SYNTHETIC.value: "Synthetic data",
    OutputType.ANONYMIZED.value: "Anonymised extract",
}
LEGISLATION_LABELS = {
    str(EHDS_REGULATION): "European Health Data Space Regulation (EU) 2025/327",
    "http://data.europa.eu/eli/reg/2022/868/oj": "Data Governance Act (EU) 2022/868",
}


def safe_url(value: object) -> str:
    """Only http(s) links from metadata: a harvested catalogue may carry ``javascript:`` IRIs."""
    text = str(value or "")
    return text if urlsplit(text).scheme.lower() in ("http", "https") else "#"


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("catalog", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["safe_url"] = safe_url
    env.globals.update(
        label=label_of,
        count_words=describe_count,
        output_label=lambda code: OUTPUT_LABELS.get(code, code),
        category_label=lambda code: HealthCategory(code).label,
        coding_label=lambda code: CodingSystem(code).label,
        legislation_label=lambda iri: LEGISLATION_LABELS.get(iri, iri),
    )
    return env


def _period(ds: Dataset) -> str:
    fmt = "%B %Y"
    if ds.temporal_start and ds.temporal_end:
        return f"{ds.temporal_start.strftime(fmt)} to {ds.temporal_end.strftime(fmt)}"
    if ds.temporal_start:
        return f"From {ds.temporal_start.strftime(fmt)}"
    if ds.temporal_end:
        return f"Until {ds.temporal_end.strftime(fmt)}"
    return "Not published"


def render_catalog_page(
    datasets: Sequence[Dataset],
    *,
    query: Query | None = None,
    all_datasets: Sequence[Dataset] | None = None,
    catalog_url: str = "/catalog",
    dataset_url: Callable[[Dataset], str] | None = None,
    site_title: str = "Health data catalogue",
    sign_out_csrf: str | None = None,
    outputs: Collection[OutputType] | None = None,
) -> str:
    """The list page: search box, filters and the (already searched) `datasets`.
    `sign_out_csrf`: a signed-in operator's CSRF token for the sign-out button.
    `outputs`: the output types the filter offers (default: all of them), e.g. those the
    connector can deliver and those the harvested datasets offer.

    `all_datasets` (default: `datasets`) provides the filter choices and the total.
    `dataset_url` maps a dataset to its page (default `{catalog_url}/datasets/{identifier}`).
    """
    q = query or Query()
    universe = all_datasets if all_datasets is not None else datasets
    selected = {
        "category": {c.value for c in q.health_categories},
        "coding": {c.value for c in q.coding_systems},
        "output": {o.value for o in q.output_types},
        "hospital": set(q.hospitals),
    }
    return (
        environment()
        .get_template("catalog.html")
        .render(
            site_title=site_title,
            catalog_url=catalog_url,
            results=list(datasets),
            total=len(universe),
            query=q,
            facets=facets(universe),
            selected=selected,
            dataset_url=dataset_url or (lambda ds: f"{catalog_url}/datasets/{ds.identifier}"),
            sign_out_csrf=sign_out_csrf,
            outputs=[o.value for o in OutputType if outputs is None or o in outputs],
        )
    )


def render_dataset_page(
    ds: Dataset,
    *,
    describe_policy: DescribePolicy,
    request_access_url: str,
    catalog_url: str = "/catalog",
    hidden_fields: Mapping[str, str] | None = None,
    site_title: str = "Health data catalogue",
    can_request: bool = True,
    sign_out_csrf: str | None = None,
) -> str:
    """A dataset's page: all metadata in plain words, variables, offers and the request form.

    `can_request=False` (the publisher's own view) lists the offers without the form.

    The form POSTs `dataset_id`, `dataset_iri`, `offer_id`, `provider_endpoint` (the DSP
    endpoint of the first distribution's access service, if any) and `hidden_fields`
    (e.g. a CSRF token) to `request_access_url`.
    """
    policies = [{"id": str(p.get("@id", "")), "words": describe_policy(p)} for p in ds.policies]
    endpoint = next(
        (d.access_service.endpoint_url for d in ds.distributions if d.access_service), None
    )
    return (
        environment()
        .get_template("dataset.html")
        .render(
            site_title=site_title,
            catalog_url=catalog_url,
            ds=ds,
            sign_out_csrf=sign_out_csrf,
            period=_period(ds),
            policies=policies,
            request_access_url=request_access_url,
            provider_endpoint=endpoint,
            hidden_fields=dict(hidden_fields or {}),
            can_request=can_request,
        )
    )
