"""The synthesizers behind the pipeline, one interface: fit on the training tables, sample a
number of patients. The only module that imports SDV (lazily); ``aim`` imports mbi.

- ``gaussian_copula`` / ``ctgan`` / ``tvae``: one SDV single-table synthesizer per table; child
  rows are sampled in the source's rows-per-patient ratio and linked to patients by
  ``tables.decode`` (same sex, old enough; same encounter class, nearest age).
- ``hma``: SDV's hierarchical model over a star schema, every child table a child of the
  patient table (SDV's open edition learns a star, not a chain), so it samples each patient's
  own children.
- ``aim``: ``connector.synthetic.aim`` (differentially private; mbi and OpenDP, no SDV).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from connector.synthetic.config import Backend, SyntheticConfig
from connector.synthetic.tables import Frames

if TYPE_CHECKING:
    from connector.synthetic.aim import AimTables

Report = Callable[[float], None]  # fraction of the fit done, 0..1


@contextmanager
def quiet() -> Iterator[None]:
    """SDV, RDT, SDMetrics and torch warn about their own internals (future deprecations,
    chained assignment); none of it is ours to act on, and the test suite treats warnings
    as errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _columns(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    columns: dict[str, dict[str, str]] = {}
    for name in frame.columns:
        if name == "patient_id":
            columns[name] = {"sdtype": "id"}
        elif pd.api.types.is_numeric_dtype(frame[name]):
            columns[name] = {"sdtype": "numerical"}
        else:
            columns[name] = {"sdtype": "categorical"}
    return columns


def _single_table_metadata(frame: pd.DataFrame) -> Any:
    from sdv.metadata import Metadata

    columns = _columns(frame.drop(columns=["patient_id"], errors="ignore"))
    return Metadata.load_from_dict({"tables": {"table": {"columns": columns}}})


class SingleTables:
    """One SDV single-table synthesizer per training table."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.models: dict[str, Any] = {}
        self.sizes: dict[str, int] = {}

    def _new(self, metadata: Any) -> Any:
        from sdv.single_table import (
            CTGANSynthesizer,
            GaussianCopulaSynthesizer,
            TVAESynthesizer,
        )

        backend = self.config.backend
        if backend is Backend.CTGAN:
            return CTGANSynthesizer(metadata, epochs=self.config.epochs, verbose=False)
        if backend is Backend.TVAE:
            return TVAESynthesizer(metadata, epochs=self.config.epochs)
        columns = metadata.tables["table"].columns
        # value_z is a residual standardised against its code's age trend: close to normal
        normal = {"value_z": "norm"} if "value_z" in columns else None
        return GaussianCopulaSynthesizer(
            metadata, default_distribution="beta", numerical_distributions=normal
        )

    def fit(self, tables: Frames, report: Report) -> None:
        _seed_everything(self.config.seed)
        weights = {name: len(t) * max(1, t.shape[1]) for name, t in tables.items()}
        total, done = sum(weights.values()) or 1, 0
        for name, table in tables.items():
            data = table.drop(columns=["patient_id"], errors="ignore")
            with quiet():
                model = self._new(_single_table_metadata(table))
                model.fit({"table": data})  # SDV 2: {table name: frame}
            self.models[name] = model
            self.sizes[name] = len(table)
            done += weights[name]
            report(done / total)

    def sample(self, patients: int, rows_per_patient: dict[str, float], seed: int) -> Frames:
        out: Frames = {}
        for index, (name, model) in enumerate(self.models.items()):
            rows = (
                patients if name == "patient" else round(patients * rows_per_patient.get(name, 0))
            )
            if rows <= 0:
                continue
            with quiet():
                _reseed_single(model, seed + index)
                sampled = model.sample(num_rows=rows)
            out[name] = sampled["table"] if isinstance(sampled, dict) else sampled
        return out


HMA_TABLES = 5  # SDV's open edition refuses a schema of more tables


class Hierarchical:
    """SDV HMA over the star schema patient <- (encounter, condition, observation, ...). SDV
    models at most five tables this way: the smallest clinical tables beyond that get a
    Gaussian copula each (``rest``) and are linked by ``tables.decode`` like the copula
    backend's."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.model: Any = None
        self.rest = SingleTables(config)
        self.patients = 0

    def fit(self, tables: Frames, report: Report) -> None:
        from sdv.metadata import Metadata
        from sdv.multi_table import HMASynthesizer

        _seed_everything(self.config.seed)
        children = sorted((n for n in tables if n != "patient"), key=lambda n: -len(tables[n]))
        apart = children[HMA_TABLES - 1 :]
        if apart:
            self.rest.fit({n: tables[n] for n in apart}, lambda _: None)
        data = {name: t.copy() for name, t in tables.items() if name not in apart}
        data["patient"]["patient_id"] = data["patient"]["patient_id"].astype(str)
        spec: dict[str, Any] = {"tables": {}, "relationships": []}
        for name, table in data.items():
            spec["tables"][name] = {"columns": _columns(table)}
            if name == "patient":
                spec["tables"][name]["primary_key"] = "patient_id"
            else:
                spec["relationships"].append(
                    {
                        "parent_table_name": "patient",
                        "parent_primary_key": "patient_id",
                        "child_table_name": name,
                        "child_foreign_key": "patient_id",
                    }
                )
        report(0.05)
        with quiet():
            self.model = HMASynthesizer(Metadata.load_from_dict(spec), verbose=False)
            self.model.fit(data)
        self.patients = len(data["patient"])
        report(1.0)

    def sample(self, patients: int, rows_per_patient: dict[str, float], seed: int) -> Frames:
        with quiet():
            self.model._numpy_seed = seed % 2**32  # SDV's own seed of the hierarchical sampler
            for index, model in enumerate(self.model._table_synthesizers.values()):
                _reseed_single(model, seed + index)
            sampled: Frames = self.model.sample(num_rows=patients, main_table_name="patient")
        if self.rest.models:
            sampled |= self.rest.sample(patients, rows_per_patient, seed + 101)
        return sampled


def _reseed_single(model: Any, seed: int) -> None:
    """A fresh, repeatable random state for one sampling call (SDV otherwise replays the
    state it had after fitting, so two requests would get the same patients)."""
    model.reset_sampling()  # RDT's transformers back to their state after fitting
    model._set_random_state(seed % 2**32)


def _seed_everything(seed: int) -> None:
    import torch

    np.random.seed(seed)
    torch.manual_seed(seed)


def new_backend(config: SyntheticConfig) -> SingleTables | Hierarchical | AimTables:
    if config.backend is Backend.HMA:
        return Hierarchical(config)
    if config.backend is Backend.AIM:
        from connector.synthetic.aim import AimTables

        return AimTables(config)
    return SingleTables(config)
