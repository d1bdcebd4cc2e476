"""The ``phems-connector`` command line. Errors are one clear line and a non-zero exit."""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from connector.demo import cli as demo_cli
from connector.errors import PhemsError
from connector.federation.cli import app as query_app
from connector.identity.authority_cli import app as authority_app
from connector.sampledata.cli import app as sample_app
from connector.sdk import cli as sdk_cli
from connector.settings import Settings, SettingsError, load_settings, unknown_variables
from connector.synthetic.cli import app as synthetic_app

app = typer.Typer(
    name="phems-connector",
    help="FHIR-native data space connector for children's hospitals.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keys_app = typer.Typer(help="The connector's keys and DID.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
agreements_app = typer.Typer(help="Signed contract agreements.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
catalog_app = typer.Typer(help="The HealthDCAT-AP catalog.", no_args_is_help=True)
app.add_typer(agreements_app, name="agreements")
app.add_typer(authority_app, name="authority")
app.add_typer(sample_app, name="sample")
app.add_typer(catalog_app, name="catalog")
app.add_typer(query_app, name="query")
app.add_typer(synthetic_app, name="synthetic")
optout_app = typer.Typer(
    help="Patients who opted out of secondary use (the hospital's list).", no_args_is_help=True
)
jobs_app = typer.Typer(
    help="Long jobs: flattened tables, statistics, synthesizer fits.", no_args_is_help=True
)
app.add_typer(optout_app, name="optout")
catalog_app.command("search")(sdk_cli.catalog_search)
app.command("negotiate")(sdk_cli.negotiate)
app.command("demo")(demo_cli.demo)
app.add_typer(jobs_app, name="jobs")

T = TypeVar("T")


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _run(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro())


def _settings(*, log: bool = False, **overrides: Any) -> Settings:
    """The settings; a warning for each PHEMS_* variable that is no setting (a typo), on
    stderr, or through the log for ``serve`` (``log=True``: after logging is configured)."""
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    if not log:
        for warning in unknown_variables(os.environ):
            typer.echo(f"warning: {warning}", err=True)
    return settings


def _log_warnings(settings: Settings) -> None:
    log = logging.getLogger("connector.settings")
    for warning in unknown_variables(os.environ):
        log.warning(warning)
    if not settings.trusted_issuers:
        log.warning(
            "PHEMS_TRUSTED_ISSUERS is empty: no credential is trusted, so every request for an "
            "offer that needs a membership or a data permit is refused; set it to the data "
            "space authority's DID (and your Health Data Access Body's)"
        )


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(f"PHEMS_PORT / --port: {host}:{port} is already in use") from None
            raise CliError(f"PHEMS_HOST / --host: cannot listen on {host}:{port}: {exc}") from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (PHEMS_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (PHEMS_PORT).")] = None,
    with_sample_data: Annotated[
        bool,
        typer.Option(
            "--with-sample-data",
            help="Generate sample FHIR data (if absent) and publish an example dataset.",
        ),
    ] = False,
) -> None:
    """Run the connector (DSP endpoints, management API, catalog)."""
    import uvicorn

    from connector.api.app import create_app
    from connector.api.server import server_config
    from connector.composition import build_services
    from connector.logs import configure_logging

    settings = _settings(host=host, port=port, log=True)
    configure_logging(settings.log_level, settings.log_json)
    _check_port_free(settings.host, settings.port)

    async def preflight() -> None:
        # Keys, data directory and database problems surface here as one clear line.
        services = await build_services(settings)
        try:
            if with_sample_data:
                from connector.publishing.sample import ensure_sample_data

                await ensure_sample_data(services.datasets, settings.effective_fhir_files_dir)
        finally:
            await services.aclose()

    _run(preflight)
    _log_warnings(settings)
    config = server_config(create_app(settings), settings)
    server = uvicorn.Server(config)
    _tune_gc()
    server.run()
    if not server.started:
        raise CliError(f"server did not start on {settings.host}:{settings.port}")


# Young collections every 5000 net allocations of container objects instead of 700, older
# ones 20 times rarer each: a busy connector makes and drops many short-lived objects a
# request (JSON, models, rows), most freed by reference counting before a collection would
# look at them. Measured in a loaded connector (bench/README.md, session 6): the collector's
# share of its CPU fell from 4-13% to about 1%.
GC_THRESHOLDS = (5000, 20, 20)


def _tune_gc() -> None:
    """For a long-running server: what is alive before it starts (modules, the application
    and its schemas, some 2 x 10^5 objects) is moved out of the cyclic collector's
    generations, so its full passes (150-250 ms each before) no longer walk it again and
    again; collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _keys_report(settings: Settings, *, create: bool) -> str:
    from connector.composition import load_keys, management_api_key_file
    from connector.identity.did import build_did_document, did_from_url

    keys = load_keys(settings, create=create)
    did = did_from_url(settings.effective_public_url)
    doc = build_did_document(did, keys, settings.effective_public_url + "/dsp/2025-1")
    key_file = management_api_key_file(settings)
    out = {
        "did": did,
        "publicUrl": settings.effective_public_url,
        "verificationMethod": doc["verificationMethod"],
        "managementApiKey": (
            "PHEMS_MANAGEMENT_API_KEY"
            if settings.management_api_key
            else str(key_file)
            if key_file.is_file()
            else f"{key_file} (generated at the first start)"
        ),
    }
    return json.dumps(out, indent=2)


def _existing_keys(settings: Settings) -> None:
    """Read-only commands never make a connector where none is: keys in the data directory
    need that directory to exist."""
    uses_data_dir = settings.keys_dir is None and not (
        settings.signing_key_file and settings.key_agreement_key_file
    )
    if uses_data_dir and not settings.data_dir.is_dir():
        raise CliError(
            f"PHEMS_DATA_DIR: {settings.data_dir} does not exist; run this where the connector "
            "runs (its working directory), set PHEMS_DATA_DIR to its data directory, or make "
            "new keys with `phems-connector keys init`"
        )


@keys_app.command("show")
def keys_show() -> None:
    """Print the DID, the public keys and where the management API key is kept (read only:
    refuses where no connector has made its keys)."""
    settings = _settings()
    _existing_keys(settings)
    typer.echo(_keys_report(settings, create=False))


@keys_app.command("init")
def keys_init() -> None:
    """Generate the connector's keys where they are missing (PHEMS_KEYS_DIR, default
    <data dir>/keys), then print what `keys show` prints. Existing keys are kept."""
    settings = _settings()
    typer.echo(_keys_report(settings, create=True))


async def _existing_store(settings: Settings) -> Any:
    from connector.composition import open_existing_store

    return await open_existing_store(settings)


def _audit_log(settings: Settings, engine: Any) -> Any:
    """The audit log with its signed checkpoints (the connector's keys and DID)."""
    from connector.audit import AuditLog
    from connector.clock import SystemClock
    from connector.composition import audit_anchor, load_keys
    from connector.identity.did import did_from_url

    did = did_from_url(settings.effective_public_url)
    return AuditLog(engine, SystemClock(), anchor=audit_anchor(settings, did, load_keys(settings)))


@audit_app.command("verify")
def audit_verify(
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoints",
            help="Also check the signed checkpoints in this file: a copy of "
            "audit-checkpoints.jsonl or an earlier `audit export` (repeatable).",
        ),
    ] = None,
) -> None:
    """Check the hash chain and its signed checkpoints; exit 1 if any entry was edited,
    inserted or deleted."""

    settings = _settings()
    for path in checkpoints or []:
        if not path.is_file():
            raise CliError(f"--checkpoints: no such file: {path}")

    async def go() -> Any:
        engine = await _existing_store(settings)
        try:
            return await _audit_log(settings, engine).verify(checkpoints or [])
        finally:
            await engine.dispose()

    result = _run(go)
    if result.ok:
        anchored = (
            f"; signed checkpoints vouch for entries 1-{result.anchored}"
            if result.anchored
            else "; no signed checkpoint yet"
        )
        typer.echo(f"audit log intact: {result.entries} entries{anchored}")
        return
    for problem in result.problems:
        typer.echo(f"audit log damaged: {problem}", err=True)
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="NDJSON file to write (default: stdout).")
    ] = None,
) -> None:
    """Write the audit log as FHIR R4 AuditEvent NDJSON, each signed checkpoint on the event
    it vouches for."""
    from connector.audit import to_fhir_audit_event
    from connector.audit_anchor import Checkpoint
    from connector.identity.did import did_from_url

    settings = _settings()
    observer = did_from_url(settings.effective_public_url)

    async def go() -> int:
        engine = await _existing_store(settings)
        if not settings.public_url:
            typer.echo(
                f"note: PHEMS_PUBLIC_URL is not set; the events name {observer} (from host and "
                "port) as their observer. Run with the connector's own settings.",
                err=True,
            )
        stream = open(out, "w") if out else sys.stdout
        count = 0
        try:
            audit = _audit_log(settings, engine)
            await audit.flush()
            signed = {c.seq: c.token for c in audit.anchor.read() if isinstance(c, Checkpoint)}
            async for entry in audit.entries():
                event = to_fhir_audit_event(entry, observer, signed.get(entry.seq))
                stream.write(json.dumps(event) + "\n")
                count += 1
        finally:
            if out:
                stream.close()
            await engine.dispose()
        return count

    try:
        count = _run(go)
    except OSError as exc:
        raise CliError(f"--out: cannot write {out}: {exc.strerror}") from None
    if out:
        typer.echo(f"wrote {count} AuditEvent resources to {out}", err=True)


@catalog_app.command("validate")
def catalog_validate(
    file: Annotated[
        Path | None,
        typer.Argument(help="Turtle or JSON-LD file; default: this connector's own catalog."),
    ] = None,
) -> None:
    """Check HealthDCAT-AP R8 (NON_PUBLIC) with the official shapes; exit 1 on violations."""
    from catalog.validation import (
        ShapesNotFound,
        format_report,
        load_shapes,
        shapes_dir,
        validate,
        validate_file,
    )

    try:
        load_shapes(shapes_dir().resolve())
    except ShapesNotFound as exc:
        raise CliError(str(exc)) from None
    if file is not None:
        if not file.is_file():
            raise CliError(f"FILE: no such file: {file}")
        try:
            report = validate_file(file)
        except Exception as exc:  # rdflib raises many types for unreadable RDF
            raise CliError(f"FILE: cannot read {file} as RDF: {exc}") from None
        problems: list[str] = []
    else:
        from connector.db.database import Database
        from connector.identity.did import did_from_url
        from connector.publishing.datasets import catalog_graph
        from connector.publishing.healthdcat import Publisher
        from connector.publishing.store import DatasetStore

        settings = _settings()

        async def own_catalog() -> tuple[Any, list[str]]:
            engine = await _existing_store(settings)  # read only: never creates a store
            try:
                async with Database(engine).reading() as conn:
                    records = await DatasetStore().list(conn)
            finally:
                await engine.dispose()
            url = settings.effective_public_url
            name = settings.participant_name
            return catalog_graph(
                records, Publisher(public_url=url, did=did_from_url(url), name=name)
            )

        graph, problems = _run(own_catalog)
        report = validate(graph)
    for line in problems:
        typer.echo(f"Violation: {line}")
    typer.echo(format_report(report))
    if problems or not report.conforms:
        raise typer.Exit(1)


@catalog_app.command("harvest")
def catalog_harvest(
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target", help="DSP base URL to harvest (repeatable); default: PHEMS_HARVEST_TARGETS."
        ),
    ] = None,
) -> None:
    """Harvest other connectors' DSP catalogs into this connector's index; exit 1 if any
    hospital failed (the others are indexed all the same)."""
    from connector.composition import build_services

    settings = _settings()

    async def go() -> dict[str, Any]:
        services = await build_services(settings)
        try:
            targets = target or services.harvest.targets
            if not targets:
                raise CliError("no harvest targets: set PHEMS_HARVEST_TARGETS or give --target")
            return (await services.harvest.harvest(list(targets))).as_json()
        finally:
            await services.aclose()

    report = _run(go)
    failed = 0
    for t in report["targets"]:
        if t["state"] == "ok":
            typer.echo(
                f"{t['address']}: ok, {t['datasets']} datasets ({t['new']} new, "
                f"{t['updated']} updated, {t['unchanged']} unchanged, {t['removed']} removed)"
            )
        else:
            failed += 1
            typer.echo(f"{t['address']}: FAILED: {t['error']}")
    if failed:
        raise typer.Exit(1)


@agreements_app.command("verify")
def agreements_verify(
    file: Annotated[Path, typer.Argument(help="Agreement exported from the management API.")],
) -> None:
    """Check an exported agreement offline: both signatures against the parties' DID keys."""
    from connector.errors import AuthenticationError
    from connector.identity.agreement_proof import verify_proof
    from connector.json_depth import deeper_than

    try:
        proof = json.loads(file.read_text())
    except OSError as exc:
        raise CliError(f"FILE: cannot read {file}: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(f"FILE: {file} is not JSON: {exc}") from None
    except RecursionError:
        raise CliError(f"FILE: {file} is not an exported agreement (nested too deeply)") from None
    if deeper_than(proof, 48):  # an agreement's policy is at most 36 levels, the proof 2 more
        raise CliError(f"FILE: {file} is not an exported agreement (nested too deeply)")
    try:
        result = verify_proof(proof if isinstance(proof, dict) else {})
    except AuthenticationError as exc:
        typer.echo(f"agreement NOT valid: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"agreement {result.agreement_id} valid: signed by provider {result.provider} "
        f"and consumer {result.consumer}"
    )


# -- opt-outs and jobs: on the store of a connector that has run here ------------------------

Patients = Annotated[list[str], typer.Argument(help="FHIR Patient ids (`Patient/` optional).")]


async def _optouts(settings: Settings) -> Any:
    from connector.clock import SystemClock
    from connector.optouts import OptOutService

    engine = await _existing_store(settings)
    return engine, OptOutService(engine, _audit_log(settings, engine), SystemClock())


def _optout_change(action: str, patients: list[str]) -> None:
    settings = _settings()
    actor = f"cli:{os.environ.get('USER') or 'operator'}"

    async def go() -> tuple[list[str], int]:
        engine, service = await _optouts(settings)
        try:
            method = service.add if action == "add" else service.remove
            changed = await method(patients, actor=actor)
            return changed, len(await service.ids())
        finally:
            await engine.dispose()

    changed, total = _run(go)
    done = "added" if action == "add" else "removed"
    unchanged = "already listed" if action == "add" else "not listed"
    typer.echo(f"{done}: {len(changed)} ({', '.join(changed) or 'none'}); {total} on the list")
    skipped = [p for p in patients if p.removeprefix("Patient/") not in changed]
    if skipped:
        typer.echo(f"{unchanged}: {', '.join(skipped)}", err=True)


@optout_app.command("add")
def optout_add(patients: Patients) -> None:
    """Record opt-outs: from the next data plane call on, no fulfilment sees these patients
    (the flattened tables are rebuilt; answers and models made before are not served)."""
    _optout_change("add", patients)


@optout_app.command("remove")
def optout_remove(patients: Patients) -> None:
    """Withdraw opt-outs (the patients consent to secondary use again)."""
    _optout_change("remove", patients)


@optout_app.command("list")
def optout_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The patients on the list, with when and by whom each was added."""
    settings = _settings()

    async def go() -> list[Any]:
        engine, service = await _optouts(settings)
        try:
            return list(await service.listed())
        finally:
            await engine.dispose()

    listed = _run(go)
    if as_json:
        typer.echo(json.dumps([o.as_json() for o in listed], indent=2))
        return
    for o in listed:
        typer.echo(f"{o.patient_id}\t{o.added_at.isoformat()}\t{o.added_by}")
    typer.echo(f"{len(listed)} patients opted out", err=True)


async def _jobs(settings: Settings) -> Any:
    from connector.jobs import SqlJobStore

    engine = await _existing_store(settings)
    return engine, SqlJobStore(engine)


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The newest jobs with their state, stage and percentage."""
    settings = _settings()

    async def go() -> list[Any]:
        engine, store = await _jobs(settings)
        try:
            return list(await store.recent(limit=limit))
        finally:
            await engine.dispose()

    jobs = _run(go)
    if as_json:
        typer.echo(json.dumps([j.as_json() for j in jobs], indent=2))
        return
    for j in jobs:
        line = f"{j.id}  {j.kind:<20} {j.state.value:<8} {j.percent:5.1f}%  {j.stage}"
        typer.echo(line + (f"  ({j.error})" if j.error else ""))


@jobs_app.command("watch")
def jobs_watch(
    job_id: Annotated[str, typer.Argument(help="The job's id (`jobs list`).")],
    poll: Annotated[float, typer.Option(min=0.1, help="Seconds between looks.")] = 1.0,
) -> None:
    """Follow one job with a progress bar until it ends; exit 1 if it failed."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    settings = _settings()

    async def go() -> Any:
        engine, store = await _jobs(settings)
        try:
            job = await store.get(job_id)
            if job is None:
                raise CliError(f"no job {job_id}")
            with Progress(
                TextColumn("{task.description:<30}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
            ) as bar:
                task = bar.add_task(job.stage, total=100)
                while not job.state.finished:
                    bar.update(task, completed=job.percent, description=job.stage[:30])
                    await asyncio.sleep(poll)
                    job = await store.get(job_id) or job
                bar.update(task, completed=job.percent, description=job.stage[:30])
            return job
        finally:
            await engine.dispose()

    job = _run(go)
    if job.error and job.state.value == "failed":
        typer.echo(f"job {job.id} ({job.kind}) failed: {job.error}", err=True)
        raise typer.Exit(1)
    typer.echo(f"job {job.id} ({job.kind}) {job.state.value}")


def main() -> None:
    try:
        app()
    except (CliError, SettingsError, PhemsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
