"""The connector may only reach DNS, its database, the FHIR server and HTTPS peers; the bundled
PostgreSQL accepts only the connector and reaches nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.charts.conftest import CHART, CI_VALUES, Manifest, ci_ids, find

CI = CHART / "ci"


def egress_ports(policy: Manifest) -> list[set[Any]]:
    return [
        {(p["port"], p.get("protocol", "TCP")) for p in rule["ports"]}
        for rule in policy["spec"]["egress"]
    ]


def connector_policy(docs: list[Manifest]) -> Manifest:
    (policy,) = [
        p for p in find(docs, "NetworkPolicy") if "postgresql" not in p["metadata"]["name"]
    ]
    return policy


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_every_egress_rule_is_limited_to_ports(
    rendered: Callable[[Path], list[Manifest]], values_file: Path
) -> None:
    policy = connector_policy(rendered(values_file))
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for rule in policy["spec"]["egress"]:
        assert rule.get("ports"), f"egress rule without ports allows everything: {rule}"
    assert (
        policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "connector"
    )


def test_minimal_egress(rendered: Callable[[Path], list[Manifest]]) -> None:
    policy = connector_policy(rendered(CI / "minimal-values.yaml"))
    assert egress_ports(policy) == [
        {(53, "UDP"), (53, "TCP")},  # DNS
        {(5432, "TCP")},  # external PostgreSQL
        {(443, "TCP")},  # FHIR server: https://fhir.kinderklinik.example/fhir
        {(443, "TCP")},  # HTTPS peers
    ]
    https = policy["spec"]["egress"][3]["to"]
    assert {p["ipBlock"]["cidr"] for p in https} == {"0.0.0.0/0", "::/0"}


def test_everything_egress_uses_the_given_peers(rendered: Callable[[Path], list[Manifest]]) -> None:
    policy = connector_policy(rendered(CI / "everything-values.yaml"))
    dns, database, fhir, https = policy["spec"]["egress"]
    assert database["ports"] == [{"port": 5433, "protocol": "TCP"}]
    assert database["to"] == [{"ipBlock": {"cidr": "10.20.30.40/32"}}]
    assert fhir["ports"] == [{"port": 9443, "protocol": "TCP"}]
    assert fhir["to"] == [{"ipBlock": {"cidr": "10.50.0.0/16"}}]
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert [p["port"] for p in https["ports"]] == [443, 8443]
    assert "10.0.0.0/8" in https["to"][0]["ipBlock"]["except"]
    sources = policy["spec"]["ingress"][0]["from"]
    assert sources[-1]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "test"


def test_ha_fhir_port_from_http_url(rendered: Callable[[Path], list[Manifest]]) -> None:
    policy = connector_policy(rendered(CI / "ha-values.yaml"))
    assert {(8080, "TCP")} in egress_ports(policy)


def test_bundled_postgresql_is_isolated(rendered: Callable[[Path], list[Manifest]]) -> None:
    docs = rendered(CI / "bundled-postgresql-values.yaml")
    policy = connector_policy(docs)
    (pg_policy,) = find(docs, "NetworkPolicy", "-postgresql")
    database = policy["spec"]["egress"][1]
    assert (
        database["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        == "postgresql"
    )
    assert pg_policy["spec"]["egress"] == []
    (rule,) = pg_policy["spec"]["ingress"]
    assert (
        rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "connector"
    )
    # files source: no FHIR server rule
    assert len(policy["spec"]["egress"]) == 3
