"""The SDK for shell users: ``phems-connector catalog search`` and ``phems-connector
negotiate`` (``query run`` is ``connector/federation/cli.py``), each through the data user's
own running connector, found as ``query run`` finds it (``--connector``, ``--api-key``, else
PHEMS_HOST / PHEMS_PORT and the management API key of PHEMS_DATA_DIR).

Exit codes: 0 done; 1 the data space said no or could not be reached (a refused negotiation,
an exhausted budget, an unreachable hospital, still not ready); 2 the command could not run as
given (bad input, wrong API key, no such dataset). Errors are one line on stderr.
"""

from __future__ import annotations

import json
from typing import Annotated, NoReturn

import typer

from connector.errors import BadRequestError
from connector.sdk.client import Client
from connector.sdk.errors import (
    BudgetExhausted,
    ClientError,
    NotReady,
    PolicyRefused,
    Unreachable,
)
from connector.sdk.models import Dataset
from connector.settings import Settings, load_settings

EXIT_REFUSED = 1
EXIT_USAGE = 2
REFUSALS = (PolicyRefused, BudgetExhausted, Unreachable, NotReady)

ConnectorOption = Annotated[
    str | None,
    typer.Option(help="The data user's connector (default: http://PHEMS_HOST:PHEMS_PORT)."),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        help="Its management API key (default: PHEMS_MANAGEMENT_API_KEY or "
        "<PHEMS_DATA_DIR>/management-api-key)."
    ),
]


def connector_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def api_key_of(settings: Settings) -> str:
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


def connect(connector: str | None, api_key: str | None) -> Client:
    """A client of the data user's connector, from the options or the connector's settings."""
    if connector and api_key:
        return Client(connector, api_key)
    settings = load_settings()
    return Client(connector or connector_url(settings), api_key or api_key_of(settings))


def fail(exc: ClientError) -> NoReturn:
    """One line on stderr; exit 1 for a refusal of the data space, 2 for anything else."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(EXIT_REFUSED if isinstance(exc, REFUSALS) else EXIT_USAGE)


def catalog_search(
    text: Annotated[str | None, typer.Argument(help="Words that must all appear.")] = None,
    hospital: Annotated[list[str] | None, typer.Option(help="Publisher name (repeatable).")] = None,
    output: Annotated[
        list[str] | None, typer.Option(help="aggregate, synthetic or anonymized (repeatable).")
    ] = None,
    min_age: Annotated[int | None, typer.Option(min=0, help="Ages must reach this.")] = None,
    max_age: Annotated[int | None, typer.Option(min=0, help="Ages must start by this.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    connector: ConnectorOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Search the catalogs this connector harvested (`catalog harvest` first)."""
    with connect(connector, api_key) as client:
        try:
            found = client.search(
                text, hospital=hospital, output=output, min_age=min_age, max_age=max_age
            )
        except ClientError as exc:
            fail(exc)
    if as_json:
        typer.echo(json.dumps([d.raw for d in found], indent=2))
        return
    for d in found:
        ages = f"{d.min_age}-{d.max_age} y" if d.min_age is not None else "ages ?"
        people = f"{d.individuals} people" if d.individuals is not None else "size ?"
        typer.echo(
            f"{d.id}\t{d.title}\t{d.publisher}\t{', '.join(d.output_types)}\t{people}\t{ages}"
            f"\t{d.provider_address}"
        )
    typer.echo(f"{len(found)} datasets", err=True)


def negotiate(
    dataset: Annotated[str, typer.Argument(help="The dataset's id (`catalog search`).")],
    provider: Annotated[
        str | None,
        typer.Option(
            help="The provider's DSP base URL; default: where the harvested dataset came from."
        ),
    ] = None,
    output: Annotated[
        str, typer.Option(help="Which offer: the one for this output type.")
    ] = "aggregate",
    offer: Annotated[str | None, typer.Option(help="Or the offer with this @id.")] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait.")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the agreement.")] = False,
    connector: ConnectorOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Negotiate a contract for a dataset and wait for the signed agreement (exit 1 when the
    provider refuses or cannot be reached)."""
    with connect(connector, api_key) as client:
        try:
            target: Dataset | str = dataset
            if provider is None:
                hits = [d for d in client.search() if d.id == dataset]
                if not hits:
                    raise BadRequestError(
                        f"DATASET: {dataset} is not in the harvested catalog; "
                        "harvest first or give --provider"
                    )
                if len(hits) > 1:
                    names = ", ".join(d.provider_address for d in hits)
                    raise BadRequestError(
                        f"DATASET: {len(hits)} hospitals offer {dataset} ({names}); give --provider"
                    )
                target = hits[0]
            agreement = client.negotiate(
                target,
                provider,
                output=output,
                offer=offer,
                timeout=timeout,
            )
        except ClientError as exc:
            fail(exc)
    if as_json:
        typer.echo(json.dumps(agreement.raw, indent=2))
        return
    typer.echo(f"agreement {agreement.id} for {agreement.dataset} with {agreement.provider}")
