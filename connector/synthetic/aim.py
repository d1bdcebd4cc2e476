"""AIM (McKenna, Mullins, Sheldon, Miklau: "AIM: An Adaptive and Iterative Mechanism for
Differentially Private Synthetic Data", VLDB 2022) over the training tables: the open-licence,
differentially private backend (``Backend.AIM``; no SDV).

Built on private-pgm's ``mbi`` (Apache-2.0, by AIM's authors: graphical-model estimation from
noisy marginals) with OpenDP (MIT) for every random choice that spends privacy: the Gaussian
mechanism for marginals and report-noisy-max for selecting the next marginal, both accounted in
zero-concentrated DP. The loop follows the paper (as in mbi's reference mechanism and
smartnoise-synth's port): measure all one-way marginals, then repeatedly select the worst
approximated two-way marginal of the workload and measure it, until the budget is spent.

**Guarantee.** The fitted model is (``epsilon``, ``delta``)-DP at the level of a *patient*:
the budget (as zCDP, rho) is split evenly over the tables, and a table where one patient has
up to ``k`` rows (``max_rows_per_patient``; more are dropped at random before fitting) is fitted
at rho / k^2 (zCDP's group privacy). **Not covered** (computed from the data without noise,
like the other backends): the columns' domains (categories, bin edges), the rows-per-patient
ratios, and the encoding's statistics (the typical age range, the values' age trends, which
codes are common). Sampling spends nothing.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from connector.synthetic.config import SyntheticConfig
from connector.synthetic.tables import Frames

BINS = 12  # numeric columns: quantile bins (plus one for missing)
MAX_CATEGORIES = 48  # categorical columns: the commonest, the rest folded into the commonest
MAX_CELLS = 10_000  # two-way marginals larger than this are left out of the workload
# The paper's defaults are 16 rounds a column and 1000 iterations; each round re-estimates the
# model (JAX compiles anew for each new set of cliques), which took minutes per table on two
# cores. Fewer, larger rounds spend the same budget.
ROUNDS_PER_COLUMN = 1
ITERATIONS = 100


def zcdp_rho(epsilon: float, delta: float) -> float:
    """The largest rho whose zCDP guarantee implies (epsilon, delta)-DP
    (Bun & Steinke 2016, Prop. 1.3: epsilon = rho + 2 sqrt(rho log(1/delta)))."""
    log = math.log(1 / delta)
    return (math.sqrt(log + epsilon) - math.sqrt(log)) ** 2


class Column:
    """One column's discrete domain: categories, or numeric bin edges (+ a missing bin)."""

    def __init__(self, values: pd.Series) -> None:
        self.numeric = pd.api.types.is_numeric_dtype(values)
        if self.numeric:
            present = values.dropna().to_numpy(float)
            self.integral = bool(present.size) and bool(np.all(present == np.round(present)))
            edges = np.quantile(present, np.linspace(0, 1, BINS + 1)) if present.size else [0, 1]
            self.edges = np.unique(edges)
            if self.edges.size < 2:
                self.edges = np.array([self.edges[0], self.edges[0]])
            self.size = self.edges.size  # bins between edges, plus missing
        else:
            counts = values.astype(str).value_counts()
            self.categories = list(counts.index[:MAX_CATEGORIES])
            self.size = max(1, len(self.categories))

    def encode(self, values: pd.Series) -> np.ndarray:
        if self.numeric:
            data = values.to_numpy(float)
            inner = np.clip(np.searchsorted(self.edges, data, side="right") - 1, 0, self.size - 2)
            return np.where(np.isnan(data), self.size - 1, inner).astype(int)
        index = {c: i for i, c in enumerate(self.categories)}
        return values.astype(str).map(index).fillna(0).to_numpy(int)

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.numeric:
            inner = np.clip(codes, 0, self.size - 2)
            low, high = self.edges[inner], self.edges[np.minimum(inner + 1, self.size - 1)]
            values = low + rng.random(codes.size) * (high - low)
            if self.integral:
                values = np.round(values)
            return np.where(codes == self.size - 1, np.nan, values)
        categories = np.asarray(self.categories, dtype=object)
        return np.asarray(categories[np.clip(codes, 0, self.size - 1)])


class AimTables:
    """One AIM model per training table, with the budget split as the module docstring says."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.models: dict[str, Any] = {}
        self.columns: dict[str, dict[str, Column]] = {}
        self.rho_spent = 0.0

    def fit(self, tables: Frames, report: Any) -> None:
        import opendp.prelude as dp

        dp.enable_features("contrib")
        rng = np.random.default_rng(self.config.seed)
        rho = zcdp_rho(self.config.epsilon, self.config.delta) / max(1, len(tables))
        for done, (name, table) in enumerate(tables.items()):
            k = 1 if name == "patient" else self.config.max_rows_per_patient
            table = _cap_rows(table, k, rng)
            data = table.drop(columns=["patient_id"], errors="ignore")
            self.columns[name] = {c: Column(data[c]) for c in data.columns}
            self.models[name], spent = _aim(data, self.columns[name], rho / k**2)
            self.rho_spent += spent * k**2
            report((done + 1) / len(tables))

    def sample(self, patients: int, rows_per_patient: dict[str, float], seed: int) -> Frames:
        out: Frames = {}
        rng = np.random.default_rng(seed)
        for name, model in self.models.items():
            rows = (
                patients if name == "patient" else round(patients * rows_per_patient.get(name, 0))
            )
            if rows <= 0:
                continue
            np.random.seed(seed % 2**32)  # mbi draws its records from numpy's global generator
            records = model.synthetic_data(rows=rows).df
            out[name] = pd.DataFrame(
                {
                    c: column.decode(records[c].to_numpy(int), rng)
                    for c, column in self.columns[name].items()
                }  # fmt: skip
            )
        return out


def _cap_rows(table: pd.DataFrame, k: int, rng: np.random.Generator) -> pd.DataFrame:
    """At most ``k`` rows of each patient (chosen at random), so one patient's influence on a
    table is bounded."""
    if "patient_id" not in table or k <= 0:
        return table
    order = table.iloc[rng.permutation(len(table))]
    return order[order.groupby("patient_id").cumcount() < k].sort_index()


def _aim(data: pd.DataFrame, columns: dict[str, Column], rho: float) -> tuple[Any, float]:
    """AIM on one table at ``rho`` (zCDP, row level); returns the model and the rho spent
    as OpenDP's privacy maps account it."""
    import opendp.prelude as dp
    from mbi import Dataset, Domain, LinearMeasurement, estimation, marginal_oracles

    names = list(columns)
    domain = Domain(names, [columns[c].size for c in names])
    dataset = Dataset({c: columns[c].encode(data[c]) for c in names}, domain)
    workload = [cl for cl in itertools.combinations(names, 2) if domain.size(cl) <= MAX_CELLS]
    candidates = dict.fromkeys(workload, 1.0)
    rounds = max(1, ROUNDS_PER_COLUMN * len(names))
    sigma = math.sqrt(rounds / (2 * 0.9 * rho))
    select_epsilon = math.sqrt(8 * 0.1 * rho / rounds)
    spent = 0.0
    vector = dp.vector_domain(dp.atom_domain(T=float, nan=False))

    def measure(clique: tuple[str, ...], scale: float) -> LinearMeasurement:
        nonlocal spent
        gaussian: Any = dp.m.make_gaussian(vector, dp.l2_distance(T=float), scale=scale)
        spent += float(gaussian.map(1.0))  # one row changes one cell of a marginal by one
        exact = np.asarray(dataset.project(clique).datavector(), dtype=float)
        return LinearMeasurement(np.asarray(gaussian(list(exact))), clique, scale)

    def estimate(measurements: list[LinearMeasurement]) -> Any:
        return estimation.mirror_descent(
            domain, measurements, iters=ITERATIONS,
            marginal_oracle=marginal_oracles.message_passing_stable,
        )  # fmt: skip

    measurements = [measure((c,), sigma) for c in names]
    model = estimate(measurements)
    last = not candidates
    while not last:
        step = 0.5 / sigma**2 + select_epsilon**2 / 8
        if rho - spent < 2 * step:  # the last round: spend what is left
            left = rho - spent
            sigma, select_epsilon = math.sqrt(1 / (2 * 0.9 * left)), math.sqrt(8 * 0.1 * left)
            last = True
        errors = []
        chosen_from = list(candidates)
        for clique in chosen_from:
            bias = math.sqrt(2 / math.pi) * sigma * domain.size(clique)
            exact = np.asarray(dataset.project(clique).datavector(), dtype=float)
            estimated = np.asarray(model.project(clique).datavector(), dtype=float)
            errors.append(float(np.abs(exact - estimated).sum() - bias))
        selector: Any = dp.m.make_noisy_max(
            vector, dp.linf_distance(T=float), dp.zero_concentrated_divergence(),
            scale=2.0 / select_epsilon,
        )  # fmt: skip
        spent += float(selector.map(1.0))  # one row moves each L1 error by at most one
        clique = chosen_from[selector(errors)]
        before = np.asarray(model.project(clique).datavector(), dtype=float)
        measurements.append(measure(clique, sigma))
        model = estimate(measurements)
        after = np.asarray(model.project(clique).datavector(), dtype=float)
        if np.abs(after - before).sum() <= sigma * math.sqrt(2 / math.pi) * domain.size(clique):
            sigma, select_epsilon = sigma / 2, select_epsilon * 2
    if spent > rho * (1 + 1e-9):
        raise RuntimeError(f"AIM spent rho {spent} over its budget {rho}")
    return model, spent
