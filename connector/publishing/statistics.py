"""Dataset statistics from the flattened tables, made safe by `catalog.statistics`.

Computed on the dataset's scope with opted-out patients removed (the view cache applied both),
in a worker process of the job pool; ``catalog.statistics.safe_statistics`` rounds counts and
withholds small cells before anything is published:

* individuals: rows of ``patient``; records: rows of the clinical tables;
* ages: each child's age in whole years at its latest clinical date (or ``today`` if it has
  none), so ages stay those the data describes however old the extract is;
* dates: the clinical date of each record (the column the scope's period uses);
* coding systems: records whose main code uses a system (``coding``), and records with UCUM
  units (an Observation's value, a MedicationRequest's dose).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from catalog.codes import CodingSystem
from catalog.statistics import MIN_CELL, SafeStatistics, safe_statistics
from connector.fulfilment.flatten import DATED_BY

SYSTEMS: Mapping[str, CodingSystem] = {
    "http://snomed.info/sct": CodingSystem.SNOMED_CT,
    "http://loinc.org": CodingSystem.LOINC,
    "http://hl7.org/fhir/sid/icd-10": CodingSystem.ICD_10,
    "http://hl7.org/fhir/sid/icd-10-cm": CodingSystem.ICD_10,
    "http://fhir.de/CodeSystem/bfarm/icd-10-gm": CodingSystem.ICD_10_NAT,
    "http://id.who.int/icd/release/11/mms": CodingSystem.ICD_11,
    "http://www.whocc.no/atc": CodingSystem.ATC,
    "http://unitsofmeasure.org": CodingSystem.UCUM,
    "http://www.orpha.net": CodingSystem.ORPHACODE,
    "http://human-phenotype-ontology.org": CodingSystem.HPO,
    "http://www.nlm.nih.gov/research/umls/rxnorm": CodingSystem.RXNORM,
}
_UNITS = {"observation": "value_unit", "medication_request": "dose_unit"}


def statistics_from_views(
    progress: Callable[[str, float], None],
    tables: Mapping[str, str],
    today_iso: str,
    min_cell: int = MIN_CELL,
) -> SafeStatistics:
    """``tables``: table name -> Parquet path (``FlatViews.tables``)."""
    import duckdb

    today = dt.date.fromisoformat(today_iso)
    con = duckdb.connect()
    try:
        for name, path in tables.items():
            con.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{_q(path)}')")
        progress("counting", 20.0)
        dated = " UNION ALL ".join(
            f'SELECT patient_id, CAST({column} AS DATE) AS day FROM "{table}"'
            for table, column in DATED_BY.items()
        )
        records = _one(con, f"SELECT count(*) FROM ({dated})")
        individuals = _one(con, "SELECT count(*) FROM patient")
        days = [
            r[0] for r in con.execute(f"SELECT day FROM ({dated}) WHERE day IS NOT NULL").fetchall()
        ]
        progress("ages", 50.0)
        rows = con.execute(
            f"""SELECT p.birth_date, max(d.day) FROM patient p
            LEFT JOIN ({dated}) d ON d.patient_id = p.patient_id
            WHERE p.birth_date IS NOT NULL GROUP BY p.patient_id, p.birth_date"""
        ).fetchall()
        ages = [_age(birth, latest or today) for birth, latest in rows]
        progress("coding systems", 80.0)
        counts: dict[CodingSystem | str, int] = {}
        for system, n in con.execute(
            "SELECT system, count(DISTINCT resource_type || '/' || resource_id) FROM coding "
            "WHERE code IS NOT NULL GROUP BY system"
        ).fetchall():
            if system in SYSTEMS:
                counts[SYSTEMS[system]] = counts.get(SYSTEMS[system], 0) + int(n)
        with_units = sum(
            _one(con, f'SELECT count(*) FROM "{t}" WHERE "{c}" IS NOT NULL')
            for t, c in _UNITS.items()
        )
        if with_units:
            counts[CodingSystem.UCUM] = counts.get(CodingSystem.UCUM, 0) + with_units
    finally:
        con.close()
    progress("done", 100.0)
    return safe_statistics(
        records=records,
        individuals=individuals,
        ages=[a for a in ages if a >= 0],
        dates=days,
        coding_system_counts=counts,
        min_cell=min_cell,
    )


def _one(con: object, sql: str) -> int:
    row = con.execute(sql).fetchone()  # type: ignore[attr-defined]
    return int(row[0]) if row else 0


def _age(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _q(path: str) -> str:
    return str(path).replace("'", "''")
