"""Quality, privacy and utility of a fitted model, computed at the hospital (DESIGN.md §4).

All three compare flat-view frames: the real training patients, the held-out real patients and
a synthetic sample of the model. The report holds scores and aggregate shares only, never a
patient row.

- **quality**: the SDMetrics quality report (column shapes, column pair trends, overall
  score) over three tables: one row per patient (age, sex, deceased, numbers of encounters and
  diagnoses, the ten commonest diagnoses), encounters (class, age, duration) and observations
  (code, age, value); plots as PNG and one HTML page.
- **privacy**: the exact-copy rate (a synthetic patient whose whole record equals a real one;
  such patients are dropped and resampled when data is delivered, so the delivered rate is 0),
  SDMetrics DCR overfitting protection (distance to the closest training patient against the
  held-out baseline) and SDMetrics disclosure protection of the diagnosis given age band and
  sex.
- **utility**: the same cohort questions on real and synthetic patients with their relative
  error (:data:`COHORT_QUESTIONS`; the CCDL aggregate compiler plugs in through ``questions``),
  and, where the hospital names a prediction target, the AUC of a model trained on synthetic
  patients and of one trained on real patients, both tested on the held-out real patients.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connector.synthetic.backends import quiet
from connector.synthetic.tables import DAY, Frames, days, hours

TOP_DIAGNOSES = 10
AGE_BANDS = (0, 1, 5, 12, 18, 200)  # years

# A cohort question: frames -> named patient counts. The CCDL compiler of
# connector/fulfilment/aggregate will add questions here (one per stored query).
Question = Callable[[Frames], Mapping[str, float]]


def _ages(frames: Frames) -> pd.Series:
    patient = frames["patient"]
    end = patient["deceased_at"].fillna(_as_of(frames))
    return (days(end, patient["birth_date"]) / 365.25).rename("age_years")


def _as_of(frames: Frames) -> pd.Timestamp:
    enc = frames.get("encounter")
    if enc is not None and not enc.empty:
        return pd.Timestamp(enc["start"].max()).normalize() + DAY
    return pd.Timestamp(frames["patient"]["birth_date"].max())


def _diagnosis_key(frames: Frames) -> pd.Series:
    cond = frames.get("condition")
    if cond is None or cond.empty:
        return pd.Series(dtype=object)
    return cond["code_system"].fillna("") + "|" + cond["code"].fillna("")


def top_diagnoses(frames: Frames, n: int = TOP_DIAGNOSES) -> list[str]:
    cond = frames.get("condition")
    if cond is None or cond.empty:
        return []
    per_patient = pd.DataFrame({"key": _diagnosis_key(frames), "p": cond["patient_id"]})
    return list(per_patient.drop_duplicates().value_counts("key").index[:n])


def profile(frames: Frames, diagnoses: list[str]) -> pd.DataFrame:
    """One row per patient: what the patient-level comparisons read."""
    patient = frames["patient"]
    out = pd.DataFrame(
        {
            "age_years": _ages(frames).to_numpy(),
            "gender": patient["gender"].fillna("unknown").to_numpy(),
            "deceased": patient["deceased_at"].notna().map({True: "yes", False: "no"}).to_numpy(),
        },
        index=patient["patient_id"].to_numpy(),
    )
    for table in ("encounter", "condition"):
        rows = frames.get(table)
        counts: dict[Any, int] = (
            rows.groupby("patient_id").size().to_dict() if rows is not None else {}
        )
        out[f"n_{table}s"] = [counts.get(pid, 0) for pid in out.index]
    keys = _diagnosis_key(frames)
    cond = frames.get("condition")
    for key in diagnoses:
        have = set(cond.loc[keys == key, "patient_id"]) if cond is not None else set()
        out[f"dx {key.split('|', 1)[-1]}"] = out.index.isin(have).astype(int).astype(str)
    return out.reset_index(drop=True)


def _encounters(frames: Frames) -> pd.DataFrame:
    enc = frames.get("encounter", pd.DataFrame())
    if enc.empty:
        return pd.DataFrame({"class": [], "age_years": [], "duration_hours": []})
    birth = enc["patient_id"].map(frames["patient"].set_index("patient_id")["birth_date"])
    return pd.DataFrame(
        {
            "class": enc["class_code"].fillna("").astype(str),
            "age_years": days(enc["start"], birth) / 365.25,
            "duration_hours": hours(enc["end"], enc["start"]),
        }
    )


def _observations(frames: Frames) -> pd.DataFrame:
    obs = frames.get("observation", pd.DataFrame())
    if obs.empty:
        return pd.DataFrame({"code": [], "age_years": [], "value": []})
    birth = obs["patient_id"].map(frames["patient"].set_index("patient_id")["birth_date"])
    return pd.DataFrame(
        {
            "code": obs["code"].fillna("").astype(str),
            "age_years": days(obs["effective"], birth) / 365.25,
            "value": obs["value_quantity"].astype(float),
        }
    )


def _metadata(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "columns": {
            c: {
                "sdtype": "numerical"
                if pd.api.types.is_numeric_dtype(frame[c]) and not c.startswith("dx ")
                else "categorical"
            }  # fmt: skip
            for c in frame.columns
        }
    }


def quality(real: Frames, synthetic: Frames, diagnoses: list[str]) -> dict[str, Any]:
    from sdmetrics.reports import QualityReport

    tables = {
        "patient": (profile(real, diagnoses), profile(synthetic, diagnoses)),
        "encounter": (_encounters(real), _encounters(synthetic)),
        "observation": (_observations(real), _observations(synthetic)),
    }
    tables = {n: (r, s) for n, (r, s) in tables.items() if len(r) and len(s)}
    metadata = {"tables": {n: _metadata(r) for n, (r, _) in tables.items()}}
    report = QualityReport()
    with quiet():
        report.generate(
            {n: r for n, (r, _) in tables.items()},
            {n: s for n, (_, s) in tables.items()},
            metadata,
            verbose=False,
        )
        properties = report.get_properties()
        shapes = report.get_details("Column Shapes")
        pairs = report.get_details("Column Pair Trends")
    score = {row["Property"]: _num(row["Score"]) for _, row in properties.iterrows()}
    return {
        "score": _num(report.get_score()),
        "column_shapes": score.get("Column Shapes"),
        "column_pair_trends": score.get("Column Pair Trends"),
        "columns": [
            {
                "table": r["Table"],
                "column": r["Column"],
                "metric": r["Metric"],
                "score": _num(r["Score"]),
            }
            for _, r in shapes.iterrows()
        ],
        "pairs": [
            {
                "table": r["Table"],
                "columns": [r["Column 1"], r["Column 2"]],
                "score": _num(r["Score"]),
            }
            for _, r in pairs.iterrows()
        ],
    }


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(out) else round(out, 4)


def privacy(
    train: Frames, holdout: Frames, synthetic: Frames, diagnoses: list[str], exact_copies: float
) -> dict[str, Any]:
    from sdmetrics.single_table import DCROverfittingProtection, DisclosureProtection

    out: dict[str, Any] = {"exact_copy_rate_before_resampling": round(exact_copies, 4),
                           "exact_copy_rate_delivered": 0.0}  # fmt: skip
    real_p, synth_p = profile(train, diagnoses), profile(synthetic, diagnoses)
    if len(holdout["patient"]) >= 2:
        hold_p = profile(holdout, diagnoses)
        with quiet():
            dcr = DCROverfittingProtection.compute_breakdown(
                real_training_data=real_p, synthetic_data=synth_p, real_validation_data=hold_p,
                metadata={"tables": {"patient": _metadata(real_p)}}, table_name="patient",
            )  # fmt: skip
        out["dcr_overfitting_protection"] = _num(dcr["score"])
        out["synthetic_closer_to_training"] = _num(
            dcr.get("synthetic_data_percentages", {}).get("closer_to_training")
        )
    else:
        out["dcr_overfitting_protection"] = None
    real_d, synth_d = _disclosure_table(train, diagnoses), _disclosure_table(synthetic, diagnoses)
    with quiet():
        disclosure = DisclosureProtection.compute_breakdown(
            real_data=real_d, synthetic_data=synth_d, known_column_names=["age_band", "gender"],
            sensitive_column_names=["diagnosis"],
        )  # fmt: skip
    out["disclosure_protection"] = _num(disclosure["score"])
    return out


def _disclosure_table(frames: Frames, diagnoses: list[str]) -> pd.DataFrame:
    """One row per patient: age band, sex and main diagnosis (its commonest, or none)."""
    patient = frames["patient"]
    bands = pd.cut(_ages(frames), AGE_BANDS, right=False, labels=False).fillna(-1).astype(int)
    main = pd.Series("none", index=patient["patient_id"].to_numpy())
    cond = frames.get("condition")
    if cond is not None and not cond.empty:
        keys = _diagnosis_key(frames)
        rank = {k: i for i, k in enumerate(diagnoses)}
        ranked = pd.DataFrame({"p": cond["patient_id"], "k": keys, "r": keys.map(rank).fillna(99)})
        first = ranked.sort_values("r").drop_duplicates("p").set_index("p")["k"]
        main = main.index.to_series().map(first).fillna("none")
    return pd.DataFrame({"age_band": bands.astype(str).to_numpy(),
                         "gender": patient["gender"].fillna("unknown").to_numpy(),
                         "diagnosis": main.to_numpy()})  # fmt: skip


# -- utility ---------------------------------------------------------------------------------


def cohort_questions(frames: Frames, diagnoses: list[str]) -> dict[str, float]:
    """Shares of patients (0..1): by sex, by age band, with each common diagnosis, with an
    inpatient stay, deceased."""
    n = max(1, len(frames["patient"]))
    p = profile(frames, diagnoses)
    out = {f"sex={g}": float((p["gender"] == g).sum()) / n for g in ("female", "male")}
    for low, high in zip(AGE_BANDS, AGE_BANDS[1:], strict=False):
        count = ((p["age_years"] >= low) & (p["age_years"] < high)).sum()
        out[f"age {low}-{high}"] = float(count) / n
    for key in diagnoses:
        column = f"dx {key.split('|', 1)[-1]}"
        out[f"diagnosis {key}"] = float((p[column] == "1").sum()) / n
    enc = frames.get("encounter")
    if enc is not None and not enc.empty:
        out["inpatient stay"] = (
            float(enc.loc[enc["class_code"] == "IMP", "patient_id"].nunique()) / n
        )
    out["deceased"] = float((p["deceased"] == "yes").sum()) / n
    return out


def utility(
    train: Frames,
    holdout: Frames,
    synthetic: Frames,
    diagnoses: list[str],
    *,
    target: str | None,
    questions: list[Question] | None = None,
) -> dict[str, Any]:
    real_q, synth_q = cohort_questions(train, diagnoses), cohort_questions(synthetic, diagnoses)
    for question in questions or []:
        real_q |= dict(question(train))
        synth_q |= dict(question(synthetic))
    answers = [
        {
            "question": q,
            "real": round(real_q[q], 4),
            "synthetic": round(synth_q.get(q, 0.0), 4),
            "relative_error": round(abs(synth_q.get(q, 0.0) - real_q[q]) / real_q[q], 4)
            if real_q[q] > 0
            else None,
        }  # fmt: skip
        for q in real_q
    ]
    errors = [float(a["relative_error"]) for a in answers if a["relative_error"] is not None]
    out: dict[str, Any] = {
        "cohort_questions": answers,
        "median_relative_error": round(float(np.median(errors)), 4) if errors else None,
    }
    if target:
        out["prediction"] = _tstr(train, holdout, synthetic, diagnoses, target)
    return out


def _tstr(
    train: Frames, holdout: Frames, synthetic: Frames, diagnoses: list[str], target: str
) -> dict[str, Any]:
    """Train on synthetic, test on real (held out), next to train on real."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    features = [d for d in diagnoses if not _matches(d, target)]

    def xy(frames: Frames) -> tuple[np.ndarray, np.ndarray]:
        p = profile(frames, features)
        keys = _diagnosis_key(frames)
        cond = frames.get("condition")
        positive = (
            set(cond.loc[keys.map(lambda k: _matches(k, target)), "patient_id"])
            if cond is not None
            else set()
        )
        y = frames["patient"]["patient_id"].isin(positive).astype(int).to_numpy()
        x = pd.get_dummies(p, columns=["gender", "deceased"]).astype(float)
        return x.to_numpy(), y

    result: dict[str, Any] = {"target": target}
    x_test, y_test = xy(holdout)
    if len(set(y_test)) < 2:
        result["reason"] = "the held-out real patients do not contain both outcomes"
        return result
    columns = None
    for name, frames in (("train_on_real_auc", train), ("train_on_synthetic_auc", synthetic)):
        x, y = xy(frames)
        columns = columns or x.shape[1]
        if len(set(y)) < 2 or x.shape[1] != x_test.shape[1]:
            result[name] = None
            continue
        model = LogisticRegression(max_iter=1000).fit(x, y)
        result[name] = round(float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])), 4)
    return result


def _matches(key: str, target: str) -> bool:
    return key == target or key.split("|", 1)[-1] == target


# -- rendering -------------------------------------------------------------------------------


def render(report: Mapping[str, Any], real: Frames, synthetic: Frames, directory: Path) -> None:
    """PNG plots and one self-contained HTML page (plots embedded) into ``directory``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pngs: dict[str, bytes] = {}
    shapes = report["quality"]["columns"]
    fig, ax = plt.subplots(figsize=(8, max(3, 0.25 * len(shapes))))
    ax.barh([f"{c['table']}.{c['column']}" for c in shapes], [c["score"] or 0 for c in shapes])
    ax.set_xlim(0, 1)
    ax.set_title("Column shapes (1 = same distribution)")
    pngs["column_shapes.png"] = _png(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = list(np.linspace(0, max(1.0, float(_ages(real).max())), 30))
    ax.hist(_ages(real), bins=bins, alpha=0.5, density=True, label="real")
    ax.hist(_ages(synthetic), bins=bins, alpha=0.5, density=True, label="synthetic")
    ax.set_xlabel("age (years)")
    ax.legend()
    ax.set_title("Age at the end of the record")
    pngs["age.png"] = _png(fig)
    answers = report["utility"]["cohort_questions"]
    fig, ax = plt.subplots(figsize=(8, max(3, 0.3 * len(answers))))
    y = np.arange(len(answers))
    ax.barh(y - 0.2, [a["real"] for a in answers], height=0.4, label="real")
    ax.barh(y + 0.2, [a["synthetic"] for a in answers], height=0.4, label="synthetic")
    ax.set_yticks(y, [a["question"] for a in answers])
    ax.legend()
    ax.set_title("Share of patients")
    pngs["cohorts.png"] = _png(fig)
    plt.close("all")
    for name, data in pngs.items():
        (directory / name).write_bytes(data)
    (directory / "report.html").write_text(_html(report, pngs), encoding="utf-8")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _html(report: Mapping[str, Any], pngs: Mapping[str, bytes]) -> str:
    def rows(data: Mapping[str, Any]) -> str:
        return "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in data.items()
            if not isinstance(v, list | dict)
        )

    images = "".join(
        f'<figure><img alt="{html.escape(n)}" src="data:image/png;base64,'
        f'{base64.b64encode(d).decode()}"></figure>'
        for n, d in pngs.items()
    )
    model = report.get("model", {})
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>Synthetic data report: {html.escape(str(model.get('dataset_id', '')))}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "th{text-align:left;padding-right:1em}img{max-width:100%}</style>"
        "<h1>Synthetic data report</h1>"
        f"<h2>Model</h2><table>{rows(model)}</table>"
        f"<h2>Quality</h2><table>{rows(report['quality'])}</table>"
        f"<h2>Privacy</h2><table>{rows(report['privacy'])}</table>"
        f"<h2>Utility</h2><table>{rows(report['utility'])}</table>{images}</html>"
    )
