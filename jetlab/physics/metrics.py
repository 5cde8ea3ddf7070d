"""Classifier and distribution metrics used by the tagging, OmniFold and anomaly tasks.

Conventions follow the OmniLearn / PET papers so numbers are comparable:

* background rejection ``1/eps_B`` at a signal efficiency ``eps_S`` (``method="first_above"``:
  the first ROC point whose ``tpr`` is *strictly above* ``eps_S``, as the published evaluation
  code does with ``argmax(tpr > eps)``; ``method="interp"`` (default): ``eps_B`` linearly
  interpolated in ``tpr`` between the neighbouring ROC points, which removes the dependence on
  how the ROC happens to be sampled);
* SIC ``eps_S / sqrt(eps_B)`` over ROC points with ``fpr > min_fpr`` (default ``1e-4``, the
  reference's cut on the low-statistics tail) at which at least ``min_background_events``
  background events (unweighted count, default 0) pass the cut: the one definition that the
  anomaly task (10 events: mini samples), :func:`jetlab.plot.sic_curves` and :func:`max_sic` use;
* triangular discriminator ``0.5 * sum_bins w (p - q)^2 / (p + q)`` on density-normalised
  histograms, reported multiplied by ``scale = 1e3``.

Plots and widgets draw these same functions' numbers (:func:`roc_curve`, :func:`roc_metrics`,
:func:`sic_curve`, :func:`triangular_discriminator`); nothing re-implements them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = [
    "binomial_standard_error",
    "bootstrap",
    "inverse_background_efficiency",
    "max_sic",
    "mean_and_spread",
    "roc_curve",
    "roc_metrics",
    "sic_curve",
    "triangular_discriminator",
    "triangular_discriminator_samples",
    "two_sample_auc",
    "wasserstein_1d",
]


# ------------------------------------------------------------------------ validation
def _binary_inputs(labels, scores, weights, where: str):
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]  # (N, 2) class probabilities: the signal column
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(
            f"{where}: labels and scores must be 1-D (or scores (N, 2)); got shapes {y.shape} and {np.shape(scores)}"
        )
    if len(y) != len(s):
        raise ValueError(f"{where}: labels ({len(y)}) and scores ({len(s)}) differ in length")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{where}: scores contain NaN/inf (first at index {int(np.argmin(np.isfinite(s)))})")
    uniq = np.unique(y)
    if not np.all(np.isin(uniq, (0, 1))):
        raise ValueError(f"{where}: labels must be 0 (background) / 1 (signal), got values {uniq[:10].tolist()}")
    if len(uniq) < 2:
        raise ValueError(f"{where}: need both signal (1) and background (0) labels, got only {uniq.tolist()}")
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != y.shape:
            raise ValueError(f"{where}: weights shape {w.shape} != labels shape {y.shape}")
    return y.astype(np.int64), s, w


def _roc(y, s, w):
    """The full ROC curve: sklearn's default thinning drops the points at low fpr that decide
    max SIC and rejections (a perfectly separating score would get max SIC = 1)."""
    from sklearn.metrics import roc_curve

    return roc_curve(y, s, sample_weight=w, drop_intermediate=False)


def _eps_b_at(fpr: np.ndarray, tpr: np.ndarray, eps_s: np.ndarray, method: str) -> np.ndarray:
    if method == "interp":
        # several points can share one tpr (a horizontal ROC step); the first has the lowest fpr
        t, first = np.unique(tpr, return_index=True)
        return np.interp(eps_s, t, fpr[first])
    if method == "first_above":
        out = np.empty(eps_s.shape)
        for i, e in np.ndenumerate(eps_s):
            above = np.nonzero(tpr > e)[0]
            out[i] = fpr[above[0]] if above.size else np.nan
        return out
    raise ValueError(f"method must be 'interp' or 'first_above', got {method!r}")


def _rejection(eps_b):
    eps_b = np.asarray(eps_b, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(eps_b > 0, 1.0 / np.where(eps_b > 0, eps_b, 1.0), np.inf)


# ------------------------------------------------------------------------------ ROC
def roc_curve(labels, scores, weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the cut ``score >= threshold``, one point per distinct score
    (thresholds descending, first point (0, 0) at ``inf``), weighted if ``weights`` are given."""
    y, s, w = _binary_inputs(labels, scores, weights, "roc_curve")
    return _roc(y, s, w)


def inverse_background_efficiency(
    labels,
    scores,
    eps_s: float | Sequence[float],
    weights=None,
    method: str = "interp",
):
    """Background rejection ``1 / eps_B`` at signal efficiency ``eps_s`` (scalar or array).

    ``method="interp"`` interpolates ``eps_B`` linearly in ``tpr``; ``"first_above"`` takes the
    first ROC point with ``tpr > eps_s`` (OmniLearn). Returns ``inf`` where ``eps_B = 0`` and
    NaN where no ROC point lies above ``eps_s`` (``first_above`` at ``eps_s = 1``).
    """
    y, s, w = _binary_inputs(labels, scores, weights, "inverse_background_efficiency")
    e = np.asarray(eps_s, dtype=np.float64)
    if np.any((e < 0) | (e > 1)):
        raise ValueError(f"inverse_background_efficiency: eps_s must lie in [0, 1], got {eps_s}")
    fpr, tpr, _ = _roc(y, s, w)
    eps_b = _eps_b_at(fpr, tpr, e, method)
    rej = np.where(np.isnan(eps_b), np.nan, _rejection(eps_b))
    return float(rej) if rej.ndim == 0 else rej


def roc_metrics(
    labels,
    scores,
    weights=None,
    *,
    eps_s: Sequence[float] = (0.5, 0.8),
    method: str = "interp",
    threshold: float = 0.5,
) -> dict:
    """AUC, accuracy and background rejections of a binary classifier, plus its ROC curve.

    Returns ``{"auc", "accuracy", "rej_at_0.5", "rej_at_0.8", "fpr", "tpr", "thresholds"}``
    (one ``rej_at_<eps>`` per entry of ``eps_s``). ``accuracy`` counts ``score > threshold`` as
    signal (threshold 0.5 on probabilities). All quantities use ``weights`` when given. Scores
    of shape (N, 2) are read as class probabilities and the signal column is used.
    """
    from sklearn.metrics import roc_auc_score

    y, s, w = _binary_inputs(labels, scores, weights, "roc_metrics")
    fpr, tpr, thr = _roc(y, s, w)
    correct = ((s > threshold).astype(np.int64) == y).astype(np.float64)
    ww = np.ones_like(correct) if w is None else w
    out = {
        "auc": float(roc_auc_score(y, s, sample_weight=w)),
        "accuracy": float(np.sum(ww * correct) / np.sum(ww)),
    }
    eps = np.asarray(eps_s, dtype=np.float64)
    eps_b = _eps_b_at(fpr, tpr, eps, method)
    for e, eb in zip(eps.tolist(), np.atleast_1d(eps_b).tolist()):
        out[f"rej_at_{e:g}"] = float("nan") if np.isnan(eb) else float(_rejection(eb))
    out.update(fpr=fpr, tpr=tpr, thresholds=thr)
    return out


def sic_curve(
    labels, scores, weights=None, min_fpr: float = 1e-4, *, min_background_events: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Significance improvement ``eps_S / sqrt(eps_B)`` versus ``eps_S``.

    Only ROC points with ``fpr > min_fpr`` and at least ``min_background_events`` background
    events (unweighted count) passing the cut are kept: at tiny background efficiencies the SIC
    is a statistical fluctuation of a handful of background events.
    """
    y, s, w = _binary_inputs(labels, scores, weights, "sic_curve")
    fpr, tpr, thr = _roc(y, s, w)
    background = np.sort(s[y == 0])
    n_pass = len(background) - np.searchsorted(background, thr, side="left")  # background with score >= threshold
    keep = (fpr > min_fpr) & (n_pass >= min_background_events)
    return tpr[keep], tpr[keep] / np.sqrt(fpr[keep])


def max_sic(labels, scores, weights=None, min_fpr: float = 1e-4, *, min_background_events: int = 0) -> float:
    """Maximum of :func:`sic_curve` (OmniLearn's anomaly-detection figure of merit)."""
    _, sic = sic_curve(labels, scores, weights, min_fpr, min_background_events=min_background_events)
    if sic.size == 0:
        raise ValueError(
            f"max_sic: no ROC point has fpr > min_fpr = {min_fpr} with >= {min_background_events} "
            "background events passing; lower min_fpr / min_background_events or use more background"
        )
    return float(np.max(sic))


# ---------------------------------------------------------- distribution distances
def triangular_discriminator(
    p_hist,
    q_hist,
    bin_widths=None,
    *,
    scale: float = 1e3,
    normalize: bool = True,
) -> float:
    """Triangular discriminator ``scale * 0.5 * sum_i w_i (p_i - q_i)^2 / (p_i + q_i)``.

    ``p_hist`` / ``q_hist`` are histograms on the same bins (counts or weighted sums).
    With ``normalize`` (default) each is first turned into a density, ``p_i / (sum(p) * w_i)``,
    so the result does not depend on sample sizes (for counts the widths then cancel: the value
    is ``0.5 * sum (P - Q)^2 / (P + Q)`` of the bin fractions, whatever the binning); pass
    ``normalize=False`` for histograms that already are densities (there the widths weigh each
    bin). ``bin_widths`` defaults to 1 per bin. Bins where ``p + q <= 0`` (empty in both) contribute 0. The default
    ``scale = 1e3`` reproduces the "x 10^3" numbers quoted in the OmniFold/OmniLearn papers;
    use ``scale=1`` for the bare value (0 for identical, 1 for disjoint probability histograms).
    """
    p = np.asarray(p_hist, dtype=np.float64)
    q = np.asarray(q_hist, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(
            f"triangular_discriminator: p_hist and q_hist must be 1-D with equal shapes, got {p.shape} and {q.shape}"
        )
    w = np.ones_like(p) if bin_widths is None else np.broadcast_to(np.asarray(bin_widths, dtype=np.float64), p.shape)
    if np.any(w <= 0):
        raise ValueError("triangular_discriminator: bin_widths must be positive")
    if normalize:
        for name, h in (("p_hist", p), ("q_hist", q)):
            if np.sum(h) <= 0:
                raise ValueError(f"triangular_discriminator: {name} has no positive content to normalise")
        p = p / (np.sum(p) * w)
        q = q / (np.sum(q) * w)
    den = p + q
    ok = den > 0
    return float(scale * 0.5 * np.sum(w[ok] * (p[ok] - q[ok]) ** 2 / den[ok]))


def triangular_discriminator_samples(
    x,
    y,
    bins,
    wx=None,
    wy=None,
    *,
    scale: float = 1e3,
) -> float:
    """:func:`triangular_discriminator` between weighted samples ``x`` and ``y``.

    ``bins`` is an edge array or a bin count (then equal bins over the finite range of both
    samples). Entries outside the edges are ignored, as with ``np.histogram(density=True)``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if np.ndim(bins) == 0:
        both = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
        if both.size == 0:
            raise ValueError("triangular_discriminator_samples: no finite values to bin")
        edges = np.histogram_bin_edges(both, bins=int(bins))
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("triangular_discriminator_samples: bins must be increasing edges (>= 2) or an int")
    hx, _ = np.histogram(x, bins=edges, weights=wx)
    hy, _ = np.histogram(y, bins=edges, weights=wy)
    return triangular_discriminator(hx, hy, np.diff(edges), scale=scale)


def wasserstein_1d(x, y, wx=None, wy=None) -> float:
    """Earth mover's distance between two weighted 1-D samples (scipy)."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), wx, wy))


def two_sample_auc(a, b, *, seed: int = 0, folds: int = 5, max_iter: int = 100) -> float:
    """Out-of-fold ROC AUC of a gradient-boosted classifier telling rows of ``a`` (label 0) from rows
    of ``b`` (label 1); 0.5 = indistinguishable, NaN when a class has fewer than 2 rows.

    Why: a W1 per feature misses correlations, and a generated sample that a classifier can tell
    from the real one (AUC 0.95) is found instead of the signal when it is CATHODE's reference.
    One OpenMP thread: on small samples a busy-waiting thread pool costs far more than it gains.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.ndim != 2 or xb.ndim != 2 or xa.shape[1] != xb.shape[1]:
        raise ValueError(f"two_sample_auc: a and b must be 2-D with equal columns, got {xa.shape} and {xb.shape}")
    k = int(min(folds, len(xa), len(xb)))
    if k < 2:
        return float("nan")
    X = np.concatenate([xa, xb])
    y = np.concatenate([np.zeros(len(xa), np.int64), np.ones(len(xb), np.int64)])
    clf = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.1, random_state=int(seed))
    with threadpool_limits(limits=1):
        p = cross_val_predict(
            clf, X, y, cv=StratifiedKFold(k, shuffle=True, random_state=int(seed)), method="predict_proba"
        )[:, 1]
    return float(roc_auc_score(y, p))


# -------------------------------------------------------------------- uncertainties
def bootstrap(fn: Callable[..., float], *arrays, n: int = 50, seed: int = 0) -> tuple[float, float]:
    """Bootstrap mean and standard deviation of ``fn(*arrays)``.

    All arrays are resampled with the *same* row indices (so labels, scores and weights stay
    aligned); ``None`` entries are passed through unchanged. The std (ddof=1) is the
    statistical uncertainty of the metric.
    """
    if n < 2:
        raise ValueError(f"bootstrap: n must be >= 2, got {n}")
    arrs = [None if a is None else np.asarray(a) for a in arrays]
    lengths = {len(a) for a in arrs if a is not None}
    if len(lengths) != 1:
        raise ValueError(f"bootstrap: arrays must have one common length, got lengths {sorted(lengths)}")
    size = lengths.pop()
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, size, size)
        values.append(float(fn(*(None if a is None else a[idx] for a in arrs))))
    v = np.asarray(values)
    return float(v.mean()), float(v.std(ddof=1))


def binomial_standard_error(fraction: float, n: int) -> float:
    """Standard error sqrt(p (1 - p) / n) of a fraction ``p`` of ``n`` independent trials, e.g. an
    accuracy on ``n`` jets: how far the same measurement on another sample of ``n`` would scatter."""
    if n < 1:
        raise ValueError(f"binomial_standard_error: n must be >= 1, got {n}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"binomial_standard_error: fraction must lie in [0, 1], got {fraction}")
    return float(np.sqrt(fraction * (1.0 - fraction) / n))


def mean_and_spread(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) of repeated results,
    e.g. a metric over several training seeds."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("mean_and_spread: no values")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
