"""``phems-connector demo [--no-wait] [--dir DIR] [--patients N]``."""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer


def demo(
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Exit after the summary (every process stopped).")
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Keep everything here (data, databases, logs); default: a temporary "
            "directory, removed at the end.",
        ),
    ] = None,
    patients: Annotated[int, typer.Option(min=50, max=5000, help="Patients per hospital.")] = 200,
    sekmet: Annotated[
        Path | None,
        typer.Option(help="The sekmet FHIR server executable (default: found if installed)."),
    ] = None,
    summary_json: Annotated[
        Path | None, typer.Option(help="Also write the summary's numbers here, as JSON.")
    ] = None,
) -> None:
    """Three children's hospitals, a data space authority and a data user on this machine:
    harvest, negotiate, a federated query with secure aggregation, synthetic patients with
    their report, signed agreements verified. Nothing is downloaded."""
    from rich.console import Console

    from connector.demo.processes import DemoError
    from connector.demo.run import run_demo

    def stop_on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # the same clean stop as Ctrl-C

    if directory is not None and directory.exists() and any(directory.iterdir()):
        # its connectors' databases would remember hospitals on other ports
        typer.echo(f"error: --dir: {directory} is not empty; give a new or empty one", err=True)
        raise typer.Exit(2)
    signal.signal(signal.SIGTERM, stop_on_term)
    root = directory or Path(tempfile.mkdtemp(prefix="phems-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        run_demo(
            root.resolve(),
            patients=patients,
            sekmet=sekmet,
            wait=not no_wait,
            console=Console(highlight=False, emoji=False),
            summary_json=summary_json,
        )
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        if directory is None:
            shutil.rmtree(root, ignore_errors=True)
