"""``phems-connector sample generate``: write a sample hospital's data as Bulk NDJSON."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from connector.errors import PhemsError
from connector.sampledata.generator import generate
from connector.sampledata.profiles import PROFILES

app = typer.Typer(
    name="sample",
    help="Realistic, deterministic children's hospital sample data (Bulk NDJSON).",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _group() -> None:
    """Realistic, deterministic children's hospital sample data (Bulk NDJSON)."""


@app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the NDJSON files to.")],
    profile: Annotated[
        str, typer.Option("--profile", help=f"Case mix: {', '.join(PROFILES)}.")
    ] = "general",
    patients: Annotated[
        int | None,
        typer.Option("--patients", help="Number of patients (default: the profile's size)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 1,
) -> None:
    """Generate patients with encounters, conditions, observations, procedures and
    medication requests for one hospital."""
    prof = PROFILES.get(profile)
    if prof is None:
        _fail(f"unknown profile {profile!r}; valid profiles: {', '.join(sorted(PROFILES))}")
        return
    n = prof.default_patients if patients is None else patients
    started = time.perf_counter()
    try:
        counts = generate(out, patients=n, seed=seed, profile=profile)
    except (PhemsError, OSError) as exc:
        _fail(str(exc))
        return
    elapsed = time.perf_counter() - started
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    typer.echo(f"wrote {sum(counts.values())} resources to {out} in {elapsed:.1f} s: {summary}")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)
