"""The connector's Prometheus metrics (`/metrics`), one registry per app (several apps may live
in one test process).

Two kinds, and how a service adds its own:

* **Events**, counted as they happen: ``metrics.counter(...)`` / ``metrics.histogram(...)``
  register a metric in this app's registry (the HTTP requests below are such).
* **State**, read on each scrape: ``metrics.add_source(source)`` with an object whose
  ``async def collect()`` returns prometheus_client metric families (e.g. ``GaugeMetricFamily``),
  such as the store's negotiations by state (``connector.db.gauges``). Sources run cheap,
  bounded queries and return counts and ages of processes, messages and jobs: never a patient
  value. A source that fails is left out of that scrape and reported as
  ``phems_metrics_source_up{source=...} 0``.

Store-wide gauges are the same on every replica: aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)


class MetricSource(Protocol):
    """State read at scrape time."""

    name: str

    async def collect(self) -> Iterable[Any]:
        """Metric families (prometheus_client.core), each with its samples."""
        ...


class _Scrape:
    """The registry's metrics plus this scrape's families, as generate_latest reads them."""

    def __init__(self, registry: CollectorRegistry, families: Sequence[Any]) -> None:
        self._registry, self._families = registry, families

    def collect(self) -> Iterator[Any]:
        yield from self._registry.collect()
        yield from self._families


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._sources: list[MetricSource] = []
        self.requests = self.counter(
            "phems_http_requests_total",
            "HTTP requests by method, route and status.",
            ("method", "route", "status"),
        )
        self.latency = self.histogram(
            "phems_http_request_seconds", "HTTP request latency by route.", ("route",)
        )

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, documentation, list(labels), registry=self.registry)

    def histogram(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Histogram:
        return Histogram(name, documentation, list(labels), registry=self.registry)

    def add_source(self, source: MetricSource) -> None:
        if any(s.name == source.name for s in self._sources):
            raise ValueError(f"a metric source named {source.name!r} is already registered")
        self._sources.append(source)

    async def render(self) -> bytes:
        """The text exposition: the registry's metrics and every source's, read now."""
        families: list[Any] = []
        up = GaugeMetricFamily(
            "phems_metrics_source_up",
            "1 when the source's metrics in this scrape were read, 0 when it failed.",
            labels=["source"],
        )
        for source in self._sources:
            try:
                families.extend(await source.collect())
            except Exception:
                log.warning("metrics source %s failed", source.name, exc_info=True)
                up.add_metric([source.name], 0)
            else:
                up.add_metric([source.name], 1)
        if self._sources:
            families.append(up)
        return bytes(generate_latest(_Scrape(self.registry, families)))
