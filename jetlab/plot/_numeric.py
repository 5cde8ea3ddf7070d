"""Input checks and histogram filling shared by the plots and widgets. The numbers they show
(ROC, AUC, rejections, SIC, triangular discriminators) come from :mod:`jetlab.physics.metrics`:
one numeric core, nothing re-implemented here."""

from __future__ import annotations

import numpy as np


def as_1d(x, name: str, where: str) -> np.ndarray:
    """``x`` as a 1-d float array, or a ValueError naming the parameter."""
    arr = np.asarray(x)
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # torch tensors
        arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x.numpy())
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{where}: {name} must be 1-dimensional, got shape {arr.shape}")
    return arr


def check_weights(weights, n: int, name: str, where: str) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = as_1d(weights, name, where)
    if len(w) != n:
        raise ValueError(f"{where}: {name} has {len(w)} entries, expected {n} (one per value)")
    return w


def binary_inputs(labels, scores, weights, where: str, signal_label: int = 1):
    """Validate (labels, scores, weights) of a binary problem; return is_signal, scores, weights."""
    scores = as_1d(scores, "scores", where)
    labels = np.asarray(labels)
    if labels.shape != scores.shape:
        raise ValueError(f"{where}: labels shape {labels.shape} != scores shape {scores.shape}")
    w = check_weights(weights, len(scores), "weights", where)
    finite = np.isfinite(scores)
    if not finite.all():
        raise ValueError(f"{where}: scores contain {int((~finite).sum())} NaN/inf values")
    distinct = np.unique(labels)
    if len(distinct) > 2:
        raise ValueError(
            f"{where}: labels must hold two classes (signal {signal_label} and background), got "
            f"{len(distinct)} distinct values (first {distinct[:4].tolist()}); pass (labels, scores), "
            f"not (fpr, tpr)"
        )
    is_sig = labels == signal_label
    if not is_sig.any() or is_sig.all():
        raise ValueError(f"{where}: need both signal (label {signal_label}) and background entries")
    return is_sig, scores, w


def efficiencies(is_sig: np.ndarray, scores: np.ndarray, w: np.ndarray, threshold: float):
    """(eps_S, eps_B) for ``score >= threshold``."""
    passed = scores >= threshold
    eff_s = float(w[is_sig & passed].sum() / w[is_sig].sum())
    eff_b = float(w[~is_sig & passed].sum() / w[~is_sig].sum())
    return eff_s, eff_b


def weighted_hist(values: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None, density: bool = False):
    """Counts and statistical errors (sqrt of sum of w^2) per bin, filled with ``hist``.

    With ``density`` the histogram integrates to one over the bin range (like numpy's).
    """
    import hist

    h = hist.Hist(hist.axis.Variable(edges, underflow=False, overflow=False), storage=hist.storage.Weight())
    h.fill(values, weight=weights if weights is not None else np.ones(len(values)))
    vals = h.values().astype(np.float64)
    err = np.sqrt(h.variances().astype(np.float64))
    if density:
        norm = vals.sum() * np.diff(edges)
        total = vals.sum()
        if total > 0:
            vals, err = vals / norm, err / norm
    return vals, err


def auto_edges(arrays, bins: int, lo_q: float = 0.0, hi_q: float = 100.0, integer: bool = False) -> np.ndarray:
    """Common bin edges over several samples (percentile range; half-integer edges for counts)."""
    pooled = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) if arrays else np.array([])
    pooled = pooled[np.isfinite(pooled)]
    if pooled.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = np.percentile(pooled, [lo_q, hi_q])
    if integer:
        lo, hi = np.floor(lo), np.ceil(hi)
        step = max(1, int(np.ceil((hi - lo + 1) / bins)))
        return np.arange(lo - 0.5, hi + step + 0.5, step)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def asimov_significance(n_obs: float, b: float) -> float:
    """Z = sqrt(2((s+b) ln(1+s/b) - s)) with s = n_obs - b; negative for a deficit."""
    if not (b > 0) or not np.isfinite(b):
        return float("nan")
    s = n_obs - b
    if n_obs <= 0:
        return -float(np.sqrt(2.0 * b))
    z2 = 2.0 * (n_obs * np.log(n_obs / b) - s)
    return float(np.sign(s) * np.sqrt(max(z2, 0.0)))
