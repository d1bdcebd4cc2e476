"""Flat views <-> the tables a synthesizer learns (pandas; imported only by the pipeline).

``encode`` turns a dataset's flattened tables into one patient table and child tables
(encounter, condition, observation, procedure, medication_request) whose columns a synthesizer
can learn without producing impossible rows:

- dates are offsets, never absolute: a patient's age at the end of its record (the dataset's
  last date, or death), an encounter's age (days since birth) and duration, a clinical row's
  age and hours after its encounter's start; so sampled dates keep their order and ages stay
  consistent with birth dates;
- a code is one category ``system|code`` (its coding system kept; display and unit looked up
  per code), codes recorded for fewer than ``min_code_patients`` patients left out;
- a numeric value (observation value, medication dose) is a residual against its code's
  age trend (:class:`ValueModel`), so a weight is generated for the age it is recorded at.

``decode`` does the reverse on sampled tables: birth dates from sampled ages (inside the
dataset's typical age range), encounters given to patients of the same sex old enough for them,
clinical rows to encounters of the same class near their age, derived fields recomputed, fresh
ids. Its output has the flat views' own columns, so the same reports and queries run on real
and synthetic data.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from connector.ports import FlatViews

Frames = dict[str, pd.DataFrame]

NONE = ""  # an absent category
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)


def days(later: Any, earlier: Any) -> pd.Series:
    """``later - earlier`` in days (fractional; NaN where either is missing)."""
    delta: Any = later - earlier
    return pd.Series(delta / DAY)


def hours(later: Any, earlier: Any) -> pd.Series:
    delta: Any = later - earlier
    return pd.Series(delta / HOUR)


@dataclass(frozen=True)
class ChildSpec:
    """How one clinical table is encoded: its time column, its coded categories (column,
    system column), its per-code numeric value and unit, its end (hours after the start)."""

    table: str
    when: str
    categories: tuple[tuple[str, str | None], ...]
    value: str | None = None
    unit: str | None = None
    unit_display: str | None = None
    end: str | None = None


CHILDREN: tuple[ChildSpec, ...] = (
    ChildSpec(
        "condition",
        "onset",
        (
            ("clinical_status", None),
            ("verification_status", None),
            ("severity_code", "severity_system"),
        ),
        end="abatement",
    ),
    ChildSpec(
        "observation",
        "effective",
        (
            ("status", None),
            ("category_code", None),
            ("value_code", "value_system"),
            ("interpretation_code", None),
        ),
        value="value_quantity",
        unit="value_unit",
        unit_display="value_unit_display",
    ),
    ChildSpec("procedure", "performed", (("status", None),), end="performed_end"),
    ChildSpec(
        "medication_request",
        "authored",
        (("status", None), ("intent", None), ("route", None)),
        value="dose_value",
        unit="dose_unit",
    ),
)
CHILD_TABLES = tuple(s.table for s in CHILDREN)
SPECS = {s.table: s for s in CHILDREN}

SEX_MODEL_ROWS = 100  # rows of one code and sex needed for a sex-specific value trend

# Categorical columns of each training table (the rest are numeric, patient_id the key).
ENCOUNTER_CATEGORIES = ("class", "service_type", "status", "discharge")


@dataclass
class ValueModel:
    """A numeric value's trend with age for one code: medians and spreads at age centres
    (log scale for positive values), the residual's 1st-99th percentile range (sampled
    residuals are clipped to it, so values stay inside the real range for the age), and the
    decimals the source records; values are also kept inside the code's 0.5-99.5th percentile
    and rows outside the code's age range (1st-99th percentile; a head circumference at ten)
    are dropped."""

    log: bool
    centers: list[float]
    medians: list[float]
    scales: list[float]
    z_low: float
    z_high: float
    decimals: int
    low: float = -math.inf
    high: float = math.inf
    age_low: float = 0.0
    age_high: float = math.inf

    @classmethod
    def fit(cls, ages: np.ndarray, values: np.ndarray) -> ValueModel:
        log = bool((values > 0).all())
        y = np.log(values) if log else values.astype(float)
        order = np.argsort(ages)
        x, y = _axis(ages[order]), y[order]
        bins = max(1, min(24, len(y) // 25))
        parts = list(zip(np.array_split(x, bins), np.array_split(y, bins), strict=True))
        centers = [float(part_x.mean()) for part_x, _ in parts]
        medians = [float(np.median(part_y)) for _, part_y in parts]
        scales = []
        for part_x, part_y in parts:  # spread around the trend, not around the bin's median
            q1, q3 = np.quantile(part_y - np.interp(part_x, centers, medians), [0.25, 0.75])
            scales.append(float(q3 - q1) / 1.349)
        floor = max(1e-6, float(np.std(y)) / 10)
        scales = [max(s, floor) for s in scales]
        low, high = np.quantile(values, [0.005, 0.995])
        age_low, age_high = np.quantile(ages, [0.01, 0.99])
        model = cls(log, centers, medians, scales, 0.0, 0.0, _decimals(values),
                    float(low), float(high), float(age_low), float(age_high))  # fmt: skip
        z = model.residual(ages, values)
        z_low, z_high = np.quantile(z, [0.01, 0.99])
        model.z_low, model.z_high = float(z_low), float(z_high)
        return model

    def residual(self, ages: np.ndarray, values: np.ndarray) -> np.ndarray:
        y = np.log(values) if self.log else values
        x = _axis(ages)
        med = np.interp(x, self.centers, self.medians)
        return np.asarray((y - med) / np.interp(x, self.centers, self.scales), dtype=float)

    def value(self, ages: np.ndarray, z: np.ndarray) -> np.ndarray:
        z = np.clip(np.nan_to_num(z, nan=0.0), self.z_low, self.z_high)
        x = _axis(ages)
        y = np.interp(x, self.centers, self.medians) + z * np.interp(x, self.centers, self.scales)
        value = np.clip(np.exp(y) if self.log else y, self.low, self.high)
        return np.asarray(np.round(value, self.decimals), dtype=float)

    def plausible_age(self, ages: np.ndarray) -> np.ndarray:
        return np.asarray((ages >= self.age_low) & (ages <= self.age_high))


def _axis(ages: np.ndarray) -> np.ndarray:
    """Age on the axis the trend is interpolated along: log(1 + months), on which growth in
    infancy (fast) and in later childhood (slow) are both close to straight lines."""
    return np.asarray(np.log1p(np.clip(ages, 0, None) / 30.44), dtype=float)


def _decimals(values: np.ndarray) -> int:
    for d in range(4):
        if np.allclose(values, np.round(values, d), rtol=0, atol=1e-9):
            return d
    return 3


@dataclass
class Encoding:
    """What ``decode`` needs besides the sampled tables (JSON-serialisable; no patient row)."""

    as_of: str  # the dataset's last date (ISO), the end of every living patient's record
    age_low: float  # the typical age range (days at the end of the record, 1st-99th pct.)
    age_high: float
    rows_per_patient: dict[str, float]
    displays: dict[str, dict[str, str]]  # table -> code key -> display
    units: dict[str, dict[str, list[str]]]  # table -> code key -> [unit, unit display]
    values: dict[str, dict[str, ValueModel]]  # table -> code key -> value model
    dropped_codes: dict[str, int] = field(default_factory=dict)  # table -> rare codes left out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Encoding:
        values = {
            t: {k: ValueModel(**m) for k, m in models.items()}
            for t, models in data["values"].items()
        }
        return cls(**{**data, "values": values})


def read_views(views: FlatViews) -> Frames:
    """The flat views as pandas frames (datetimes at nanosecond resolution: SDV reads
    ``datetime64[s]`` columns as 1970)."""
    import duckdb

    frames: Frames = {}
    con = duckdb.connect()
    try:
        for name in ("patient", "encounter", *CHILD_TABLES):
            path = views.tables.get(name)
            if path is None:
                continue
            frame = con.execute("SELECT * FROM read_parquet(?)", [str(path)]).df()
            for column in frame.columns:
                if pd.api.types.is_datetime64_any_dtype(frame[column]):
                    frame[column] = frame[column].astype("datetime64[ns]")
            frames[name] = frame
    finally:
        con.close()
    return frames


def _key(system: pd.Series, code: pd.Series) -> pd.Series:
    code = code.fillna(NONE).astype(str)
    system = system.fillna(NONE).astype(str)
    return (system + "|" + code).where(code != NONE, NONE)


def _split(key: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``system|code`` keys back to system and code columns (None where absent); through the
    few distinct keys, not a string split per row."""
    distinct = key.fillna(NONE).astype(str)
    parts = {k: k.split("|", 1) if k != NONE else [None, None] for k in distinct.unique()}
    system = distinct.map({k: v[0] if len(v) == 2 else None for k, v in parts.items()})
    code = distinct.map({k: v[-1] for k, v in parts.items()})
    return system.astype(object), code.astype(object)


def _cat(series: pd.Series) -> pd.Series:
    return series.fillna(NONE).astype(str)


def as_of(frames: Frames) -> pd.Timestamp:
    """The dataset's last recorded date (the end of a living patient's record)."""
    stamps = [frames["patient"]["deceased_at"].max()]
    if "encounter" in frames:
        stamps += [frames["encounter"]["start"].max(), frames["encounter"]["end"].max()]
    for spec in CHILDREN:
        if spec.table in frames:
            stamps.append(frames[spec.table][spec.when].max())
    valid = [s for s in stamps if not pd.isna(s)]
    latest = max(valid) if valid else frames["patient"]["birth_date"].max()
    return pd.Timestamp(latest).normalize() + DAY


def encode(frames: Frames, *, min_code_patients: int) -> tuple[Frames, Encoding]:
    """Training tables (``patient`` keyed by ``patient_id``; children referring to it) and the
    encoding that turns samples back into flat views."""
    end = as_of(frames)
    patients = frames["patient"].dropna(subset=["birth_date"]).copy()
    birth = patients.set_index("patient_id")["birth_date"]
    gender = patients.set_index("patient_id")["gender"].fillna("unknown")
    record_end = patients["deceased_at"].fillna(end)
    patient = pd.DataFrame(
        {
            "patient_id": patients["patient_id"].to_numpy(),
            "gender": gender.to_numpy(),
            "age_days": days(record_end, patients["birth_date"]).round(0).to_numpy(),
            "deceased": np.where(patients["deceased_at"].notna(), "yes", "no"),
            "death_before_end_days": days(end, patients["deceased_at"]).round(0).to_numpy(),
        }
    )
    enc = frames.get("encounter", pd.DataFrame(columns=["encounter_id", "patient_id"]))
    enc = enc[enc["patient_id"].isin(birth.index) & enc["start"].notna()]
    counts = enc.groupby("patient_id").size()
    patient["n_encounters"] = patient["patient_id"].map(counts).fillna(0).astype(int)
    encounter = pd.DataFrame(
        {
            "patient_id": enc["patient_id"].to_numpy(),
            "gender": enc["patient_id"].map(gender).to_numpy(),
            "age_days": days(enc["start"], enc["patient_id"].map(birth)).to_numpy(),
            "class": _key(enc["class_system"], enc["class_code"]).to_numpy(),
            "service_type": _key(enc["service_type_system"], enc["service_type_code"]).to_numpy(),
            "status": _cat(enc["status"]).to_numpy(),
            "discharge": _cat(enc["discharge_code"]).to_numpy(),
            "duration_hours": hours(enc["end"], enc["start"]).to_numpy(),
        }
    )
    encounter = encounter[encounter["age_days"] >= 0].reset_index(drop=True)
    tables: Frames = {"patient": patient, "encounter": encounter}
    enc_by_id = enc.set_index("encounter_id")
    encoding = Encoding(
        as_of=end.isoformat(),
        age_low=float(np.quantile(patient["age_days"], 0.01)) if len(patient) else 0.0,
        age_high=float(np.quantile(patient["age_days"], 0.99)) if len(patient) else 0.0,
        rows_per_patient={"encounter": len(encounter) / max(1, len(patient))},
        displays={},
        units={},
        values={},
    )
    for spec in CHILDREN:
        source = frames.get(spec.table)
        if source is None or source.empty:
            continue
        child = _encode_child(spec, source, birth, gender, enc_by_id, min_code_patients, encoding)
        if not child.empty:
            tables[spec.table] = child
            encoding.rows_per_patient[spec.table] = len(child) / max(1, len(patient))
    return tables, encoding


def _encode_child(
    spec: ChildSpec,
    source: pd.DataFrame,
    birth: pd.Series,
    gender: pd.Series,
    encounters: pd.DataFrame,
    min_code_patients: int,
    encoding: Encoding,
) -> pd.DataFrame:
    rows = source[
        source["encounter_id"].isin(encounters.index)
        & source["patient_id"].isin(birth.index)
        & source[spec.when].notna()
        & source["code"].notna()
    ].copy()
    rows["key"] = _key(rows["code_system"], rows["code"])
    patients_per_code = rows.groupby("key")["patient_id"].nunique()
    common = patients_per_code[patients_per_code >= min_code_patients].index
    encoding.dropped_codes[spec.table] = int(len(patients_per_code) - len(common))
    rows = rows[rows["key"].isin(common)]
    if rows.empty:
        return pd.DataFrame()
    enc = encounters.loc[rows["encounter_id"]]
    when = rows[spec.when]
    out = pd.DataFrame(
        {
            "patient_id": rows["patient_id"].to_numpy(),
            "gender": rows["patient_id"].map(gender).to_numpy(),
            "age_days": days(when, rows["patient_id"].map(birth)).to_numpy(),
            "encounter_class": _key(enc["class_system"], enc["class_code"]).to_numpy(),
            "offset_hours": hours(when.to_numpy(), enc["start"].to_numpy()),
            "code": rows["key"].to_numpy(),
        }
    )
    encoding.displays[spec.table] = {
        str(k): str(v)
        for k, v in (
            rows.groupby("key")["code_display"].agg(
                lambda s: s.mode().iloc[0] if s.notna().any() else ""
            )
        ).items()
    }
    for column, system in spec.categories:
        values = _key(rows[system], rows[column]) if system else _cat(rows[column])
        out[column] = values.to_numpy()
    if spec.end:
        out["end_hours"] = hours(rows[spec.end], when).to_numpy()
    if spec.value and spec.unit:
        out["value_z"] = np.nan
        units: dict[str, list[str]] = {}
        models: dict[str, ValueModel] = {}
        for key, part in rows.groupby("key"):
            have = part[part[spec.value].notna()]
            if have.empty:
                continue
            unit = have[spec.unit].fillna(NONE).mode().iloc[0]
            have = have[have[spec.unit].fillna(NONE) == unit]
            display = have[spec.unit_display].mode() if spec.unit_display else pd.Series([])
            units[str(key)] = [str(unit), str(display.iloc[0]) if len(display) else str(unit)]
            ages = days(have[spec.when], have["patient_id"].map(birth)).to_numpy()
            values = have[spec.value].to_numpy(dtype=float)
            models[str(key)] = ValueModel.fit(ages, values)
            sexes = have["patient_id"].map(gender).to_numpy()
            for sex in np.unique(sexes):  # growth differs by sex: its own trend where data allow
                if (sexes == sex).sum() >= SEX_MODEL_ROWS:
                    mine = sexes == sex
                    models[f"{key}#{sex}"] = ValueModel.fit(ages[mine], values[mine])
            chosen = np.array([f"{key}#{s}" if f"{key}#{s}" in models else str(key) for s in sexes])
            z = np.empty(len(have))
            for name in np.unique(chosen):
                at = chosen == name
                z[at] = models[name].residual(ages[at], values[at])
            out.loc[rows.index.get_indexer(have.index), "value_z"] = z
        encoding.units[spec.table] = units
        encoding.values[spec.table] = models
    return out[out["age_days"] >= 0].reset_index(drop=True)


# -- decoding ------------------------------------------------------------------------------


def decode(sampled: Frames, encoding: Encoding, rng: np.random.Generator) -> Frames:
    """Sampled training tables -> flat-view frames with fresh ids (see the module docstring).
    Children that carry a ``patient_id`` of a sampled patient (the HMA backend) stay with that
    patient; others are given to encounters of the same class near their age."""
    end = pd.Timestamp(encoding.as_of)
    p = sampled["patient"].reset_index(drop=True)
    age = np.clip(p["age_days"].to_numpy(float), encoding.age_low, encoding.age_high)
    age = np.round(np.nan_to_num(age, nan=encoding.age_low))
    dead = (p["deceased"].astype(str) == "yes").to_numpy()
    before_end = np.where(
        dead, np.clip(np.nan_to_num(p["death_before_end_days"].to_numpy(float)), 0, None), 0
    )
    record_end = end - pd.to_timedelta(np.round(before_end), unit="D")
    birth = (record_end - pd.to_timedelta(age, unit="D")).normalize()
    patient_ids = _fresh_ids(len(p), rng)
    patient = pd.DataFrame(
        {
            "patient_id": patient_ids,
            "birth_date": birth,
            "gender": p["gender"].astype(str).replace("unknown", None).to_numpy(),
            "deceased_at": np.where(dead, record_end.to_numpy(), np.datetime64("NaT")),
        }
    )
    life_days = days(pd.Series(record_end), pd.Series(birth)).to_numpy()
    out: Frames = {"patient": patient}
    source_ids = p["patient_id"].astype(str).to_numpy() if "patient_id" in p else None
    encounter = _decode_encounters(sampled.get("encounter"), p, patient, life_days, source_ids, rng)
    out["encounter"] = encounter
    for spec in CHILDREN:
        rows = sampled.get(spec.table)
        if rows is None or rows.empty or encounter.empty:
            continue
        out[spec.table] = _decode_child(spec, rows, encounter, patient, source_ids, encoding, rng)
    return out


def _fresh_ids(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` random (version 4) UUIDs, formatted without a UUID object each."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    text = raw.tobytes().hex()
    return [
        f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        for h in (text[i * 32 : (i + 1) * 32] for i in range(n))
    ]


def _owners_by_id(rows: pd.DataFrame, source_ids: np.ndarray | None) -> np.ndarray | None:
    """Row -> sampled patient position, where the backend linked rows to patients (HMA)."""
    if source_ids is None or "patient_id" not in rows:
        return None
    position = pd.Series(np.arange(len(source_ids)), index=source_ids)
    position = position[~position.index.duplicated()]
    owner = rows["patient_id"].astype(str).map(position)
    return None if owner.isna().all() else owner.to_numpy()


def _decode_encounters(
    rows: pd.DataFrame | None,
    sampled_patients: pd.DataFrame,
    patient: pd.DataFrame,
    life_days: np.ndarray,
    source_ids: np.ndarray | None,
    rng: np.random.Generator,
) -> pd.DataFrame:
    columns = [
        "encounter_id", "patient_id", "status", "class_system", "class_code",
        "service_type_system", "service_type_code", "start", "end", "discharge_code",
    ]  # fmt: skip
    if rows is None or rows.empty or patient.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.reset_index(drop=True)
    age = np.clip(np.nan_to_num(rows["age_days"].to_numpy(float)), 0, None)
    owner = _owners_by_id(rows, source_ids)
    if owner is None:
        weights = np.clip(sampled_patients["n_encounters"].to_numpy(float), 0, None) + 1e-3
        sexes = patient["gender"].fillna("unknown").to_numpy()
        owner = _give_by_age(
            age, rows["gender"].astype(str).to_numpy(), life_days, sexes, weights, rng
        )
    keep = ~np.isnan(owner.astype(float))
    rows, age, owner = rows[keep], age[keep], owner[keep].astype(int)
    age = np.minimum(age, life_days[owner])  # an encounter never starts after death
    birth = patient["birth_date"].to_numpy()[owner]
    start = (pd.Series(birth) + pd.to_timedelta(age, unit="D")).dt.round("min")
    record_end = pd.Series(birth) + pd.to_timedelta(life_days[owner], unit="D")
    hours = rows["duration_hours"].to_numpy(float)
    hours = np.where(np.isnan(hours), np.nan, np.clip(hours, 0, None))
    stop = (start + pd.to_timedelta(np.nan_to_num(hours), unit="h")).dt.round("min")
    stop = stop.where(stop <= record_end, record_end).where(~np.isnan(hours), pd.NaT)
    class_system, class_code = _split(rows["class"])
    service_system, service_code = _split(rows["service_type"])
    return pd.DataFrame(
        {
            "encounter_id": _fresh_ids(len(rows), rng),
            "patient_id": patient["patient_id"].to_numpy()[owner],
            "status": rows["status"].replace(NONE, None).to_numpy(),
            "class_system": class_system.to_numpy(),
            "class_code": class_code.to_numpy(),
            "service_type_system": service_system.to_numpy(),
            "service_type_code": service_code.to_numpy(),
            "start": start.to_numpy(),
            "end": stop.to_numpy(),
            "discharge_code": rows["discharge"].replace(NONE, None).to_numpy(),
        }
    )


def _give_by_age(
    age: np.ndarray,
    sex: np.ndarray,
    life_days: np.ndarray,
    patient_sex: np.ndarray,
    weights: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Each encounter to a patient of its sex whose record is long enough for its age, chosen
    with probability proportional to the patient's sampled number of encounters."""
    owner = np.full(len(age), np.nan)
    for s in np.unique(sex):
        mine = np.flatnonzero(patient_sex == s)
        if mine.size == 0:
            mine = np.arange(len(patient_sex))
        order = mine[np.argsort(life_days[mine])]
        lives = life_days[order]
        cum = np.concatenate([[0.0], np.cumsum(weights[order])])
        rows = np.flatnonzero(sex == s)
        first = np.searchsorted(lives, age[rows], side="left")
        ok = first < len(order)
        rows, first = rows[ok], first[ok]
        draw = cum[first] + rng.random(len(rows)) * (cum[-1] - cum[first])
        pick = np.clip(np.searchsorted(cum, draw, side="right") - 1, first, len(order) - 1)
        owner[rows] = order[pick]
    return owner


def _decode_child(
    spec: ChildSpec,
    rows: pd.DataFrame,
    encounter: pd.DataFrame,
    patient: pd.DataFrame,
    source_ids: np.ndarray | None,
    encoding: Encoding,
    rng: np.random.Generator,
) -> pd.DataFrame:
    rows = rows.reset_index(drop=True)
    birth_by_patient = patient.set_index("patient_id")["birth_date"]
    enc_birth = encounter["patient_id"].map(birth_by_patient)
    enc_age = days(encounter["start"], enc_birth).to_numpy(float)
    enc_class = (
        encounter["class_system"].fillna(NONE) + "|" + encounter["class_code"].fillna(NONE)
    ).to_numpy()
    target_age = np.nan_to_num(rows["age_days"].to_numpy(float))
    chosen = np.full(len(rows), -1)
    owner = _owners_by_id(rows, source_ids)
    if owner is not None:
        enc_owner = (
            encounter["patient_id"]
            .map(pd.Series(np.arange(len(patient)), index=patient["patient_id"]))
            .to_numpy()
        )
        by_patient = (
            pd.Series(np.arange(len(encounter))).groupby(enc_owner).apply(np.asarray).to_dict()
        )
        for i, o in enumerate(owner):
            candidates = by_patient.get(o) if not np.isnan(o) else None
            if candidates is not None and len(candidates):
                chosen[i] = candidates[np.argmin(np.abs(enc_age[candidates] - target_age[i]))]
    else:
        row_class = rows["encounter_class"].astype(str).to_numpy()
        for cls in np.unique(row_class):
            candidates = np.flatnonzero(enc_class == cls)
            if candidates.size == 0:
                candidates = np.arange(len(encounter))
            order = candidates[np.argsort(enc_age[candidates])]
            mine = np.flatnonzero(row_class == cls)
            at = np.clip(np.searchsorted(enc_age[order], target_age[mine]), 0, len(order) - 1)
            left = np.clip(at - 1, 0, len(order) - 1)
            closer = np.abs(enc_age[order][left] - target_age[mine]) < np.abs(
                enc_age[order][at] - target_age[mine]
            )
            chosen[mine] = order[np.where(closer, left, at)]
    keep = chosen >= 0
    rows, chosen = rows[keep].reset_index(drop=True), chosen[keep]
    enc = encounter.iloc[chosen].reset_index(drop=True)
    duration = hours(enc["end"], enc["start"]).to_numpy(float)
    limit = np.where(np.isnan(duration), 24.0, duration)
    offset = np.clip(np.nan_to_num(rows["offset_hours"].to_numpy(float)), 0, limit)
    when = (enc["start"] + pd.to_timedelta(offset, unit="h")).dt.round("min")
    age = days(when, enc["patient_id"].map(birth_by_patient)).to_numpy(float)
    system, code = _split(rows["code"])
    id_column = f"{spec.table}_id"
    out = pd.DataFrame(
        {
            id_column: _fresh_ids(len(rows), rng),
            "patient_id": enc["patient_id"].to_numpy(),
            "encounter_id": enc["encounter_id"].to_numpy(),
            "code_system": system.to_numpy(),
            "code": code.to_numpy(),
            "code_display": rows["code"].map(encoding.displays.get(spec.table, {})).to_numpy(),
            spec.when: when.to_numpy(),
        }
    )
    for column, system_column in spec.categories:
        if system_column:
            s, c = _split(rows[column])
            out[system_column], out[column] = s.to_numpy(), c.to_numpy()
        else:
            out[column] = rows[column].astype(str).replace(NONE, None).to_numpy()
    if spec.end:
        end_hours = rows["end_hours"].to_numpy(float)
        stop = when + pd.to_timedelta(np.clip(np.nan_to_num(end_hours), 0, None), unit="h")
        stop = stop.where(stop <= pd.Timestamp(encoding.as_of), pd.Timestamp(encoding.as_of))
        out[spec.end] = stop.where(~np.isnan(end_hours), pd.NaT).dt.round("min").to_numpy()
    if spec.value and spec.unit:
        values = np.full(len(rows), np.nan)
        unit = np.full(len(rows), None, dtype=object)
        unit_display = np.full(len(rows), None, dtype=object)
        z = rows["value_z"].to_numpy(float, copy=True)
        # A copula learns one share of missing values for the whole column, not per code: a
        # code that has a value model gets a residual where the sample has none.
        missing = np.isnan(z)
        z[missing] = rng.standard_normal(int(missing.sum()))
        keys = rows["code"].astype(str).to_numpy()
        sexes = enc["patient_id"].map(patient.set_index("patient_id")["gender"]).to_numpy()
        models = encoding.values.get(spec.table, {})
        chosen = np.array(
            [f"{k}#{x}" if f"{k}#{x}" in models else k for k, x in zip(keys, sexes, strict=True)]
        )
        implausible = np.zeros(len(rows), dtype=bool)
        for name in np.unique(chosen):
            model = models.get(name)
            if model is None:
                continue
            at = np.flatnonzero(chosen == name)
            values[at] = model.value(age[at], z[at])
            unit[at], unit_display[at] = encoding.units[spec.table][name.split("#", 1)[0]]
            implausible[at] = ~model.plausible_age(age[at])
        out[spec.value] = values
        out[spec.unit] = unit
        if spec.unit_display:
            out[spec.unit_display] = unit_display
        out = out[~implausible]
    if spec.table == "condition":
        out["recorded"] = out["onset"]
    return out.reset_index(drop=True)


# -- exact copies ----------------------------------------------------------------------------


def signatures(frames: Frames, salt: bytes) -> pd.Series:
    """One salted hash per patient over its whole record as the data user would see it: sex,
    birth and death dates, its encounters (day and class) and its diagnoses (code and onset
    day). Equal hashes mean a synthetic patient is an exact copy of a real one."""
    patient = frames["patient"]
    parts = (
        patient["gender"].fillna("").astype(str)
        + "|" + patient["birth_date"].dt.strftime("%Y-%m-%d").fillna("")
        + "|" + patient["deceased_at"].dt.strftime("%Y-%m-%d").fillna("")
    )  # fmt: skip
    text = pd.Series(parts.to_numpy(), index=patient["patient_id"].to_numpy())
    for table, when, what in (("encounter", "start", "class_code"), ("condition", "onset", "code")):
        rows = frames.get(table)
        if rows is None or rows.empty:
            text = text + "|"
            continue
        items = (
            rows[what].fillna("").astype(str) + "@" + rows[when].dt.strftime("%Y-%m-%d").fillna("")
        )
        joined = items.groupby(rows["patient_id"].to_numpy()).agg(lambda s: ",".join(sorted(s)))
        text = text + "|" + text.index.to_series().map(joined).fillna("").to_numpy()
    return text.map(lambda t: hashlib.sha256(salt + t.encode()).hexdigest())


def keep_patients(frames: Frames, keep: set[str]) -> Frames:
    """The frames restricted to the patients in ``keep``."""
    return {
        name: frame[frame["patient_id"].isin(keep)].reset_index(drop=True)
        for name, frame in frames.items()
    }
