"""``phems-connector demo``: the whole idea on one machine. Three children's hospitals publish
their catalogs; a data user, through the SDK, harvests them, negotiates with each, runs a
federated query with secure aggregation, downloads synthetic patients with their quality report
and verifies the signed agreements; a summary, then
the catalog UI until Ctrl-C (or, with ``--no-wait``, the end, every process stopped)."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from connector.demo.processes import find_sekmet
from connector.demo.space import (
    SITES,
    DataSpace,
    data_space,
    generate_data,
    wait_for_statistics,
)
from connector.publishing.sample import SAMPLE_DATASET_ID
from connector.sdk import Agreement, Client, Dataset, QueryResult

ICD10 = "http://hl7.org/fhir/sid/icd-10"
# Children with asthma, bronchiolitis or pneumonia, by sex (docs/aggregate-queries.md).
RESPIRATORY = (("J45", "Asthma"), ("J21", "Acute bronchiolitis"), ("J18", "Pneumonia"))
# (girls and boys: the empty strata "other" and "unknown" would otherwise make the secondary
# suppression hide one more stratum)
GIRLS_AND_BOYS = {
    "context": {"system": "fdpg.mii.cds", "code": "Patient", "display": "Patient"},
    "termCodes": [{"system": "http://loinc.org", "code": "76689-9", "display": "Sex"}],
    "valueFilter": {
        "type": "concept",
        "selectedConcepts": [
            {"system": "http://hl7.org/fhir/administrative-gender", "code": g, "display": g}
            for g in ("female", "male")
        ],
    },
}
QUERY: dict[str, Any] = {
    "version": "2",
    "display": "Children with asthma, bronchiolitis or pneumonia, by sex",
    "inclusionCriteria": [
        [GIRLS_AND_BOYS],
        [
            {
                "context": {"system": "fdpg.mii.cds", "code": "Diagnose", "display": "Diagnose"},
                "termCodes": [
                    {"system": ICD10, "code": code, "display": display}
                    for code, display in RESPIRATORY
                ],
            }
        ],
    ],
    "measures": [{"type": "stratify", "by": "sex", "id": "sex"}],
    "options": {"purpose": "research"},
}


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<46}"), BarColumn(), TaskProgressColumn(),
        TimeElapsedColumn(), console=console,
    )  # fmt: skip


def _publish(space: DataSpace, console: Console) -> None:
    with _progress(console) as bar:
        for h in space.hospitals:
            task = bar.add_task(f"Publishing {h.site.name[:34]}", total=100)

            def advance(percent: float, task: TaskID = task) -> None:
                bar.update(task, completed=percent)

            wait_for_statistics(h, advance)
    for h in space.hospitals:
        console.print(f"  {h.site.name}: {h.process.url}/catalog ({h.source})")


def _datasets_table(found: list[Dataset]) -> Table:
    table = Table(title="Harvested catalog (aggregate offers)")
    for column in ("hospital", "dataset", "patients", "ages", "outputs"):
        table.add_column(column)
    for d in found:
        ages = f"{d.min_age}-{d.max_age}" if d.min_age is not None else "?"
        people = str(d.individuals) if d.individuals is not None else "?"
        table.add_row(d.publisher, d.id, people, ages, ", ".join(d.output_types))
    return table


def _negotiate(phems: Client, found: list[Dataset], console: Console) -> list[Agreement]:
    agreements = []
    for d in found:
        console.print(f"  {d.publisher}: asking for its aggregate offer on {d.id}")
        negotiation = phems.start_negotiation(d, output="aggregate")
        agreement = phems.wait_for_agreement(negotiation)
        console.print(f"  {d.publisher}: [green]agreed[/], signed by both: {agreement.id}")
        agreements.append(agreement)
    return agreements


SYNTHETIC_PATIENTS = 50


def _synthetic(
    phems: Client, found: list[Dataset], console: Console
) -> tuple[dict[str, Any], Agreement]:
    """Synthetic patients from the second hospital, under the data permit: their Bundle,
    DataFrames of it, and the quality and privacy report made at the hospital."""
    d = found[1] if len(found) > 1 else found[0]
    console.print(f"synthetic patients from {d.publisher} (the data permit allows them):")
    agreement = phems.negotiate(d, output="synthetic")
    console.print(f"  {d.publisher}: [green]agreed[/], signed by both: {agreement.id}")
    with console.status("the hospital fits its synthesizer, then samples ...") as status:

        def waiting(seconds: float, why: str) -> None:
            status.update(f"{why[:70]} (again in {seconds:.0f} s)")

        result = phems.synthetic(agreement, patients=SYNTHETIC_PATIENTS, waiting=waiting)
    frames = result.frames
    report = result.report or {}
    privacy, quality = report.get("privacy") or {}, report.get("quality") or {}
    table = Table(title=f"Synthetic bundle: {result.patients} patients, with its report")
    table.add_column("resources")
    table.add_column("rows", justify="right")
    for kind, frame in frames.items():
        table.add_row(kind, str(len(frame)))
    console.print(table)
    measures = [
        ("quality score (SDMetrics, 0-1)", quality.get("score")),
        ("column shapes", quality.get("column_shapes")),
        ("column pair trends", quality.get("column_pair_trends")),
        ("exact copies of real patients delivered", privacy.get("exact_copy_rate_delivered")),
        ("disclosure protection (0-1)", privacy.get("disclosure_protection")),
    ]
    report_table = Table(title="Its report, computed at the hospital")
    report_table.add_column("measure")
    report_table.add_column("value", justify="right")
    for what, value in measures:
        report_table.add_row(what, "?" if value is None else f"{value:.2f}")
    console.print(report_table)
    summary = {
        "hospital": d.publisher,
        "patients": result.patients,
        "resources": {kind: len(frame) for kind, frame in frames.items()},
        "quality": quality.get("score"),
        "exactCopiesDelivered": privacy.get("exact_copy_rate_delivered"),
        "disclosureProtection": privacy.get("disclosure_protection"),
    }
    return summary, agreement


def _counts(result: QueryResult) -> dict[str, int | None]:
    frame = result.frame
    combined = frame[(frame["hospital"] == "all") & (frame["population"] != "measure-score")]
    out: dict[str, int | None] = {}
    for _, row in combined.iterrows():
        key = row["stratum"] or "cohort"
        out[str(key)] = (
            None if row["count"] is None or str(row["count"]) == "<NA>" else int(row["count"])
        )
    return out


def _query_table(counts: dict[str, int | None]) -> Table:
    table = Table(title=QUERY["display"] + " (secure aggregation, noisy, rounded to 10)")
    table.add_column("group")
    table.add_column("children", justify="right")
    for key, value in counts.items():
        table.add_row(key, "suppressed" if value is None else str(value))
    return table


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Summary")
    table.add_column("what")
    table.add_column("result", justify="right")
    query, synthetic = summary["query"], summary["synthetic"]
    rows = [
        ("hospitals", str(len(summary["hospitals"]))),
        ("hospitals on a FHIR REST server", str(sum(h["source"] == "FHIR REST server"
                                                    for h in summary["hospitals"]))),
        ("datasets harvested", str(summary["harvested"])),
        ("agreements signed", str(len(summary["agreements"]))),
        ("agreements verified", str(sum(a["verified"] for a in summary["agreements"]))),
        ("query mode", query["mode"]),
        ("hospitals answering", f"{query['answered']}/{len(summary['hospitals'])}"),
        ("children in the cohort", _shown(query["counts"].get("cohort"))),
        ("  girls", _shown(query["counts"].get("female"))),
        ("  boys", _shown(query["counts"].get("male"))),
        ("synthetic patients", str(synthetic["patients"]) if synthetic else "not installed"),
        ("  their quality score", f"{synthetic['quality'] or 0:.2f}" if synthetic else "-"),
        ("seconds", f"{summary['seconds']:.1f}"),
    ]  # fmt: skip
    for what, value in rows:
        table.add_row(what, value)
    return table


def _shown(value: int | None) -> str:
    return "suppressed" if value is None else str(value)


def _data_user(space: DataSpace, console: Console) -> dict[str, Any]:
    console.rule("As the data user, through the SDK (connector.sdk.Client)")
    with Client(space.user.url, space.user_key) as phems:
        report = phems.harvest(*(h.dsp for h in space.hospitals))
        ok = sum(t["state"] == "ok" for t in report["targets"])
        console.print(f"harvest: {ok} of {len(space.hospitals)} catalogs")
        order = [h.did for h in space.hospitals]
        found = sorted(
            (d for d in phems.search(output="aggregate") if d.id == SAMPLE_DATASET_ID),
            key=lambda d: order.index(d.provider),
        )
        console.print(_datasets_table(found))
        console.print("negotiate with each hospital:")
        agreements = _negotiate(phems, found, console)
        with console.status("query at every hospital, secure aggregation ..."):
            result = phems.query(QUERY, agreements, mode="secure", timeout=300)
        counts = _counts(result)
        console.print(_query_table(counts))
        answered = sum(h["status"] == "answered" for h in result.hospitals)
        console.print(
            f"{answered} hospitals answered, {result.rounds} round(s), status {result.status}"
        )
        synthetic: dict[str, Any] | None = None
        if all("synthetic" in d.output_types for d in found):
            synthetic, synthetic_agreement = _synthetic(phems, found, console)
            agreements.append(synthetic_agreement)
        else:  # the hospitals offer synthetic patients only with the synthetic extra
            console.print("(no synthetic step: the `synthetic` extra is not installed)")
        verified: list[str] = []
        for a in agreements:
            check = phems.verify(a)
            console.print(f"agreement {a.id}: [green]valid[/], signed by both parties")
            verified.append(check.agreement_id)
    return {
        "harvested": sum(t["datasets"] for t in report["targets"]),
        "datasets": [d.raw for d in found],
        "agreements": [
            {"id": a.id, "provider": a.provider, "verified": a.id in verified}
            for a in agreements
        ],
        "query": {"mode": result.mode, "status": result.status, "rounds": result.rounds,
                  "answered": answered, "counts": counts},
        "synthetic": synthetic,
    }  # fmt: skip


def run_demo(
    root: Path,
    *,
    patients: int,
    sekmet: Path | None,
    wait: bool,
    console: Console,
    summary_json: Path | None = None,
) -> dict[str, Any]:
    """Run every step; every process started is stopped on the way out (also on an error or
    Ctrl-C)."""
    started = time.monotonic()
    console.rule("phems-connector demo: three children's hospitals and a data user on loopback")
    exe = find_sekmet(sekmet)
    with _progress(console) as bar:
        task = bar.add_task("Generating sample FHIR data", total=len(SITES))
        data = generate_data(root, patients, lambda site: bar.advance(task))
    for site in SITES:
        console.print(f"  {site.name}: {site.case_mix}, {patients} patients")
    if exe is None:
        console.print("  (no FHIR server installed: every hospital reads NDJSON files)")
    with ExitStack() as stack:
        with _progress(console) as bar:
            task = bar.add_task(
                "Starting authority, hospitals, data user", total=len(SITES) + 1 + (exe is not None)
            )
            space = stack.enter_context(
                data_space(root, data, patients, exe, lambda name: bar.advance(task))
            )
        console.print(
            f"  authority {space.authority_did[:32]}...: a membership credential for each "
            "connector, a data permit for the data user"
        )
        _publish(space, console)
        results = _data_user(space, console)
        summary = {
            "hospitals": [
                {"name": h.site.name, "profile": h.site.profile, "source": h.source,
                 "patients": h.patients, "did": h.did, "url": h.process.url}
                for h in space.hospitals
            ],
            **results,
            "dataUser": {"did": space.user_did, "url": space.user.url},
            "pids": space.pids,
            "seconds": round(time.monotonic() - started, 1),
        }  # fmt: skip
        console.print(_summary_table(summary))
        if summary_json is not None:
            summary_json.write_text(json.dumps(summary, indent=2))
        if wait:
            _wait(space, console)
    return summary


def _wait(space: DataSpace, console: Console) -> None:
    lines = [
        "",
        f"Catalog UI of the data user (harvested datasets): {space.user.url}/catalog",
        f"Its management API key (to sign in): {space.user_key}",
        f"Data, databases and logs: {space.root}",
        "Running until Ctrl-C.",
    ]
    for line in lines:
        console.print(line, soft_wrap=True, markup=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping every process ...")
