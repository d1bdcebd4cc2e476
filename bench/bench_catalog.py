"""Catalog benchmark (run by hand): `python bench/bench_catalog.py [--http] [N_DATASETS]`.

With `--http` (see `bench_http`): the same two requests against a running connector holding N
datasets, over HTTP, against a uvicorn+FastAPI server returning the same bytes pre-built.
Without: the pure-catalog cost only, as follows.

Measures, in one run, the pure-catalog cost of the two requests of issue 5's benchmark against
returning the same bytes pre-built:
  1. a DSP catalog page of 100 out of N (default 10,000) datasets (filter + slice + JSON);
  2. the Turtle of one dataset (model -> graph -> Turtle).
HTTP overhead is not included (the routes are wired by the connector); the ratio printed is
(compute + return) / (return pre-built), both per request, median of repeated runs.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable

from catalog.cache import RenderCache
from catalog.dsp import dsp_catalog, dsp_catalog_bytes
from catalog.examples import example_catalog, example_dataset
from catalog.model import Dataset
from catalog.rdf import to_graph
from catalog.search import Query, search
from catalog.serialize import TURTLE, serialize


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def make_datasets(n: int) -> list[Dataset]:
    base = example_dataset()
    out = []
    for i in range(n):
        ident = f"{base.identifier}-{i:05d}"
        iri = base.iri.rsplit("/", 1)[0] + "/" + ident
        out.append(
            base.model_copy(update={"iri": iri, "identifier": ident, "title": f"{base.title} {i}"})
        )
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    t0 = time.perf_counter()
    datasets = make_datasets(n)
    catalog = example_catalog((datasets[0],))
    print(f"built {n} dataset models in {time.perf_counter() - t0:.2f}s")

    def page() -> bytes:
        found = datasets[100:200]  # the DSP page: stored order, sliced
        body = dsp_catalog(catalog, found, participant_id="did:web:127.0.0.1%3A8080")
        return json.dumps(body).encode()

    prebuilt_page = page()
    t_page = timed(page, 20)
    t_page_pre = timed(lambda: prebuilt_page, 2000)
    print(
        f"DSP page 100/{n}: {t_page * 1e3:.1f} ms computed, {len(prebuilt_page)} bytes; "
        f"pre-built {t_page_pre * 1e6:.2f} us"
    )

    cache = RenderCache(max_entries=n + 10)

    def cached_page() -> bytes:
        found = datasets[100:200]  # the DSP page: stored order, sliced
        return dsp_catalog_bytes(
            catalog, found, participant_id="did:web:127.0.0.1%3A8080", cache=cache
        )

    cached_page()
    t_cached = timed(cached_page, 20)
    print(f"DSP page 100/{n} with cached dataset fragments: {t_cached * 1e3:.1f} ms")

    one = datasets[0]
    ttl = serialize(to_graph(one), TURTLE)
    t_ttl = timed(lambda: serialize(to_graph(one), TURTLE), 30)
    t_ttl_pre = timed(lambda: ttl, 2000)
    print(
        f"Turtle of one dataset: {t_ttl * 1e3:.1f} ms computed, {len(ttl)} bytes; "
        f"pre-built {t_ttl_pre * 1e6:.2f} us"
    )
    key = (one.iri, one.modified, TURTLE)
    cache.get_or_render(key, lambda: serialize(to_graph(one), TURTLE))
    t_ttl_cached = timed(lambda: cache.get_or_render(key, lambda: b""), 2000)
    print(f"Turtle of one dataset from the render cache: {t_ttl_cached * 1e6:.2f} us")
    t_search = timed(lambda: search(datasets, Query(text="respiratory 42")), 5)
    print(f"free-text search over {n} datasets: {t_search * 1e3:.1f} ms")


if __name__ == "__main__":
    if "--http" in sys.argv:
        from bench_http import main as http_main

        http_main([a for a in sys.argv[1:] if a != "--http"])
    else:
        main()
