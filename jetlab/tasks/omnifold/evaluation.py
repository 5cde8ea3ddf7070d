"""Unfolded distributions against the truth: triangular discriminators with bootstrap errors, per
iteration, for OmniFold and binned IBU (the paper's Table II analogue)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from jetlab.physics import OBSERVABLES, ibu_unfold_samples, observable_bins, triangular_discriminator

from .algorithm import OmniFoldResult
from .classifiers import LevelData, observable_arrays

__all__ = ["UnfoldingSummary", "unfold_observables", "weighted_histogram"]


def weighted_histogram(values, bins, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """(sum of weights, statistical error sqrt(sum of weights^2)) per bin; non-finite values dropped."""
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != v.shape:
        raise ValueError(f"weighted_histogram: weights ({w.size}) must match values ({v.size})")
    ok = np.isfinite(v) & np.isfinite(w)
    h, _ = np.histogram(v[ok], bins=bins, weights=w[ok])
    h2, _ = np.histogram(v[ok], bins=bins, weights=w[ok] ** 2)
    return h, np.sqrt(h2)


def _obs_dict(data: LevelData | None, names: Sequence[str], where: str) -> dict[str, np.ndarray]:
    """One level's observables; ``{}`` for a level not given (the reco levels are optional)."""
    return {} if data is None else observable_arrays(data, names, f"unfold_observables: {where}")


def _td(x, wx, y, wy, edges) -> float:
    hx, _ = weighted_histogram(x, edges, wx)
    hy, _ = weighted_histogram(y, edges, wy)
    return triangular_discriminator(hx, hy, np.diff(edges))


@dataclass
class UnfoldingSummary:
    """Triangular discriminators (x 10^3) of unfolded vs truth per observable and method.

    ``td[method][observable] = (value, std)``: the value on the full samples and the spread over
    ``n_bootstrap`` resamplings of the events (the bootstrap *mean* is biased upwards, since
    resampling adds noise to both histograms, so it is not used as the central value);
    ``nominal`` the values alone; ``per_iteration[method][observable]`` the nominal
    value after each OmniFold / IBU iteration; ``hists`` the per-observable histograms in the
    layout :class:`jetlab.widgets.IterationExplorer` takes (``explorer_results``).
    """

    observables: tuple[str, ...]
    bins: dict[str, np.ndarray]
    methods: list[str]
    td: dict[str, dict[str, tuple[float, float]]]
    nominal: dict[str, dict[str, float]]
    per_iteration: dict[str, dict[str, np.ndarray]]
    hists: dict[str, dict[str, Any]]

    def rows(self, precision: int = 2) -> list[dict[str, Any]]:
        """One dict per observable: ``{"observable", <method>: (mean, std), ...}``."""
        return [{"observable": o, **{m: self.td[m][o] for m in self.methods}} for o in self.observables]

    def table(self):
        """pandas DataFrame, rows = observables, columns = methods, cells = 'mean ± std'."""
        import pandas as pd  # optional (jetlab[test]): only this table needs it

        return pd.DataFrame(
            {m: [f"{self.td[m][o][0]:.2f} ± {self.td[m][o][1]:.2f}" for o in self.observables] for m in self.methods},
            index=list(self.observables),
        )

    def moved_toward_truth(self, method: str) -> dict[str, bool]:
        """Per observable: is the unfolded result closer to the truth than the prior (nominal TD)?"""
        return {o: self.nominal[method][o] < self.nominal["prior"][o] for o in self.observables}

    def explorer_results(self, method: str) -> dict[str, dict[str, Any]]:
        """Input for :class:`jetlab.widgets.IterationExplorer` (one OmniFold method, IBU overlay)."""
        if method not in self.per_iteration:
            raise KeyError(
                f"explorer_results: no per-iteration histograms for {method!r}; have {sorted(self.per_iteration)}"
            )
        out = {}
        for o in self.observables:
            h = self.hists[o]
            r = {"bins": self.bins[o], "truth": h["truth"], "prior": h["prior"], "iterations": h["iterations"][method]}
            if "IBU" in h:
                r["ibu"] = h["IBU"]
            if o in OBSERVABLES:
                r["xlabel"] = OBSERVABLES[o].label
            out[o] = r
        return out


def _bin_edges(observables: Sequence[str], bins: Mapping[str, Any] | int | None) -> dict[str, np.ndarray]:
    """Each observable's bin edges: given in ``bins``, a count of ``bins``, or :func:`observable_bins`' own."""
    edges_for: dict[str, np.ndarray] = {}
    for o in observables:
        if isinstance(bins, Mapping) and o in bins:
            e = np.asarray(bins[o], dtype=np.float64)
        elif isinstance(bins, (int, np.integer)):
            e = observable_bins(o, int(bins))
        else:
            e = observable_bins(o)
        edges_for[o] = e
    return edges_for


@dataclass
class _Unfolding:
    """What :func:`unfold_observables` compares: each level's observables, the results and the bins."""

    results: dict[str, OmniFoldResult]
    observables: tuple[str, ...]
    sim_gen: dict[str, np.ndarray]
    truth_gen: dict[str, np.ndarray]
    sim_reco: dict[str, np.ndarray]
    data_reco: dict[str, np.ndarray]
    truth_weights: np.ndarray | None
    data_weights: Any
    ibu_iterations: int
    do_ibu: bool
    edges: dict[str, np.ndarray]

    @property
    def prior_weights(self) -> np.ndarray:
        return next(iter(self.results.values())).sim_weights

    @property
    def methods(self) -> list[str]:
        return (["IBU"] if self.do_ibu else []) + [f"OmniFold-{k}" for k in self.results] + ["prior"]

    def ibu_density(self, o: str, sim_idx=None, data_idx=None):
        """Binned IBU of observable ``o`` on the given simulated and measured events (all by default)."""
        gi = slice(None) if sim_idx is None else sim_idx
        di = slice(None) if data_idx is None else data_idx
        dwi = None if self.data_weights is None else np.asarray(self.data_weights)[di]
        return ibu_unfold_samples(
            self.sim_gen[o][gi],
            self.sim_reco[o][gi],
            self.data_reco[o][di],
            self.edges[o],
            self.ibu_iterations,
            weights=self.prior_weights[gi],
            data_weights=dwi,
        )

    def all_td(self, sim_idx, truth_idx, data_idx) -> dict[str, dict[str, float]]:
        """Every method's triangular discriminator per observable on the given events."""
        tw, prior_w = self.truth_weights, self.prior_weights
        out: dict[str, dict[str, float]] = {m: {} for m in self.methods}
        for o in self.observables:
            e = self.edges[o]
            t, twi = self.truth_gen[o][truth_idx], None if tw is None else tw[truth_idx]
            s = self.sim_gen[o][sim_idx]
            for k, r in self.results.items():
                out[f"OmniFold-{k}"][o] = _td(s, r.weights()[sim_idx], t, twi, e)
            out["prior"][o] = _td(s, prior_w[sim_idx], t, twi, e)
            if self.do_ibu:
                u = self.ibu_density(o, sim_idx, data_idx)
                ht, _ = weighted_histogram(t, e, twi)
                out["IBU"][o] = triangular_discriminator(u.unfolded * np.diff(e), ht, np.diff(e))  # density -> contents
        return out


def _bootstrapped_td(
    u: _Unfolding, n_bootstrap: int, seed: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, tuple[float, float]]]]:
    """The nominal discriminators and ``(nominal, std over n_bootstrap resamplings of the events)``."""
    first = u.observables[0]
    n_sim, n_truth = len(u.sim_gen[first]), len(u.truth_gen[first])
    n_data = len(u.data_reco[first]) if u.do_ibu else 0
    full = (np.arange(n_sim), np.arange(n_truth), np.arange(n_data))
    nominal = u.all_td(*full)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(int(n_bootstrap)):
        boots.append(
            u.all_td(
                rng.integers(0, n_sim, n_sim),
                rng.integers(0, n_truth, n_truth),
                rng.integers(0, n_data, n_data) if u.do_ibu else full[2],
            )
        )
    td: dict[str, dict[str, tuple[float, float]]] = {}
    for m in u.methods:
        td[m] = {}
        for o in u.observables:
            vals = np.array([b[m][o] for b in boots])
            td[m][o] = (float(nominal[m][o]), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
    return nominal, td


def _iteration_histograms(u: _Unfolding) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, Any]]]:
    """Per-iteration discriminators and histograms of every method (for the widget and the plots)."""
    per_iteration: dict[str, dict[str, np.ndarray]] = {}
    hists: dict[str, dict[str, Any]] = {}
    for o in u.observables:
        e = u.edges[o]
        ht, et = weighted_histogram(u.truth_gen[o], e, u.truth_weights)
        hp, ep = weighted_histogram(u.sim_gen[o], e, u.prior_weights)
        h: dict[str, Any] = {
            "truth": {"values": ht, "errors": et},
            "prior": {"values": hp, "errors": ep},
            "iterations": {},
        }
        for k, r in u.results.items():
            its = [weighted_histogram(u.sim_gen[o], e, w) for w in r.push_weights]
            h["iterations"][f"OmniFold-{k}"] = [{"values": v, "errors": s} for v, s in its]
            per_iteration.setdefault(f"OmniFold-{k}", {})[o] = np.array(
                [triangular_discriminator(v, ht, np.diff(e)) for v, _ in its]
            )
        if u.do_ibu:
            d = u.ibu_density(o)
            scale = float(np.sum(ht))  # IBU densities scaled to the truth's event count for plotting
            widths = np.diff(e)
            h["IBU"] = {"values": d.unfolded * widths * scale, "errors": None}
            h["iterations"]["IBU"] = [{"values": x * widths * scale, "errors": None} for x in d.history]
            per_iteration.setdefault("IBU", {})[o] = np.array(
                [triangular_discriminator(x * widths, ht, widths) for x in d.history]
            )
        hists[o] = h
    return per_iteration, hists


def unfold_observables(
    results: OmniFoldResult | Mapping[str, OmniFoldResult],
    sim_gen: LevelData,
    truth_gen: LevelData,
    observables: Sequence[str] = ("mass", "multiplicity", "width", "log_rho", "tau21", "zg"),
    bins: Mapping[str, Any] | int | None = None,
    *,
    sim_reco: LevelData | None = None,
    data_reco: LevelData | None = None,
    ibu_iterations: int | None = None,
    n_bootstrap: int = 20,
    truth_weights=None,
    data_weights=None,
    seed: int = 0,
) -> UnfoldingSummary:
    """The Table II analogue: triangular discriminators (x 10^3) vs the particle-level truth.

    Methods (columns): ``"IBU"`` (binned iterative Bayesian unfolding of each observable, needs
    ``sim_reco`` and ``data_reco``; ``ibu_iterations`` defaults to the OmniFold iteration count),
    ``"OmniFold-<name>"`` per result, and ``"prior"`` (the simulation before unfolding).
    ``bins``: ``{observable: edges}``, a bin count, or None (:func:`jetlab.physics.observable_bins`).
    Uncertainties: std over ``n_bootstrap`` resamplings (with replacement) of the simulated, truth
    and measured events - the statistical part; training variations need an ensemble
    (:mod:`jetlab.tasks.parallel`).
    """
    res = {results.classifier: results} if isinstance(results, OmniFoldResult) else dict(results)
    if not res:
        raise ValueError("unfold_observables: no OmniFold results given")
    observables = tuple(observables)
    sg = _obs_dict(sim_gen, observables, "sim_gen")
    tg = _obs_dict(truth_gen, observables, "truth_gen")
    sr = _obs_dict(sim_reco, observables, "sim_reco")
    dr = _obs_dict(data_reco, observables, "data_reco")
    n_sim = len(sg[observables[0]])
    for name, r in res.items():
        if len(r.sim_weights) != n_sim:
            raise ValueError(
                f"unfold_observables: result {name!r} has weights for {len(r.sim_weights)} events, sim_gen has {n_sim}"
            )
    u = _Unfolding(
        results=res,
        observables=observables,
        sim_gen=sg,
        truth_gen=tg,
        sim_reco=sr,
        data_reco=dr,
        truth_weights=None if truth_weights is None else np.asarray(truth_weights, dtype=np.float64),
        data_weights=data_weights,
        ibu_iterations=ibu_iterations or max(r.n_iterations for r in res.values()),
        do_ibu=sim_reco is not None and data_reco is not None,
        edges=_bin_edges(observables, bins),
    )
    nominal, td = _bootstrapped_td(u, n_bootstrap, seed)
    per_iteration, hists = _iteration_histograms(u)
    return UnfoldingSummary(
        observables=observables,
        bins=u.edges,
        methods=u.methods,
        td=td,
        nominal=nominal,
        per_iteration=per_iteration,
        hists=hists,
    )
