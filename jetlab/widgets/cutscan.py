"""Anomaly-detection cut scan: the dijet-mass spectrum after an anomaly-score cut and the local
significance of an excess in the signal region, with the background from a sideband fit."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jetlab.plot._numeric import as_1d, asimov_significance, check_weights, weighted_hist
from jetlab.widgets._base import Explorer

#: fit name -> polynomial degree of log(counts per bin) in the scaled mass x in [0, 1]
FIT_FUNCTIONS = {"exponential": 1, "exp-quadratic": 2}


def mass_bins(sr, sb, bin_width: float | None = None) -> np.ndarray:
    """Bin edges over the sidebands + signal region with the SR boundaries as bin edges."""
    lo, hi = float(sb[0][0]), float(sb[1][1])
    if not (sb[0][0] < sb[0][1] <= sr[0] < sr[1] <= sb[1][0] < sb[1][1]):
        raise ValueError(f"mass windows must be ordered sb_low < sr < sb_high, got sr={sr}, sb={sb}")
    width = (hi - lo) / 30 if bin_width is None else float(bin_width)
    if width <= 0:
        raise ValueError(f"bin_width must be positive, got {bin_width}")
    pieces = [(sb[0][0], sb[0][1]), (sb[0][1], sr[0]), (sr[0], sr[1]), (sr[1], sb[1][0]), (sb[1][0], sb[1][1])]
    edges = [lo]
    for a, b in pieces:
        if b > a:
            n = max(1, int(round((b - a) / width)))
            edges.extend(np.linspace(a, b, n + 1)[1:])
    return np.asarray(edges)


def fit_sidebands(counts: np.ndarray, edges: np.ndarray, use: np.ndarray, degree: int = 1, max_iter: int = 100):
    """Poisson maximum-likelihood fit of ``log(mu_i) = log(w_i) + sum_k c_k x_i^k`` to the bins
    flagged by ``use`` (iteratively re-weighted least squares, a log-link GLM).

    Returns (mu for every bin, covariance of the coefficients, design matrix) or None when the
    fit is under-constrained (fewer non-empty bins than parameters + 1) or does not converge.
    """
    centres = 0.5 * (edges[1:] + edges[:-1])
    widths = np.diff(edges)
    x = (centres - edges[0]) / (edges[-1] - edges[0])
    X = np.vander(x, degree + 1, increasing=True)
    offset = np.log(widths / widths.mean())
    y, Xs, off = counts[use], X[use], offset[use]
    if (y > 0).sum() < degree + 2:
        return None
    beta = np.linalg.lstsq(Xs, np.log(y + 0.5) - off, rcond=None)[0]
    for _ in range(max_iter):
        eta = Xs @ beta + off
        mu = np.exp(np.clip(eta, -50, 50))
        z = eta - off + (y - mu) / mu
        XtW = Xs.T * mu
        try:
            new = np.linalg.solve(XtW @ Xs, XtW @ z)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(new)):
            return None
        done = np.max(np.abs(new - beta)) < 1e-10
        beta = new
        if done:
            break
    mu_use = np.exp(Xs @ beta + off)
    cov = np.linalg.pinv((Xs.T * mu_use) @ Xs)
    mu_all = np.exp(X @ beta + offset)
    return mu_all, cov, X


class CutScanExplorer(Explorer):
    """Scan the anomaly-score cut and watch a bump appear in the signal region.

    The cut keeps the fraction ``efficiency`` of all events inside the mass window with the
    highest scores (threshold = the (1 - efficiency) quantile of those scores). The background
    in the SR is estimated by a Poisson likelihood fit of ``exp(polynomial)`` (``fit``:
    "exponential" or "exp-quadratic") to the sideband bins after the cut, integrated over the SR
    bins; the local significance of the observed count ``n`` over the estimate ``b`` is
    Z = sqrt(2((s+b) ln(1+s/b) - s)) with s = n - b (negative for a deficit). With ``labels``
    (1 = signal) the true signal/background counts in the SR are shown too.
    """

    figsize = (7.5, 7.0)

    def __init__(
        self,
        scores,
        mjj,
        sr: tuple[float, float] = (3.3, 3.7),
        sb: tuple[tuple[float, float], tuple[float, float]] = ((2.3, 3.3), (3.7, 5.0)),
        labels=None,
        weights=None,
        *,
        efficiency: float = 1.0,
        bin_width: float | None = None,
        fit: str = "exponential",
        unit: str = "TeV",
        mode: str = "auto",
    ) -> None:
        super().__init__(mode)
        where = "CutScanExplorer"
        self.scores = as_1d(scores, "scores", where)
        self.mjj = as_1d(mjj, "mjj", where)
        if len(self.mjj) != len(self.scores):
            raise ValueError(f"{where}: mjj has {len(self.mjj)} entries, scores {len(self.scores)}")
        self.weights = check_weights(weights, len(self.scores), "weights", where)
        self.labels = None if labels is None else np.asarray(labels).ravel()
        if self.labels is not None and len(self.labels) != len(self.scores):
            raise ValueError(f"{where}: labels has {len(self.labels)} entries, scores {len(self.scores)}")
        if fit not in FIT_FUNCTIONS:
            raise ValueError(f"{where}: fit must be one of {list(FIT_FUNCTIONS)}, got {fit!r}")
        self.sr, self.sb = tuple(map(float, sr)), tuple(tuple(map(float, s)) for s in sb)
        try:
            self.edges = mass_bins(self.sr, self.sb, bin_width)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        self.fit, self.unit = fit, unit
        self.in_window = (self.mjj >= self.edges[0]) & (self.mjj < self.edges[-1])
        if not self.in_window.any():
            raise ValueError(f"{where}: no events with mjj inside [{self.edges[0]}, {self.edges[-1]}) {unit}")
        centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        self._sr_bins = (centres > self.sr[0]) & (centres < self.sr[1])
        self._sb_bins = ~self._sr_bins & (
            ((centres > self.sb[0][0]) & (centres < self.sb[0][1]))
            | ((centres > self.sb[1][0]) & (centres < self.sb[1][1]))
        )
        self.min_efficiency = max(1e-4, 10.0 / self.in_window.sum())
        self.efficiency = 1.0
        self._slider: Any = None  # an ipywidgets FloatLogSlider once the controls are built
        self._cache: dict[str, Any] | None = None
        self.set_efficiency(efficiency)

    # ------------------------------------------------------------ API
    def set_efficiency(self, efficiency: float) -> dict[str, Any]:
        """Keep the top ``efficiency`` fraction of events by score; return the new :attr:`state`."""
        e = float(efficiency)
        if not 0.0 < e <= 1.0:
            raise ValueError(f"CutScanExplorer.set_efficiency: efficiency must be in (0, 1], got {efficiency}")
        self.efficiency = e
        self._cache = None
        self._refresh()
        return self.state

    def set(self, *, efficiency: float) -> dict[str, Any]:
        return self.set_efficiency(efficiency)

    @property
    def threshold(self) -> float:
        if self.efficiency >= 1.0:
            return -np.inf
        return float(np.quantile(self.scores[self.in_window], 1.0 - self.efficiency))

    def _compute(self) -> dict[str, Any]:
        if self._cache is not None:
            return self._cache
        t = self.threshold
        sel = self.in_window & (self.scores >= t)
        counts, errors = weighted_hist(self.mjj[sel], self.edges, self.weights[sel])
        result = fit_sidebands(counts, self.edges, self._sb_bins, FIT_FUNCTIONS[self.fit])
        n_obs = float(counts[self._sr_bins].sum())
        if result is None:
            mu, b, b_err = None, float("nan"), float("nan")
        else:
            mu, cov, X = result
            b = float(mu[self._sr_bins].sum())
            grad = (mu[self._sr_bins, None] * X[self._sr_bins]).sum(0)
            b_err = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
        st: dict[str, Any] = {
            "efficiency": self.efficiency,
            "threshold": t,
            "n_selected": int(sel.sum()),
            "n_observed_sr": n_obs,
            "n_expected_sr": b,
            "n_expected_sr_err": b_err,
            "excess": n_obs - b,
            "significance": asimov_significance(n_obs, b),
            "fit_ok": result is not None,
        }
        if self.labels is not None:
            in_sr = sel & (self.mjj >= self.sr[0]) & (self.mjj < self.sr[1])
            st["n_signal_sr"] = float(self.weights[in_sr & (self.labels == 1)].sum())
            st["n_background_sr"] = float(self.weights[in_sr & (self.labels != 1)].sum())
        self._cache = {"state": st, "counts": counts, "errors": errors, "mu": mu}
        return self._cache

    @property
    def state(self) -> dict[str, Any]:
        return dict(self._compute()["state"])

    def summary_html(self) -> str:
        st = self.state
        txt = (
            f"efficiency = {st['efficiency']:.4g} (score ≥ {st['threshold']:.4g}) &nbsp;|&nbsp; "
            f"SR: observed {st['n_observed_sr']:.1f}, expected {st['n_expected_sr']:.1f} ± {st['n_expected_sr_err']:.1f} "
            f"&nbsp;|&nbsp; Z = {st['significance']:.2f} σ"
        )
        if not st["fit_ok"]:
            txt += " &nbsp;|&nbsp; <i>sideband fit failed: too few events after the cut</i>"
        if "n_signal_sr" in st:
            txt += f" &nbsp;|&nbsp; truth in SR: S = {st['n_signal_sr']:.1f}, B = {st['n_background_sr']:.1f}"
        return txt

    # ------------------------------------------------------------ drawing
    def _draw(self, fig: Figure) -> None:
        from jetlab.plot._style import COLORS, label_axes

        c = self._compute()
        st, counts, errors, mu = c["state"], c["counts"], c["errors"], c["mu"]
        gs = fig.add_gridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
        ax = fig.add_subplot(gs[0])
        pax = fig.add_subplot(gs[1], sharex=ax)
        ax.tick_params(labelbottom=False)
        edges = self.edges
        centres = 0.5 * (edges[1:] + edges[:-1])
        for a in (ax, pax):
            a.axvspan(*self.sr, color="#e42536", alpha=0.15, lw=0)
            for lo, hi in self.sb:
                a.axvspan(lo, hi, color="grey", alpha=0.10, lw=0)
        ok = counts > 0
        ax.errorbar(centres[ok], counts[ok], yerr=errors[ok], fmt="o", color="black", ms=4, label="Selected events")
        if mu is not None:
            ax.stairs(mu, edges, baseline=None, color=COLORS[0], lw=2, ls="--", label=f"Sideband fit ({self.fit})")
            with np.errstate(divide="ignore", invalid="ignore"):
                pull = np.where(mu > 0, (counts - mu) / np.sqrt(mu), np.nan)
            pax.bar(centres, pull, width=np.diff(edges), color=np.where(self._sr_bins, "#e42536", COLORS[0]), alpha=0.7)
        pax.axhline(0, color="black", lw=1)
        pax.set_ylim(-4, 4)
        pax.set_ylabel("Pull", fontsize="small")
        pax.set_xlabel(rf"Dijet mass $m_{{jj}}$ [{self.unit}]")
        ax.set_yscale("log")
        ax.set_ylabel("Events / bin")
        ax.set_xlim(edges[0], edges[-1])
        z = st["significance"]
        ax.text(
            0.97,
            0.70,
            f"score cut: top {100 * st['efficiency']:.3g}%\nSR obs. {st['n_observed_sr']:.0f}, exp. {st['n_expected_sr']:.1f}\n"
            f"$Z$ = {z:.2f}$\\sigma$"
            if np.isfinite(z)
            else f"score cut: top {100 * st['efficiency']:.3g}%\nfit failed",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize="small",
        )
        ax.legend(fontsize="small", loc="upper right")
        label_axes(ax)

    def _build_controls(self) -> list:
        import ipywidgets as w

        self._slider = w.FloatLogSlider(
            value=self.efficiency,
            base=10,
            min=float(np.log10(self.min_efficiency)),
            max=0.0,
            step=0.05,
            description="efficiency",
            continuous_update=False,
            readout_format=".3g",
        )
        self._slider.observe(lambda ch: None if self._syncing else self.set_efficiency(ch["new"]), names="value")
        return [self._slider]

    def _sync_controls(self) -> None:
        if self._slider is not None:
            self._slider.value = self.efficiency
