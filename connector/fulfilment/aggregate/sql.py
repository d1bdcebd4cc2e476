"""An aggregate query compiled to one SQL statement over the flattened tables.

The statement (``statement.Statement``) returns one row: the layout's cells in order
(``cells.py``), true values. It is portable SQL: common table expressions, ``IN`` subqueries,
``CASE``, ``EXTRACT``, ``COALESCE``, a ``ROW_NUMBER()`` window and ``NULLS LAST``; every
identifier quoted, every constant a ``?`` parameter. Tables are the ones
``connector.fulfilment.views`` describes, by their names, so a hospital can run the same
statement on its own engine over the same tables.

Semantics (``docs/aggregate-queries.md`` has them for users):

- counts are of distinct patients of the ``patient`` table; a criterion on a table matches a
  patient who has at least one row matching all its filters;
- term codes match any coding of the row's main code (``coding``), descendants included in
  hierarchical systems; an Observation criterion also matches an Observation's component
  with that code (its value filter then reads the component's value);
- a time restriction matches a row whose interval meets [afterDate 00:00, beforeDate 24:00):
  Condition [onset or recorded date, abatement or that start], Encounter [start, end or start],
  Procedure [performed, its end or start], the others their one time;
- quantities compare in the filter's unit: each unit found in the data that converts is
  compared with the filter's value converted into it; rows in other units do not match
  (no unit in the filter compares the numbers as they are).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from connector.fulfilment.aggregate import ages, units
from connector.fulfilment.aggregate.ccdl import Comparison, ConceptFilter, Range, TermCode
from connector.fulfilment.aggregate.criteria import AttributeMatch, Target
from connector.fulfilment.aggregate.measures import (
    AgeBands,
    CodeStrata,
    Measure,
    Numeric,
    SexStrata,
)
from connector.fulfilment.aggregate.request import AggregateQuery
from connector.fulfilment.aggregate.statement import Statement
from connector.fulfilment.aggregate.terminology import GENDERS, Kind, descendant_prefix

#: Tables whose quantities carry a unit, and the column holding it.
UNIT_COLUMNS: dict[str, tuple[str, str]] = {
    "observation": ("value_quantity", "value_unit"),
    "observation_component": ("value_quantity", "value_unit"),
    "medication_request": ("dose_value", "dose_unit"),
    "medication_administration": ("dose_value", "dose_unit"),
}

_TABLES: dict[Kind, tuple[str, str]] = {  # kind -> (table, id column)
    Kind.CONDITION: ("condition", "condition_id"),
    Kind.OBSERVATION: ("observation", "observation_id"),
    Kind.PROCEDURE: ("procedure", "procedure_id"),
    Kind.MEDICATION_REQUEST: ("medication_request", "medication_request_id"),
    Kind.MEDICATION_ADMINISTRATION: ("medication_administration", "medication_administration_id"),
    Kind.ENCOUNTER: ("encounter", "encounter_id"),
}
# kind -> (interval start, interval end) expressions over alias x
_INTERVALS: dict[Kind, tuple[str, str]] = {
    Kind.CONDITION: (
        'COALESCE(x."onset", x."recorded")',
        'COALESCE(x."abatement", x."onset", x."recorded")',
    ),
    Kind.OBSERVATION: ('x."effective"', 'x."effective"'),
    Kind.PROCEDURE: ('x."performed"', 'COALESCE(x."performed_end", x."performed")'),
    Kind.MEDICATION_REQUEST: ('x."authored"', 'x."authored"'),
    Kind.MEDICATION_ADMINISTRATION: ('x."effective"', 'x."effective"'),
    Kind.ENCOUNTER: ('x."start"', 'COALESCE(x."end", x."start")'),
}
_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "=", "ne": "<>"}
FALSE = "1 = 0"


def q(name: str) -> str:
    return f'"{name}"'


@dataclass
class _Sql:
    """Builds SQL text and its parameters together."""

    params: list[Any] = field(default_factory=list)

    def p(self, value: Any) -> str:
        self.params.append(value)
        return "?"


@dataclass(frozen=True)
class DataProfile:
    """What the compiler needs to know of the data, read by the engine once per data version:
    ``units``, table -> the units its quantities come in (``UNIT_COLUMNS``); ``multi_coded``,
    the resource types of which some resource has more than one coding of its main code. A
    type with single codings only is matched on its table's own code columns (the first coding
    is the only one) instead of through the ``coding`` table: the same rows, one join less."""

    units: Mapping[str, Sequence[str]] = field(default_factory=dict)
    multi_coded: frozenset[str] = frozenset(k.value for k in _TABLES)


class Compiler:
    """``reference``: the date ages are computed at."""

    def __init__(self, reference: date, profile: DataProfile) -> None:
        self.reference = reference
        self.data_units = profile.units
        self.multi_coded = profile.multi_coded
        self._sql = _Sql()

    # -- statement ------------------------------------------------------------------------

    def statement(self, query: AggregateQuery) -> Statement:
        """Parameters follow the text: the cohort, the numeric measures' rows, the strata,
        the numeric cells; the select list puts the cells in layout order (``cell_<i>``)."""
        self._sql = _Sql()
        ctes = [f"cohort AS (\n{self.cohort(query)}\n)"]
        numeric = [(i, m) for i, m in enumerate(query.measures) if isinstance(m, Numeric)]
        for i, num in numeric:
            ctes.append(f"m{i}_rows AS (\n{self._numeric_rows(num)}\n)")
            ctes.append(f"m{i}_values AS (\n{self._per_patient(num, f'm{i}')}\n)")
        starts, position = [], 1
        for measure in query.measures:
            starts.append(position)
            position += _cell_count(measure)
        cohort_cells = ["COUNT(*) AS cell_0"]
        refs = ["c.cell_0"]
        owner: dict[int, str] = {}
        for i, measure in enumerate(query.measures):
            if not isinstance(measure, Numeric):
                for j, expr in enumerate(self._strata(measure), start=starts[i]):
                    cohort_cells.append(f"{expr} AS cell_{j}")
                    owner[j] = "c"
        parts = [f"(SELECT {', '.join(cohort_cells)} FROM cohort) AS c"]
        for i, num in numeric:
            exprs = [
                f"{expr} AS cell_{j}"
                for j, expr in enumerate(self._numeric_cells(num), start=starts[i])
            ]
            owner.update(dict.fromkeys(range(starts[i], starts[i] + len(exprs)), f"m{i}"))
            parts.append(f"(SELECT {', '.join(exprs)} FROM m{i}_values) AS m{i}")
        refs.extend(f"{owner[j]}.cell_{j}" for j in range(1, position))
        text = (
            "WITH "
            + ",\n".join(ctes)
            + f"\nSELECT {', '.join(refs)}\nFROM "
            + "\nCROSS JOIN ".join(parts)
        )
        return Statement(text, self._sql.params)

    def cohort(self, query: AggregateQuery) -> str:
        conds = [
            "(" + " OR ".join(self.criterion(t) for t in group) + ")"
            for group in query.cohort.inclusion
        ]
        if query.cohort.exclusion:
            excluded = " OR ".join(
                "(" + " AND ".join(self.criterion(t) for t in group) + ")"
                for group in query.cohort.exclusion
            )
            conds.append(f"NOT ({excluded})")
        where = "\n  AND ".join(conds)
        return (
            'SELECT DISTINCT p."patient_id", p."gender", p."birth_date"\n'
            f'FROM "patient" AS p\nWHERE {where}'
        )

    # -- criteria -------------------------------------------------------------------------

    def criterion(self, t: Target, alias: str = "p") -> str:
        """A condition on the patient row ``alias`` (of ``patient`` or ``cohort``): never NULL,
        since a criterion may stand under NOT (exclusion)."""
        if t.kind is Kind.AGE:
            return self._age(t, alias)
        if t.kind is Kind.SEX:
            return self._sex(t.genders, alias)
        return f'{alias}."patient_id" IN ({self.patients(t)})'

    def patients(self, t: Target) -> str:
        """The ids of the patients with a row matching ``t``."""
        branches = [self._rows(t, "patient_id")]
        if t.kind is Kind.OBSERVATION and not isinstance(t.value, ConceptFilter):
            branches.append(self._component_rows(t, "patient_id"))
        return "\n  UNION ".join(branches)

    def _rows(self, t: Target, select: str) -> str:
        table, key = _TABLES[t.kind]
        s = self._sql
        if t.kind is not Kind.ENCOUNTER and t.value is None and not t.attributes and t.time is None:
            # Codes alone: the coding table has the patient.
            return (
                'SELECT k."patient_id" FROM "coding" AS k '
                f'WHERE k."resource_type" = {s.p(t.kind.value)} '
                f'AND k."patient_id" IS NOT NULL AND ({self._codes("k", t.codes)})'
            )
        conds = ['x."patient_id" IS NOT NULL', self._main_code(t)]
        conds.extend(self._filters(t, "x", table))
        return f"SELECT x.{q(select)} FROM {q(table)} AS x WHERE " + " AND ".join(conds)

    def _main_code(self, t: Target) -> str:
        """The row's main code (alias x) is one of the criterion's codes."""
        if t.kind is Kind.ENCOUNTER:
            return self._code_columns('x."class_system"', 'x."class_code"', t.codes)
        if t.kind.value not in self.multi_coded:
            return "(" + self._code_columns('x."code_system"', 'x."code"', t.codes) + ")"
        table, key = _TABLES[t.kind]
        s = self._sql
        return (
            f'x.{q(key)} IN (SELECT k."resource_id" FROM "coding" AS k WHERE '
            f'k."resource_type" = {s.p(t.kind.value)} AND ({self._codes("k", t.codes)}))'
        )

    def _component_rows(self, t: Target, select: str) -> str:
        conds = [
            'oc."patient_id" IS NOT NULL',
            self._code_columns('oc."code_system"', 'oc."code"', t.codes),
        ]
        if t.value is not None:
            conds.append(self._value(t.value, "oc", "observation_component"))
        join = ""
        if t.attributes or t.time is not None or select != "patient_id":
            join = ' JOIN "observation" AS x ON x."observation_id" = oc."observation_id"'
            conds.extend(
                self._filters(
                    Target(t.kind, t.codes, None, t.genders, t.attributes, t.time, t.path),
                    "x",
                    "observation",
                )
            )
        return (
            f'SELECT oc.{q(select)} FROM "observation_component" AS oc{join} WHERE '
            + " AND ".join(conds)
        )

    def _filters(self, t: Target, alias: str, table: str) -> list[str]:
        conds = []
        if t.value is not None:
            conds.append(self._value(t.value, alias, table))
        conds.extend(self._attribute(a, alias) for a in t.attributes)
        if t.time is not None:
            start, end = _INTERVALS[t.kind]
            if t.time.after is not None:
                conds.append(f"{end} >= {self._sql.p(datetime.combine(t.time.after, time()))}")
            if t.time.before is not None:
                until = datetime.combine(t.time.before + timedelta(days=1), time())
                conds.append(f"{start} < {self._sql.p(until)}")
        return conds

    def _codes(self, alias: str, codes: tuple[TermCode, ...]) -> str:
        return self._code_columns(f'{alias}."system"', f'{alias}."code"', codes)

    def _code_columns(self, system: str, code: str, codes: tuple[TermCode, ...]) -> str:
        s = self._sql
        alternatives = []
        for tc in codes:
            prefix = descendant_prefix(tc.system, tc.code)
            system_value = s.p(tc.system)  # parameters in the order of the text
            match = f"{code} = {s.p(tc.code)}"
            if prefix is not None:
                match = f"({match} OR {code} LIKE {s.p(_like_prefix(prefix))} ESCAPE '\\')"
            alternatives.append(f"({system} = {system_value} AND {match})")
        return " OR ".join(alternatives)

    def _value(self, value: ConceptFilter | Comparison | Range, alias: str, table: str) -> str:
        s = self._sql
        if isinstance(value, ConceptFilter):
            return (
                "("
                + " OR ".join(
                    self._concept(f'{alias}."value_system"', f'{alias}."value_code"', c)
                    for c in value.concepts
                )
                + ")"
            )
        number, unit_column = UNIT_COLUMNS[table]
        column, unit_col = f"{alias}.{q(number)}", f"{alias}.{q(unit_column)}"
        if value.unit is None:
            return self._compare(column, value, None)
        alternatives = []
        for data_unit in self.data_units.get(table, ()):
            convert = units.conversion(value.unit, data_unit)
            if convert is not None:
                alternatives.append(
                    f"({unit_col} = {s.p(data_unit)} AND {self._compare(column, value, convert)})"
                )
        return "(" + " OR ".join(alternatives) + ")" if alternatives else FALSE

    def _compare(self, column: str, value: Comparison | Range, convert: units.Affine | None) -> str:
        s = self._sql
        c = convert or units.IDENTITY
        if isinstance(value, Range):
            return f"{column} BETWEEN {s.p(c(value.low))} AND {s.p(c(value.high))}"
        return f"{column} {_OPS[value.comparator]} {s.p(c(value.value))}"

    def _attribute(self, a: AttributeMatch, alias: str) -> str:
        code = f"{alias}.{q(a.attribute.code_column)}"
        system = (
            None if a.attribute.system_column is None else f"{alias}.{q(a.attribute.system_column)}"
        )
        return "(" + " OR ".join(self._concept(system, code, c) for c in a.concepts) + ")"

    def _concept(self, system: str | None, code: str, concept: TermCode) -> str:
        s = self._sql
        if system is None or not concept.system:
            return f"{code} = {s.p(concept.code)}"
        return f"({system} = {s.p(concept.system)} AND {code} = {s.p(concept.code)})"

    # -- patient criteria -----------------------------------------------------------------

    def _sex(self, genders: frozenset[str], alias: str = "p") -> str:
        s = self._sql
        known = [g for g in GENDERS if g != "unknown"]
        conds = []
        listed = [g for g in known if g in genders]
        if listed:  # never NULL: a criterion may stand under NOT (exclusion)
            missing = s.p("unknown")
            conds.append(
                f'COALESCE({alias}."gender", {missing}) IN ({", ".join(s.p(g) for g in listed)})'
            )
        if "unknown" in genders:
            unknown = s.p("unknown")
            others = ", ".join(s.p(g) for g in known)
            conds.append(f'COALESCE({alias}."gender", {unknown}) NOT IN ({others})')
        return "(" + " OR ".join(conds) + ")"

    def _age(self, t: Target, alias: str = "p") -> str:
        assert isinstance(t.value, Comparison | Range)
        unit = t.value.unit or "a"
        groups = ages.birth_conditions(t.value)
        if groups is None:
            return FALSE
        column = f'{alias}."birth_date"'
        alternatives = []
        for group in groups:
            conds = [f"{column} IS NOT NULL"]
            for op, n in group:
                conds.append(self._born(column, op, n, unit))
            alternatives.append("(" + " AND ".join(conds) + ")")
        return "(" + " OR ".join(alternatives) + ")"

    def _born(self, column: str, op: str, n: int, unit: str) -> str:
        """``<=``: completed >= n; ``>``: completed < n."""
        bound = ages.latest_birth(n, self.reference, unit)
        if bound is None:  # nobody is that old
            return FALSE if op == "<=" else f"{column} IS NOT NULL"
        return f"{column} {op} {self._sql.p(bound)}"

    # -- measures -------------------------------------------------------------------------

    def _strata(self, m: Measure) -> list[str]:
        def count(cond: str) -> str:
            return f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"

        if isinstance(m, SexStrata):
            return [count(self._sex(frozenset({g}), "cohort")) for g in m.genders]
        if isinstance(m, AgeBands):
            column = 'cohort."birth_date"'
            cells = []
            starts = (0, *m.edges)
            for a, b in zip(starts, (*m.edges, None), strict=True):
                conds = [] if a == 0 else [self._born(column, "<=", a, "a")]
                if b is not None:
                    conds.append(self._born(column, ">", b, "a"))
                cells.append(count(" AND ".join(conds) if conds else f"{column} IS NOT NULL"))
            if m.unknown:
                cells.append(count(f"{column} IS NULL"))
            return cells
        assert isinstance(m, CodeStrata)
        return [count(self.criterion(t, "cohort")) for t in m.strata]

    def _numeric_rows(self, m: Numeric) -> str:
        """(patient_id, t, id, v): the column's values in the wanted unit, cohort rows only."""
        src = m.source
        if m.target is None:  # patient.age
            age = self._age_value('cohort."birth_date"', m.unit or "a")
            return (
                f'SELECT cohort."patient_id", NULL AS t, cohort."patient_id" AS id, {age} AS v '
                'FROM cohort WHERE cohort."birth_date" IS NOT NULL'
            )
        t = m.target
        value = self._converted(m, "oc" if src.table == "observation_component" else "x", src.table)
        in_cohort = 'IN (SELECT cohort."patient_id" FROM cohort)'
        if src.table == "observation_component":
            conds = [
                f'oc."patient_id" {in_cohort}',
                self._code_columns('oc."code_system"', 'oc."code"', t.codes),
            ]
            if isinstance(t.value, ConceptFilter):  # components keep no coded values
                conds.append(FALSE)
            elif t.value is not None:
                conds.append(self._value(t.value, "oc", "observation_component"))
            conds.extend(
                self._filters(
                    Target(t.kind, t.codes, None, t.genders, t.attributes, t.time, t.path),
                    "x",
                    "observation",
                )
            )
            return (
                'SELECT oc."patient_id", x."effective" AS t, oc."observation_id" AS id, '
                f'{value} AS v FROM "observation_component" AS oc JOIN "observation" AS x '
                f'ON x."observation_id" = oc."observation_id" WHERE ' + " AND ".join(conds)
            )
        table, key = _TABLES[t.kind]
        conds = [f'x."patient_id" {in_cohort}', self._main_code(t), *self._filters(t, "x", table)]
        return (
            f'SELECT x."patient_id", x.{q(src.time or key)} AS t, x.{q(key)} AS id, {value} AS v '
            f"FROM {q(table)} AS x WHERE " + " AND ".join(conds)
        )

    def _converted(self, m: Numeric, alias: str, table: str) -> str:
        number, unit_column = UNIT_COLUMNS[table]
        column = f"{alias}.{q(number)}"
        if m.unit is None:
            return column
        whens = []
        for data_unit in self.data_units.get(table, ()):
            c = units.conversion(data_unit, m.unit)
            if c is not None:
                whens.append(
                    f"WHEN {alias}.{q(unit_column)} = {self._sql.p(data_unit)} "
                    f"THEN {column} * {self._sql.p(c.a)} + {self._sql.p(c.b)}"
                )
        return f"CASE {' '.join(whens)} END" if whens else "NULL"

    def _age_value(self, column: str, unit: str) -> str:
        r, s = self.reference, self._sql
        if unit == "a":
            return (
                f"({s.p(r.year)} - EXTRACT(YEAR FROM {column}) - CASE WHEN "
                f"EXTRACT(MONTH FROM {column}) * 100 + EXTRACT(DAY FROM {column}) > "
                f"{s.p(r.month * 100 + r.day)} THEN 1 ELSE 0 END)"
            )
        return (
            f"(({s.p(r.year)} - EXTRACT(YEAR FROM {column})) * 12 + {s.p(r.month)} - "
            f"EXTRACT(MONTH FROM {column}) - CASE WHEN EXTRACT(DAY FROM {column}) > "
            f"{s.p(r.day)} THEN 1 ELSE 0 END)"
        )

    def _per_patient(self, m: Numeric, name: str) -> str:
        rows = f"{name}_rows"
        if m.per_patient in ("min", "max", "mean"):
            fn = {"min": "MIN", "max": "MAX", "mean": "AVG"}[m.per_patient]
            return (
                f'SELECT "patient_id", {fn}(v) AS v FROM {rows} '
                'WHERE v IS NOT NULL GROUP BY "patient_id"'
            )
        order = "DESC" if m.per_patient == "latest" else "ASC"
        return (
            f'SELECT "patient_id", v FROM (SELECT "patient_id", v, ROW_NUMBER() OVER '
            f'(PARTITION BY "patient_id" ORDER BY t {order} NULLS LAST, id {order}) AS rn '
            f"FROM {rows} WHERE v IS NOT NULL) AS ranked WHERE rn = 1"
        )

    def _numeric_cells(self, m: Numeric) -> list[str]:
        s = self._sql
        cells = ["COUNT(*)"]
        if m.mean or m.stddev:
            assert m.bounds is not None
            lo, hi = m.bounds

            def clamped() -> str:
                low = f"WHEN v < {s.p(lo)} THEN {s.p(lo)}"
                return f"CASE {low} WHEN v > {s.p(hi)} THEN {s.p(hi)} ELSE v END"

            cells.append(f"COALESCE(SUM({clamped()}), 0)")
            if m.stddev:
                cells.append(f"COALESCE(SUM(({clamped()}) * ({clamped()})), 0)")
        cuts = m.histogram
        for i in range(len(cuts) + 1 if cuts else 0):
            conds = []
            if i > 0:
                conds.append(f"v >= {s.p(cuts[i - 1])}")
            if i < len(cuts):
                conds.append(f"v < {s.p(cuts[i])}")
            cells.append(f"COALESCE(SUM(CASE WHEN {' AND '.join(conds)} THEN 1 ELSE 0 END), 0)")
        return cells


def _cell_count(m: Measure) -> int:
    if isinstance(m, Numeric):
        sums = (1 if m.mean or m.stddev else 0) + (1 if m.stddev else 0)
        return 1 + sums + (len(m.histogram) + 1 if m.histogram else 0)
    if isinstance(m, SexStrata):
        return len(m.genders)
    if isinstance(m, AgeBands):
        return len(m.labels())
    return len(m.strata)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"
