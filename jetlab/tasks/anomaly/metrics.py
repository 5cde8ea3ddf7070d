"""How well the search and its background model work: AUC and SIC, sculpting of ``mjj`` by a cut,
and how close generated events come to the true background."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from jetlab.data.preprocess import Standardizer
from jetlab.physics.metrics import roc_metrics, sic_curve, two_sample_auc, wasserstein_1d

from .background import PARTICLE_FEATURE_NAMES
from .events import JET_FEATURE_NAMES, MassWindows
from .training import take_inputs

__all__ = ["anomaly_metrics", "closeness_metrics", "raw_particles", "sculpting_check"]


def anomaly_metrics(labels, scores, *, min_background_events: int = 10, min_fpr: float = 1e-4) -> dict[str, Any]:
    """ROC AUC, SIC curve and max SIC of ``scores`` for truth ``labels`` (1 = signal).

    The SIC is :func:`jetlab.physics.metrics.sic_curve`'s: only trusted where ``eps_B > min_fpr``
    and at least ``min_background_events`` background events survive the cut (with mini samples
    the usual ``1e-4`` alone would quote fluctuations of one or two events). ``"min_fpr"`` in the
    result is the effective floor ``max(min_fpr, min_background_events / N_bkg)``.
    """
    labels = np.asarray(labels)
    n_b = int((labels == 0).sum())
    roc = roc_metrics(labels, scores, eps_s=())
    eps_s, sic = sic_curve(labels, scores, min_fpr=min_fpr, min_background_events=min_background_events)
    return {
        "auc": float(roc["auc"]),
        "max_sic": float(np.max(sic)) if sic.size else float("nan"),
        "min_fpr": max(float(min_fpr), min_background_events / max(n_b, 1)),
        "min_background_events": int(min_background_events),
        "fpr": roc["fpr"],
        "tpr": roc["tpr"],
        "eps_s": eps_s,
        "sic": sic,
        "n_signal": int((labels == 1).sum()),
        "n_background": n_b,
    }


def sculpting_check(
    mjj, scores, labels, windows: MassWindows, efficiencies: Sequence[float] = (0.5, 0.2, 0.05), *, seed: int = 0
) -> dict[float, dict[str, float]]:
    """Does a score cut sculpt the background ``mjj`` spectrum? Per cut efficiency: W1 between the
    normalised background ``mjj`` after vs before the cut, and the same for a random subset of the
    same size (the statistical floor). ``w1 / w1_random`` near 1 = no sculpting."""
    mjj, scores, labels = (np.asarray(a) for a in (mjj, scores, labels))
    inw = windows.in_window(mjj)
    mjj, scores, labels = mjj[inw], scores[inw], labels[inw]
    rng = np.random.default_rng(seed)
    out = {}
    for eff in efficiencies:
        if not 0.0 < eff <= 1.0:
            raise ValueError(f"sculpting_check: efficiencies must be in (0, 1], got {eff}")
        cut = scores >= np.quantile(scores, 1.0 - eff)
        bkg_all = mjj[labels == 0]
        bkg_cut = mjj[cut & (labels == 0)]
        if len(bkg_cut) < 2:
            out[float(eff)] = {"n_background": len(bkg_cut), "w1": float("nan"), "w1_random": float("nan")}
            continue
        rand = rng.choice(bkg_all, size=len(bkg_cut), replace=False)
        out[float(eff)] = {
            "n_background": int(len(bkg_cut)),
            "w1": wasserstein_1d(bkg_cut, bkg_all),
            "w1_random": wasserstein_1d(rand, bkg_all),
        }
    return out


def raw_particles(inputs: Mapping[str, np.ndarray], standardizer: Standardizer, k: int) -> np.ndarray:
    """Real particles' (deta, dphi, log_1m_ptrel) of jet ``k``, flattened to ``(n_particles, 3)``."""
    x, mask = inputs[f"x{k}"], inputs[f"mask{k}"]
    raw = x[..., :3] * standardizer.particle_std[:3] + standardizer.particle_mean[:3]
    return raw[mask]


def _summary_features(inputs: Mapping[str, np.ndarray], standardizer: Standardizer) -> dict[str, np.ndarray]:
    """Per-event high-level summaries for the true-vs-generated classifier test, built once:
    ``"jets"`` (both jets' pT, eta, mass, N), ``"particles"`` (per jet: particle-feature means and
    widths, pT-weighted width, leading pT fraction) and ``"all"`` (both, with the multiplicities)."""
    parts: dict[str, list[np.ndarray]] = {"all": [], "jets": [], "particles": []}
    for k in (1, 2):
        x, mask = inputs[f"x{k}"], inputs[f"mask{k}"].astype(bool)
        jets = standardizer.inverse_jets(inputs[f"jets{k}"])
        raw = x[..., :3] * standardizer.particle_std[:3] + standardizer.particle_mean[:3]
        m = mask[..., None]
        cnt = np.maximum(mask.sum(1, keepdims=True), 1)
        mean = (raw * m).sum(1) / cnt
        sd = np.sqrt(np.maximum(((raw - mean[:, None]) ** 2 * m).sum(1) / cnt, 0.0))
        ptrel = -np.expm1(np.minimum(raw[..., 2], 0.0)) * mask
        dr = np.hypot(raw[..., 0], raw[..., 1])
        width = (ptrel * dr).sum(1) / np.maximum(ptrel.sum(1), 1e-9)
        lead = ptrel.max(1)
        particles = [mean, sd, width[:, None], lead[:, None]]
        parts["jets"] += [jets]
        parts["particles"] += particles
        parts["all"] += [jets, *particles, mask.sum(1, keepdims=True).astype(np.float32)]
    return {name: np.concatenate(cols, axis=1) for name, cols in parts.items()}


def closeness_metrics(
    reference: Mapping[str, np.ndarray],
    generated: Mapping[str, np.ndarray],
    standardizer: Standardizer,
    *,
    seed: int = 0,
    folds: int = 5,
) -> dict[str, Any]:
    """How close is the generated SR background to the TRUE SR background?

    * ``w1_jet``: 1-Wasserstein per jet feature (:data:`JET_FEATURE_NAMES`, GeV);
    * ``w1_particle``: per particle feature of jet 1 and jet 2 (:data:`PARTICLE_FEATURE_NAMES`);
    * ``w1_*_floor``: the same between two halves of the reference (finite-sample floor);
    * ``auc``: out-of-fold ROC AUC of a gradient-boosted classifier true vs generated on per-event
      summaries (jet features, particle-feature means/widths): 0.5 = indistinguishable;
      ``auc_jets`` and ``auc_particles``: the same on the jet features alone and on the particle
      summaries alone (which half of the generator gives it away).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 31]))
    n_r = len(reference["x1"])
    half = rng.permutation(n_r)
    ha, hb = take_inputs(reference, half[: n_r // 2]), take_inputs(reference, half[n_r // 2 :])

    def jet_feats(inp):
        return np.concatenate(
            [standardizer.inverse_jets(inp["jets1"]), standardizer.inverse_jets(inp["jets2"])], axis=1
        )

    def w1_jets(a, b):
        fa, fb = jet_feats(a), jet_feats(b)
        return {name: wasserstein_1d(fa[:, i], fb[:, i]) for i, name in enumerate(JET_FEATURE_NAMES)}

    def w1_parts(a, b):
        res = {}
        for k in (1, 2):
            pa, pb = raw_particles(a, standardizer, k), raw_particles(b, standardizer, k)
            for i, name in enumerate(PARTICLE_FEATURE_NAMES):
                res[f"{name}_j{k}"] = wasserstein_1d(pa[:, i], pb[:, i])
        return res

    out: dict[str, Any] = {
        "w1_jet": w1_jets(reference, generated),
        "w1_jet_floor": w1_jets(ha, hb),
        "w1_particle": w1_parts(reference, generated),
        "w1_particle_floor": w1_parts(ha, hb),
    }
    n_g = len(generated["x1"])
    sel = rng.choice(n_g, size=min(n_g, n_r), replace=False)
    ref_summary = _summary_features(reference, standardizer)
    gen_summary = _summary_features(take_inputs(generated, sel), standardizer)
    for key, part in (("auc", "all"), ("auc_jets", "jets"), ("auc_particles", "particles")):
        out[key] = two_sample_auc(ref_summary[part], gen_summary[part], seed=seed, folds=folds)
    out["n_reference"], out["n_generated"] = int(n_r), int(len(sel))
    return out
