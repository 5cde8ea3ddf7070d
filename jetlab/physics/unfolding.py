"""Iterative Bayesian unfolding (D'Agostini), the binned baseline OmniFold is compared with.

Notation: ``R[j, i] = P(reco bin j | gen bin i)``, shape ``(n_reco, n_gen)``. Columns sum to the
efficiency ``eps_i <= 1`` (events generated in bin i that are reconstructed inside the reco
range). One iteration with prior ``p``::

    P(gen i | reco j) = R[j, i] p_i / sum_k R[j, k] p_k
    u_i = (1 / eps_i) sum_j P(gen i | reco j) (m_j - f_j)

where ``m`` is the measured histogram and ``f`` the expected fakes (reco entries without a gen
counterpart in range). The normalised ``u`` is the next prior. With a diagonal response the
result is the measurement itself; with full efficiency the total count is preserved.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = ["IBUResult", "Response", "ibu", "ibu_unfold_samples", "response_matrix"]


@dataclass
class Response:
    """A binned detector response estimated from simulation (see :func:`response_matrix`)."""

    matrix: np.ndarray  #: (n_reco, n_gen) P(reco j | gen i); columns sum to the efficiency
    efficiency: np.ndarray  #: (n_gen,) fraction of gen-bin entries reconstructed in range
    migrations: np.ndarray  #: (n_reco, n_gen) weighted counts with both levels in range
    truth: np.ndarray  #: (n_gen,) weighted gen counts, including entries lost at reco level
    reco: np.ndarray  #: (n_reco,) weighted reco counts, including fakes
    fakes: np.ndarray  #: (n_reco,) weighted reco counts without a gen entry in range
    bins_gen: np.ndarray
    bins_reco: np.ndarray

    @property
    def fake_fraction(self) -> np.ndarray:
        """Fraction of each reco bin that is fake (0 for empty bins)."""
        return np.divide(self.fakes, self.reco, out=np.zeros_like(self.fakes), where=self.reco > 0)


def _edges(bins, name: str) -> np.ndarray:
    e = np.asarray(bins, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"{name} must be strictly increasing bin edges with at least 2 entries, got {bins!r}")
    return e


def _bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value, -1 for NaN / out of range (last edge inclusive, like np.histogram)."""
    idx = np.searchsorted(edges, x, side="right") - 1
    idx = np.where(x == edges[-1], len(edges) - 2, idx)
    bad = ~np.isfinite(x) | (idx < 0) | (idx >= len(edges) - 1)
    return np.where(bad, -1, idx)


def response_matrix(gen, reco, bins_gen, bins_reco, weights=None) -> Response:
    """Estimate the response from row-aligned simulated ``gen`` / ``reco`` values.

    A NaN (or out-of-range) ``reco`` value marks an event generated but not reconstructed in
    range: it lowers the efficiency of its gen bin. A NaN (or out-of-range) ``gen`` value marks
    a fake: it counts in ``fakes`` of its reco bin and is subtracted before unfolding.
    Gen bins without any simulated entry get an all-zero column (efficiency 0).
    """
    gen = np.asarray(gen, dtype=np.float64).ravel()
    reco = np.asarray(reco, dtype=np.float64).ravel()
    if gen.shape != reco.shape:
        raise ValueError(f"response_matrix: gen ({gen.size}) and reco ({reco.size}) must be row-aligned")
    w = np.ones_like(gen) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != gen.shape:
        raise ValueError(f"response_matrix: weights ({w.size}) must match gen/reco ({gen.size})")
    eg, er = _edges(bins_gen, "bins_gen"), _edges(bins_reco, "bins_reco")
    ng, nr = len(eg) - 1, len(er) - 1
    ig, ir = _bin_index(gen, eg), _bin_index(reco, er)
    both = (ig >= 0) & (ir >= 0)
    migrations = np.zeros((nr, ng))
    np.add.at(migrations, (ir[both], ig[both]), w[both])
    truth = np.bincount(ig[ig >= 0], weights=w[ig >= 0], minlength=ng).astype(np.float64)
    reco_h = np.bincount(ir[ir >= 0], weights=w[ir >= 0], minlength=nr).astype(np.float64)
    fake = (ir >= 0) & (ig < 0)
    fakes = np.bincount(ir[fake], weights=w[fake], minlength=nr).astype(np.float64)
    matrix = np.divide(migrations, truth[None, :], out=np.zeros_like(migrations), where=truth[None, :] > 0)
    return Response(
        matrix=matrix,
        efficiency=matrix.sum(0),
        migrations=migrations,
        truth=truth,
        reco=reco_h,
        fakes=fakes,
        bins_gen=eg,
        bins_reco=er,
    )


def _iterate(measured, response, prior, n_iterations, fakes) -> Iterator[np.ndarray]:
    if isinstance(response, Response):
        R = response.matrix
        if fakes is None:
            fakes = response.fake_fraction * np.asarray(measured, dtype=np.float64)
    else:
        R = np.asarray(response, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    p = np.asarray(prior, dtype=np.float64)
    if R.ndim != 2:
        raise ValueError(f"ibu: response_matrix must be 2-D (n_reco, n_gen), got shape {R.shape}")
    if m.shape != (R.shape[0],):
        raise ValueError(f"ibu: measured_hist has shape {m.shape}, response expects ({R.shape[0]},) reco bins")
    if p.shape != (R.shape[1],):
        raise ValueError(f"ibu: prior has shape {p.shape}, response expects ({R.shape[1]},) gen bins")
    if np.any(R < 0) or np.any(p < 0):
        raise ValueError("ibu: response_matrix and prior must be non-negative")
    if p.sum() <= 0:
        raise ValueError("ibu: prior has no positive entries")
    if int(n_iterations) != n_iterations or n_iterations < 0:
        raise ValueError(f"ibu: n_iterations must be a non-negative integer, got {n_iterations}")
    if fakes is not None:
        f = np.asarray(fakes, dtype=np.float64)
        if f.shape != m.shape:
            raise ValueError(f"ibu: fakes has shape {f.shape}, expected {m.shape}")
        m = np.clip(m - f, 0.0, None)
    eff = R.sum(0)
    p = p / p.sum()
    for _ in range(int(n_iterations)):
        folded = R @ p
        post = np.divide(R * p[None, :], folded[:, None], out=np.zeros_like(R), where=folded[:, None] > 0)
        u = np.divide(post.T @ m, eff, out=np.zeros(R.shape[1]), where=eff > 0)
        yield u
        if u.sum() <= 0:
            raise ValueError("ibu: the unfolded distribution vanished (no measured entries reachable from the prior)")
        p = u / u.sum()


def ibu(measured_hist, response_matrix, prior, n_iterations: int = 4, *, fakes=None) -> np.ndarray:
    """Iterative Bayesian unfolding of ``measured_hist``; returns unfolded gen-level counts.

    ``response_matrix`` is ``R[j, i] = P(reco j | gen i)`` (an array, or a :class:`Response`,
    whose fake fraction is then applied to the measurement unless ``fakes`` is given).
    ``prior`` (gen binning, any normalisation) starts the iteration; bins where the prior is 0
    stay 0. ``fakes`` (reco binning, measured units) is subtracted first. With
    ``n_iterations=0`` the prior is returned scaled to the measured total.
    """
    last = deque(_iterate(measured_hist, response_matrix, prior, n_iterations, fakes), maxlen=1)  # the final iterate
    if not last:
        p = np.asarray(prior, dtype=np.float64)
        return p / p.sum() * float(np.sum(measured_hist))
    return last[0]


@dataclass
class IBUResult:
    """Output of :func:`ibu_unfold_samples`; histograms are densities (integral 1)."""

    bins: np.ndarray  #: gen-level bin edges
    unfolded: np.ndarray  #: (n_gen,) final unfolded density
    counts: np.ndarray  #: (n_gen,) final unfolded counts (data units)
    history: np.ndarray  #: (n_iterations, n_gen) density after each iteration; history[-1] == unfolded
    prior: np.ndarray  #: (n_gen,) density of the prior (the simulation truth by default)
    response: Response


def _density(h: np.ndarray, edges: np.ndarray) -> np.ndarray:
    area = float(np.sum(h * np.diff(edges)))
    return h / area if area > 0 else np.zeros_like(h)


def ibu_unfold_samples(
    sim_gen,
    sim_reco,
    data_reco,
    bins,
    n_iterations: int = 4,
    weights=None,
    *,
    data_weights=None,
    prior=None,
) -> IBUResult:
    """Unfold ``data_reco`` with the response of the row-aligned simulation (``sim_gen``, ``sim_reco``).

    ``bins`` is one edge array for both levels or a pair ``(bins_gen, bins_reco)``. ``weights``
    are per-event simulation weights, ``data_weights`` those of the data. The prior defaults to
    the simulated truth histogram. Returns an :class:`IBUResult` with the density-normalised
    unfolded histogram and its per-iteration history.
    """
    if n_iterations < 1:
        raise ValueError(f"ibu_unfold_samples: n_iterations must be >= 1, got {n_iterations}")
    if isinstance(bins, tuple) and len(bins) == 2:
        bins_gen, bins_reco = bins
    else:
        bins_gen = bins_reco = bins
    resp = response_matrix(sim_gen, sim_reco, bins_gen, bins_reco, weights)
    data = np.asarray(data_reco, dtype=np.float64).ravel()
    dw = None if data_weights is None else np.asarray(data_weights, dtype=np.float64).ravel()
    if dw is not None and dw.shape != data.shape:
        raise ValueError(f"ibu_unfold_samples: data_weights ({dw.size}) must match data_reco ({data.size})")
    measured, _ = np.histogram(
        data[np.isfinite(data)], bins=resp.bins_reco, weights=None if dw is None else dw[np.isfinite(data)]
    )
    p0 = resp.truth if prior is None else np.asarray(prior, dtype=np.float64)
    steps = list(_iterate(measured, resp, p0, n_iterations, None))
    eg = resp.bins_gen
    history = np.stack([_density(u, eg) for u in steps])
    return IBUResult(
        bins=eg,
        unfolded=history[-1],
        counts=steps[-1],
        history=history,
        prior=_density(p0, eg),
        response=resp,
    )
