"""``phems-connector synthetic fit|sample|report DATASET``: the hospital's own checks.

Files live under ``<data_dir>/synthetic/``: ``models/`` (fitted models) and
``settings/<dataset>.json`` (the dataset's synthetic settings, written by ``fit`` when options
are given, read by ``sample`` and ``report``). Model metadata goes into the connector's store.
The flattened tables come from the view cache of the connector's data directory.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from connector.errors import PhemsError

app = typer.Typer(
    name="synthetic",
    help="Synthetic FHIR patients generated from the hospital's data, with their reports.",
    no_args_is_help=True,
    add_completion=False,
)
T = TypeVar("T")

Dataset = Annotated[str, typer.Argument(help="Dataset id.")]


@app.callback()
def _group() -> None:
    """Synthetic FHIR patients generated from the hospital's data, with their reports."""


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _run(work: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except (PhemsError, OSError) as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


class _Context:
    """Settings, store and views for one command."""

    def __init__(self) -> None:
        from connector.settings import load_settings

        self.settings = load_settings()
        self.root = self.settings.data_dir / "synthetic"

    def settings_file(self, dataset: str) -> Path:
        from connector.synthetic.config import settings_file

        return settings_file(self.root, dataset)

    def config(self, dataset: str, overrides: dict[str, Any]) -> Any:
        from connector.synthetic.config import SyntheticConfig

        path = self.settings_file(dataset)
        stored = json.loads(path.read_text()) if path.exists() else {}
        return SyntheticConfig.from_mapping({**stored, **overrides})

    async def views(self, dataset: str) -> Any:
        """The dataset's flattened tables from the seam's view cache (its scope applied,
        opted-out patients removed), built here first if they are missing."""
        from connector.composition import build_services
        from connector.fulfilment.scope import DatasetScope

        services = await build_services(self.settings)
        try:
            record = await services.datasets.get(dataset)
            scope = DatasetScope.parse(record.scope)
            views, _ = await services.views.request(dataset, scope)
            if views is None:
                await services.jobs.drain()
                views = await services.views.current(dataset, scope)
            if views is None:
                raise PhemsError(f"the flattened tables of dataset {dataset} could not be built")
            return views
        finally:
            await services.aclose()

    def engine(self) -> Any:
        from connector.db.engine import create_engine

        return create_engine(self.settings.effective_database_url)


@app.command("fit")
def fit_command(
    dataset: Dataset,
    backend: Annotated[
        str | None,
        typer.Option(help="gaussian_copula (default), hma, ctgan or tvae; kept for the dataset."),
    ] = None,
    settings: Annotated[
        Path | None,
        typer.Option(help="JSON file of synthetic settings (see docs/synthetic.md); kept."),
    ] = None,
) -> None:
    """Fit the dataset's synthesizer on its current data and write its reports."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from connector.db.engine import migrate
    from connector.db.synthetic_models import SqlSyntheticModelStore
    from connector.jobs.runner import node_name
    from connector.synthetic.generator import SdvGenerator

    ctx = _Context()
    overrides: dict[str, Any] = {}
    if settings is not None:
        try:
            overrides = json.loads(settings.read_text())
        except (OSError, ValueError) as exc:
            _fail(f"--settings: cannot read {settings} as JSON: {exc}")
    if backend is not None:
        overrides["backend"] = backend
    try:
        config = ctx.config(dataset, overrides)
    except PhemsError as exc:
        _fail(exc.detail)
    views = _run(lambda: ctx.views(dataset))
    ctx.settings_file(dataset).parent.mkdir(parents=True, exist_ok=True)
    ctx.settings_file(dataset).write_text(json.dumps(config.to_mapping(), indent=2))
    generator = SdvGenerator(config, ctx.root / "models", node=node_name())
    columns = (
        TextColumn("{task.description:<11}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("reading", total=100)
        record = generator.fit(
            views, lambda stage, percent: bar.update(task, completed=percent, description=stage)
        )

    async def save() -> None:
        engine = ctx.engine()
        try:
            await migrate(engine)
            await SqlSyntheticModelStore(engine).save(record)
        finally:
            await engine.dispose()

    _run(save)
    summary = record.summary
    typer.echo(
        f"model {record.key} ({record.backend}) fitted on {summary.get('patients')} patients "
        f"in {summary.get('seconds')} s: quality {summary.get('quality')}, DCR protection "
        f"{summary.get('dcr_overfitting_protection')}, disclosure protection "
        f"{summary.get('disclosure_protection')}"
    )
    typer.echo(f"report: {Path(record.directory) / 'report.html'}")
    if not record.accepted:
        _fail(f"the model is not served: {record.reason}")


async def _record(ctx: _Context, dataset: str) -> Any:
    from connector.db.engine import migrate
    from connector.db.synthetic_models import SqlSyntheticModelStore
    from connector.jobs.runner import node_name
    from connector.synthetic.fulfilment import SyntheticFulfilment
    from connector.synthetic.generator import SdvGenerator

    generator = SdvGenerator(ctx.config(dataset, {}), ctx.root / "models", node=node_name())
    views = await ctx.views(dataset)
    engine = ctx.engine()
    try:
        await migrate(engine)
        store = SqlSyntheticModelStore(engine)
        from connector.clock import SystemClock

        fulfilment = SyntheticFulfilment(lambda _: generator, store, SystemClock())
        return generator, await fulfilment.model(dataset, views)
    finally:
        await engine.dispose()


@app.command("sample")
def sample_command(
    dataset: Dataset,
    patients: Annotated[int, typer.Option(help="Number of synthetic patients.", min=1)],
    out: Annotated[Path, typer.Option(help="File to write (a Bundle, or NDJSON).")],
    fmt: Annotated[str, typer.Option("--format", help="bundle or ndjson.")] = "bundle",
    bundle_type: Annotated[str, typer.Option(help="collection or transaction.")] = "collection",
    seed: Annotated[int, typer.Option(help="Same seed, same model: same patients.")] = 0,
) -> None:
    """Sample synthetic patients from the dataset's fitted model into a file."""
    from datetime import UTC, datetime

    from connector.synthetic.fhir import (
        BUNDLE_TAIL,
        bundle_entry,
        bundle_head,
        ndjson_ref,
        resources,
    )

    if fmt not in ("bundle", "ndjson") or bundle_type not in ("collection", "transaction"):
        _fail("--format must be bundle or ndjson, --bundle-type collection or transaction")
    ctx = _Context()
    generator, record = _run(lambda: _record(ctx, dataset))
    count = 0
    try:
        with out.open("wb") as sink:
            if fmt == "ndjson":
                frames = generator.sample_frames(record, patients, seed=seed)
                for resource in resources(frames, ndjson_ref):
                    sink.write(json.dumps(resource).encode() + b"\n")
                    count += 1
            else:
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                sink.write(
                    bundle_head(bundle_type=bundle_type, bundle_id=str(uuid.uuid4()), timestamp=now)
                )
                for batch in generator.sample(record, patients, seed=seed):
                    for resource in batch:
                        sink.write(
                            (b"," if count else b"")
                            + bundle_entry(resource, bundle_type=bundle_type)
                        )
                        count += 1
                sink.write(BUNDLE_TAIL)
    except OSError as exc:
        _fail(f"--out: cannot write {out}: {exc.strerror}")
    typer.echo(f"wrote {patients} synthetic patients ({count} resources) to {out}")


@app.command("report")
def report_command(
    dataset: Dataset,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole report as JSON.")
    ] = False,
) -> None:
    """Show the quality, privacy and utility report of the dataset's current model."""
    ctx = _Context()
    generator, record = _run(lambda: _record(ctx, dataset))
    report = generator.report(record)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    quality, privacy, utility = report["quality"], report["privacy"], report["utility"]
    typer.echo(
        f"model        {record.key} ({record.backend}), fitted {record.fitted_at:%Y-%m-%d %H:%M}"
    )
    typer.echo(f"quality      {quality['score']} (column shapes {quality['column_shapes']}, "
               f"pair trends {quality['column_pair_trends']})")  # fmt: skip
    typer.echo(f"privacy      exact copies {privacy['exact_copy_rate_delivered']} delivered "
               f"({privacy['exact_copy_rate_before_resampling']} before resampling), DCR "
               f"protection {privacy.get('dcr_overfitting_protection')}, disclosure protection "
               f"{privacy.get('disclosure_protection')}")  # fmt: skip
    typer.echo(
        f"utility      median relative error of cohort shares {utility['median_relative_error']}"
    )
    if "prediction" in utility:
        typer.echo(f"prediction   {utility['prediction']}")
    typer.echo(f"page         {Path(record.directory) / 'report.html'}")


EXIT_REFUSED = 1
EXIT_FAILED = 2
EXIT_TIMEOUT = 3


@app.command("fetch")
def fetch_command(
    out: Annotated[Path, typer.Option(help="File to write: the Bundle, NDJSON or report.")],
    transfer: Annotated[
        str | None, typer.Option(help="A STARTED transfer in the synthetic format.")
    ] = None,
    agreement: Annotated[
        str | None,
        typer.Option(help="An agreement: a transfer in the synthetic format is started first."),
    ] = None,
    patients: Annotated[
        int | None, typer.Option(help="Synthetic patients (hospital default: 100).", min=1)
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="bundle (default up to 10,000) or ndjson.")
    ] = None,
    part: Annotated[str | None, typer.Option(help="data (default), report or report.html.")] = None,
    seed: Annotated[int | None, typer.Option(help="Same seed, same model: same patients.")] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Also write the model's report (JSON) here, from the Bundle."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait in all while the hospital prepares.", min=0)
    ] = 600.0,
    connector: Annotated[
        str | None,
        typer.Option(help="The data user's connector (default: http://PHEMS_HOST:PHEMS_PORT)."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Its management API key (default: PHEMS_MANAGEMENT_API_KEY or "
            "<PHEMS_DATA_DIR>/management-api-key)."
        ),
    ] = None,
) -> None:
    """Data user: fetch synthetic patients through your own connector (under a transfer, or a
    new one under an agreement), waiting while the hospital prepares them.

    Exit codes: 0 written; 1 refused (the hospital's policy, budget or rate limit); 2 the
    request could not be made (bad options, connector unreachable, ...); 3 not ready in time.
    """
    from connector.sdk.cli import api_key_of as _api_key
    from connector.sdk.cli import connector_url as _connector_url
    from connector.settings import load_settings
    from connector.synthetic.client import (
        ConnectorUnreachable,
        FetchRefused,
        FetchTimedOut,
        fetch,
    )

    if (transfer is None) == (agreement is None):
        _fail("give --transfer or --agreement (one of them)")
    settings = load_settings()
    url = connector or _connector_url(settings)
    try:
        key = api_key or _api_key(settings)
    except PhemsError as exc:
        _fail(exc.detail)

    def waiting(seconds: float, why: str) -> None:
        typer.echo(f"waiting {seconds:.0f} s: {why}", err=True)

    try:
        fetched = fetch(
            out,
            connector=url,
            api_key=key,
            transfer_id=transfer,
            agreement_id=agreement,
            patients=patients,
            fmt=fmt,
            part=part,
            seed=seed,
            timeout=timeout,
            waiting=waiting,
        )
    except FetchRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_REFUSED if exc.status in (403, 429) else EXIT_FAILED) from None
    except FetchTimedOut as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_TIMEOUT) from None
    except ConnectorUnreachable as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"--out: cannot write {out}: {exc.strerror}")
    if report is not None:
        if fetched.report is None:
            _fail("--report: this answer carries no report (NDJSON: fetch it with --part report)")
        try:
            report.write_text(json.dumps(fetched.report, indent=2))
        except OSError as exc:
            _fail(f"--report: cannot write {report}: {exc.strerror}")
    what = (
        f"{fetched.patients} synthetic patients ({fetched.resources} resources)"
        if fetched.resources
        else f"the {part or 'data'} part"
    )
    typer.echo(
        f"wrote {what} to {out} (transfer {fetched.transfer_id})"
        + (f"; report: {report}" if report is not None else "")
    )
