"""``phems-connector query run COHORT.json [--secure] [--json] [--hospitals ...]``.

Asks the data user's own running connector (its management API, ``POST
/management/queries``, through the SDK's ``Client.query``) to run the query at every hospital
it holds an aggregate agreement with, or at those named, and prints the combined answer.

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
from connector.sdk.cli import ApiKeyOption, ConnectorOption, connect
from connector.sdk.client import who
from connector.sdk.errors import ClientError
from connector.sdk.models import QueryResult

app = typer.Typer(
    help="Federated aggregate queries over the hospitals' agreements.", no_args_is_help=True
)

EXIT_NONE_ANSWERED = 1
EXIT_PARTIAL = 3


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
    connector: ConnectorOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Run an aggregate query at many hospitals and print the combined answer."""
    body = _read_query(cohort)
    with connect(connector, api_key) as client:
        try:
            result = client.query(
                body,
                _hospital_names(hospitals),
                mode="secure" if secure else "plain",
                timeout=timeout,
            )
        except ClientError as exc:
            typer.echo(f"error: {exc}", err=True)
            # an answer: the query ran and no hospital contributed
            raise typer.Exit(EXIT_NONE_ANSWERED if exc.answer else 2) from None
    if as_json:
        typer.echo(json.dumps(result.measure_report, indent=2))
    else:
        _print_table(result)
    missing = [h for h in result.hospitals if h["status"] != "answered"]
    for h in missing:
        typer.echo(f"warning: {who(h)}: {h['status']}: {h['detail']}", err=True)
    if missing:
        raise typer.Exit(EXIT_PARTIAL)
