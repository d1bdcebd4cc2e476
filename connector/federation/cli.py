"""``phems-connector query run COHORT.json [--secure] [--json] [--hospitals ...]``.

Asks the data user's own running connector (its management API, ``POST
/management/queries``) to run the query at every hospital it holds an aggregate agreement
with, or at those named, and prints the combined answer.

Exit codes: 0 every hospital contributed (also when the rules withhold a small total);
1 no hospital answered (one line naming each and why: refused, budget exhausted,
unreachable, ...); 2 the query could not be run (bad file, connector unreachable or refusing
the request); 3 a partial answer (printed; one warning line per hospital that is missing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from connector.errors import BadRequestError
from connector.federation.client import (
    ConnectorUnreachable,
    NoHospitalAnswered,
    QueryRejected,
    QueryResult,
    query,
    who,
)
from connector.settings import Settings, load_settings

app = typer.Typer(
    help="Federated aggregate queries over the hospitals' agreements.", no_args_is_help=True
)

EXIT_NONE_ANSWERED = 1
EXIT_PARTIAL = 3


def _connector_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def _api_key(settings: Settings) -> str:
    if settings.management_api_key is not None:
        return settings.management_api_key.get_secret_value()
    path = settings.data_dir / "management-api-key"
    try:
        return path.read_text().strip()
    except OSError:
        raise BadRequestError(
            f"--api-key: no management API key given, none in PHEMS_MANAGEMENT_API_KEY and "
            f"none at {path} (run from the connector's directory, or pass --api-key)"
        ) from None


def _read_query(file: Path) -> dict[str, Any]:
    try:
        parsed = json.loads(file.read_text())
    except OSError as exc:
        raise BadRequestError(f"COHORT: cannot read {file}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequestError(f"COHORT: {file} is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise BadRequestError(f"COHORT: {file} is not a JSON object")
    return parsed


def _hospital_names(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _print_table(result: QueryResult) -> None:
    answer = result.answer
    shown = "withheld: " + answer["withheld"] if answer.get("withheld") else f"total {result.total}"
    typer.echo(f"{answer['mode']} query, {answer['status']}, {answer['rounds']} round(s), {shown}")
    frame = result.frame
    combined = frame[frame["hospital"] == "all"].drop(columns=["hospital"])
    if combined["score"].isna().all():
        combined = combined.drop(columns=["score"])
    if not combined.empty and not answer.get("withheld"):
        typer.echo(combined.to_string(index=False, na_rep="suppressed"))
    per_hospital = frame[frame["hospital"] != "all"]
    if not per_hospital.empty:
        typer.echo("by hospital:")
        keys = ["group", "population", "stratifier", "stratum", "hospital"]
        table = per_hospital.set_index(keys)["count"].unstack("hospital")
        typer.echo(table.to_string(na_rep="suppressed"))
    typer.echo("hospitals:")
    for h in result.hospitals:
        detail = f" ({h['detail']})" if h.get("detail") else ""
        typer.echo(f"  {who(h)}: {h['status']}{detail}")


@app.command("run")
def run(
    cohort: Annotated[
        Path, typer.Argument(help="The aggregate query: a CCDL cohort and the measures wanted.")
    ],
    secure: Annotated[
        bool, typer.Option("--secure", help="Secure aggregation: only the sum is learned.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the combined MeasureReport as JSON.")
    ] = False,
    hospitals: Annotated[
        list[str] | None,
        typer.Option(
            "--hospitals",
            help="Hospital DIDs or agreement ids (repeatable, or comma-separated); "
            "default: every aggregate agreement the connector holds.",
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds to wait for each hospital.", min=0.001)
    ] = None,
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
    """Run an aggregate query at many hospitals and print the combined answer."""
    body = _read_query(cohort)
    settings = load_settings()
    url = connector or _connector_url(settings)
    key = api_key or _api_key(settings)
    try:
        result = query(
            body,
            connector=url,
            api_key=key,
            secure=secure,
            hospitals=_hospital_names(hospitals),
            timeout_seconds=timeout,
        )
    except NoHospitalAnswered as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_NONE_ANSWERED) from None
    except (ConnectorUnreachable, QueryRejected) as exc:
        raise BadRequestError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result.report, indent=2))
    else:
        _print_table(result)
    missing = [h for h in result.hospitals if h["status"] != "answered"]
    for h in missing:
        typer.echo(f"warning: {who(h)}: {h['status']}: {h['detail']}", err=True)
    if missing:
        raise typer.Exit(EXIT_PARTIAL)
