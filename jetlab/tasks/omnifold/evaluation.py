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
    do_ibu = sim_reco is not None and data_reco is not None
    n_truth = len(tg[observables[0]])
    tw = None if truth_weights is None else np.asarray(truth_weights, dtype=np.float64)
    n_it = ibu_iterations or max(r.n_iterations for r in res.values())
    prior_w = next(iter(res.values())).sim_weights
    methods = (["IBU"] if do_ibu else []) + [f"OmniFold-{k}" for k in res] + ["prior"]
    edges_for: dict[str, np.ndarray] = {}
    for o in observables:
        if isinstance(bins, Mapping) and o in bins:
            e = np.asarray(bins[o], dtype=np.float64)
        elif isinstance(bins, (int, np.integer)):
            e = observable_bins(o, int(bins))
        else:
            e = observable_bins(o)
        edges_for[o] = e

    def ibu_density(o, sim_idx=None, data_idx=None):
        gi = slice(None) if sim_idx is None else sim_idx
        di = slice(None) if data_idx is None else data_idx
        dwi = None if data_weights is None else np.asarray(data_weights)[di]
        return ibu_unfold_samples(
            sg[o][gi], sr[o][gi], dr[o][di], edges_for[o], n_it, weights=prior_w[gi], data_weights=dwi
        )

    def all_td(sim_idx, truth_idx, data_idx) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {m: {} for m in methods}
        for o in observables:
            e = edges_for[o]
            t, twi = tg[o][truth_idx], None if tw is None else tw[truth_idx]
            s = sg[o][sim_idx]
            for k, r in res.items():
                out[f"OmniFold-{k}"][o] = _td(s, r.weights()[sim_idx], t, twi, e)
            out["prior"][o] = _td(s, prior_w[sim_idx], t, twi, e)
            if do_ibu:
                u = ibu_density(o, sim_idx, data_idx)
                ht, _ = weighted_histogram(t, e, twi)
                out["IBU"][o] = triangular_discriminator(u.unfolded * np.diff(e), ht, np.diff(e))  # density -> contents
        return out

    n_data = len(dr[observables[0]]) if do_ibu else 0
    full = (np.arange(n_sim), np.arange(n_truth), np.arange(n_data))
    nominal = all_td(*full)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(int(n_bootstrap)):
        boots.append(
            all_td(
                rng.integers(0, n_sim, n_sim),
                rng.integers(0, n_truth, n_truth),
                rng.integers(0, n_data, n_data) if do_ibu else full[2],
            )
        )
    td: dict[str, dict[str, tuple[float, float]]] = {}
    for m in methods:
        td[m] = {}
        for o in observables:
            vals = np.array([b[m][o] for b in boots])
            td[m][o] = (float(nominal[m][o]), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)

    # per-iteration values and histograms (for the widget and the plots)
    per_iteration: dict[str, dict[str, np.ndarray]] = {}
    hists: dict[str, dict[str, Any]] = {}
    for o in observables:
        e = edges_for[o]
        ht, et = weighted_histogram(tg[o], e, tw)
        hp, ep = weighted_histogram(sg[o], e, prior_w)
        h: dict[str, Any] = {
            "truth": {"values": ht, "errors": et},
            "prior": {"values": hp, "errors": ep},
            "iterations": {},
        }
        for k, r in res.items():
            its = [weighted_histogram(sg[o], e, w) for w in r.push_weights]
            h["iterations"][f"OmniFold-{k}"] = [{"values": v, "errors": s} for v, s in its]
            per_iteration.setdefault(f"OmniFold-{k}", {})[o] = np.array(
                [triangular_discriminator(v, ht, np.diff(e)) for v, _ in its]
            )
        if do_ibu:
            u = ibu_density(o)
            scale = float(np.sum(ht))  # IBU densities scaled to the truth's event count for plotting
            widths = np.diff(e)
            h["IBU"] = {"values": u.unfolded * widths * scale, "errors": None}
            h["iterations"]["IBU"] = [{"values": d * widths * scale, "errors": None} for d in u.history]
            per_iteration.setdefault("IBU", {})[o] = np.array(
                [triangular_discriminator(d * widths, ht, widths) for d in u.history]
            )
        hists[o] = h
    return UnfoldingSummary(
        observables=observables,
        bins=edges_for,
        methods=methods,
        td=td,
        nominal=nominal,
        per_iteration=per_iteration,
        hists=hists,
    )
