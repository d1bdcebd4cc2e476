"""The ``sample generate`` command (mounted by the lead as ``phems-connector sample``)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from connector.sampledata import generate
from connector.sampledata.cli import app

runner = CliRunner()


def test_generate_writes_the_same_files_as_the_library(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        ["generate", "--patients", "40", "--seed", "9", "--profile", "cardiac", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "Patient 40" in result.stdout
    lib = tmp_path / "lib"
    generate(lib, patients=40, seed=9, profile="cardiac")
    cli_files = sorted(p.name for p in out.iterdir())
    assert cli_files == sorted(p.name for p in lib.iterdir())
    for name in cli_files:
        assert (out / name).read_bytes() == (lib / name).read_bytes()


def test_unknown_profile_is_one_clear_line_and_nonzero_exit(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["generate", "--patients", "5", "--profile", "oncology", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "error: unknown profile 'oncology'; valid profiles: cardiac, general, haemophilia, picu"
    ]
    assert not list(tmp_path.iterdir())


def test_invalid_patient_count_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--patients", "0", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert result.stderr.strip() == "error: patients must be at least 1, got 0"


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = runner.invoke(app, ["generate", "--patients", "2", "--out", str(blocker / "sub")])
    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")


def test_help_lists_the_options_and_profiles() -> None:
    result = runner.invoke(app, ["generate", "--help"])
    assert result.exit_code == 0
    for word in ("--patients", "--seed", "--profile", "--out", "haemophilia"):
        assert word in result.stdout
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0 and "generate" in top.stdout


def test_patients_default_to_the_profile_size(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--profile", "haemophilia", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Patient 500," in result.stdout
