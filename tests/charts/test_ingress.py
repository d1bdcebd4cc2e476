"""The public Ingress routes only the DSP base path, the data plane and /.well-known/ on the
public URL's host, with body size and timeout limits; management API, catalog UI and metrics
are reachable only through the internal Ingress."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.charts.conftest import CI_VALUES, Manifest, ci_ids, find

PUBLIC_PATHS = {"/dsp/2025-1", "/dataplane", "/.well-known"}
INTERNAL_ONLY = [
    "/management",
    "/management/v3/assets",
    "/catalog",
    "/catalog/datasets",
    "/metrics",
    "/healthz",
    "/readyz",
    "/",
    "/dsp",
    "/dsp/2024-1/catalog",
    "/dataplanes",
]
PUBLIC_REQUESTS = [
    "/dsp/2025-1/catalog/request",
    "/dsp/2025-1/negotiations/abc",
    "/.well-known/did.json",
    "/.well-known/dspace-version",
    # Where a DataAddress and its refreshEndpoint point (issue 18).
    "/dataplane/transfers/urn:uuid:t1",
    "/dataplane/transfers/urn:uuid:t1/token",
]


def prefix_matches(prefix: str, request_path: str) -> bool:
    """Kubernetes pathType Prefix: element-wise match on '/'-separated segments."""
    want = [p for p in prefix.split("/") if p]
    have = [p for p in request_path.split("/") if p]
    return have[: len(want)] == want


def routed(ingress: Manifest, request_path: str) -> bool:
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["pathType"] in ("Prefix", "Exact"), path
            if path["pathType"] == "Exact" and path["path"] == request_path:
                return True
            if path["pathType"] == "Prefix" and prefix_matches(path["path"], request_path):
                return True
    return False


def public_ingresses(docs: list[Manifest]) -> list[Manifest]:
    return find(docs, "Ingress", "-public")


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_public_ingress_exposes_only_dsp_and_well_known(
    rendered: Callable[[Path], list[Manifest]], values_file: Path
) -> None:
    docs = rendered(values_file)
    values = yaml.safe_load(values_file.read_text())
    enabled = values.get("ingress", {}).get("public", {}).get("enabled", False)
    ingresses = public_ingresses(docs)
    assert len(ingresses) == (1 if enabled else 0)
    for ingress in ingresses:
        paths = {p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
        assert paths == PUBLIC_PATHS
        for request in INTERNAL_ONLY:
            assert not routed(ingress, request), request
        for request in PUBLIC_REQUESTS:
            assert routed(ingress, request), request
        public_host = urlsplit(values["connector"]["publicUrl"]).hostname
        assert [r["host"] for r in ingress["spec"]["rules"]] == [public_host]
        assert ingress["spec"]["tls"][0]["hosts"] == [public_host]
        for annotation in ingress["metadata"].get("annotations", {}):
            assert "rewrite" not in annotation and "snippet" not in annotation


def test_internal_ingress_routes_home_management_docs_catalog_metrics(
    rendered: Callable[[Path], list[Manifest]],
) -> None:
    docs = rendered(Path(CI_VALUES[0]).with_name("everything-values.yaml"))
    (internal,) = find(docs, "Ingress", "-internal")
    (public,) = public_ingresses(docs)
    for request in ("/", "/management/v3/assets", "/catalog", "/metrics", "/docs"):
        assert routed(internal, request), request
    for request in ("/docs/assets/swagger-ui.css", "/openapi.json"):
        assert routed(internal, request), request
    for request in (*PUBLIC_REQUESTS, "/dsp/2025-1/catalog/request", "/healthz", "/nope"):
        assert not routed(internal, request)
    assert internal["spec"]["ingressClassName"] == "nginx-internal"
    assert public["spec"]["ingressClassName"] == "nginx-public"
    assert internal["spec"]["rules"][0]["host"] != public["spec"]["rules"][0]["host"]


def test_prefix_matching_is_by_segment() -> None:
    assert prefix_matches("/dsp/2025-1", "/dsp/2025-1/catalog")
    assert not prefix_matches("/dsp/2025-1", "/dsp/2025-10")
    assert prefix_matches("/", "/management")


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_public_ingress_limits_body_size_and_time(
    rendered: Callable[[Path], list[Manifest]], values_file: Path
) -> None:
    values = yaml.safe_load(values_file.read_text())
    for ingress in public_ingresses(rendered(values_file)):
        annotations = ingress["metadata"]["annotations"]
        given = values["ingress"]["public"].get("annotations", {})
        body = given.get("nginx.ingress.kubernetes.io/proxy-body-size", "1m")
        assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == body
        assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "60"
        assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "60"
        for key, value in given.items():  # the operator's annotations are kept, and win
            assert annotations[key] == value
