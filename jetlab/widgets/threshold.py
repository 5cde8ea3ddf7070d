"""Classifier threshold explorer: score distributions and the efficiencies at a cut."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jetlab.plot._numeric import binary_inputs, efficiencies
from jetlab.widgets._base import Explorer

#: scores closer than this to 0 or 1 are drawn in the first/last bin of a logit axis
LOGIT_EPS = 1e-6
#: labelled score values on a logit axis (those inside the data's range are used)
LOGIT_TICKS = (1e-5, 1e-4, 1e-3, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999)

#: positions of the threshold slider across the score range
SLIDER_STEPS = 500


class ThresholdExplorer(Explorer):
    """Signal/background score histograms with a movable cut ``score >= threshold``.

    Shows eps_S, eps_B and the background rejection 1/eps_B at the cut (weighted if ``weights``
    are given). Drive it with :meth:`set_threshold` / :meth:`set_signal_efficiency` or the slider.

    A trained tagger piles each class up near 0 or 1, where a linear axis hides the overlap that
    decides the cut. So by default (``score_scale="auto"``) scores in [0, 1] that reach from 0.1
    or below to 0.9 or above are drawn on a logit axis with bins equal in logit(score) (ticks stay
    in score units: 0.01, 0.5, 0.99), other scores on a linear axis; the y axis is the fraction of each class per bin on a log scale
    (``logy``), so tails of a per-mille of the jets stay visible.
    """

    def __init__(
        self,
        labels,
        scores,
        weights=None,
        *,
        threshold: float | None = None,
        signal_label: int = 1,
        bins: int = 50,
        logy: bool = True,
        score_scale: str = "auto",
        score_label: str = "Classifier score",
        mode: str = "auto",
    ) -> None:
        super().__init__(mode)
        self._is_sig, self.scores, self.weights = binary_inputs(
            labels, scores, weights, "ThresholdExplorer", signal_label
        )
        self.bins = int(bins)
        self.logy = logy
        self.score_label = score_label
        self.lo, self.hi = float(self.scores.min()), float(self.scores.max())
        if score_scale not in ("auto", "logit", "linear"):
            raise ValueError(f"ThresholdExplorer: score_scale must be 'auto', 'logit' or 'linear', got {score_scale!r}")
        in_unit = 0.0 <= self.lo and self.hi <= 1.0 and self.hi > self.lo
        # a logit axis pays off when the scores spread towards 0 and 1 (at least 0.1 to 0.9)
        spread = sum(self.lo <= t <= self.hi for t in LOGIT_TICKS) >= 3
        if score_scale == "logit" and not in_unit:
            raise ValueError(
                f"ThresholdExplorer: score_scale='logit' needs scores in [0, 1] (not all equal), "
                f"got scores in [{self.lo:.4g}, {self.hi:.4g}]"
            )
        self.score_scale = (
            "logit" if score_scale == "logit" or (score_scale == "auto" and in_unit and spread) else "linear"
        )
        self.threshold = float(np.median(self.scores)) if threshold is None else float(threshold)
        self._slider: Any = None  # ipywidgets controls once built
        self._target: Any = None

    # ------------------------------------------------------------ API
    def set_threshold(self, t: float) -> dict[str, Any]:
        """Move the cut to ``t``; return the new :attr:`state`."""
        t = float(t)
        if not np.isfinite(t):
            raise ValueError(f"ThresholdExplorer.set_threshold: threshold must be finite, got {t}")
        self.threshold = t
        self._refresh()
        return self.state

    def set(self, *, threshold: float | None = None, signal_efficiency: float | None = None) -> dict[str, Any]:
        if threshold is not None and signal_efficiency is not None:
            raise ValueError("ThresholdExplorer.set: give threshold or signal_efficiency, not both")
        if signal_efficiency is not None:
            self.set_signal_efficiency(signal_efficiency)
        elif threshold is not None:
            self.set_threshold(threshold)
        return self.state

    def set_signal_efficiency(self, eps: float) -> float:
        """Put the cut at the highest threshold with eps_S >= ``eps``; return that threshold."""
        eps = float(eps)
        if not 0.0 < eps <= 1.0:
            raise ValueError(f"ThresholdExplorer.set_signal_efficiency: eps must be in (0, 1], got {eps}")
        s = self.scores[self._is_sig]
        w = self.weights[self._is_sig]
        order = np.argsort(-s, kind="mergesort")
        frac = np.cumsum(w[order]) / w.sum()
        idx = int(np.searchsorted(frac, eps - 1e-12))
        t = float(s[order][min(idx, len(s) - 1)])
        self.set_threshold(t)
        return t

    @property
    def state(self) -> dict[str, Any]:
        eff_s, eff_b = efficiencies(self._is_sig, self.scores, self.weights, self.threshold)
        return {
            "threshold": self.threshold,
            "eps_S": eff_s,
            "eps_B": eff_b,
            "rejection": float("inf") if eff_b == 0 else 1.0 / eff_b,
            "n_signal_pass": int((self._is_sig & (self.scores >= self.threshold)).sum()),
            "n_background_pass": int((~self._is_sig & (self.scores >= self.threshold)).sum()),
        }

    def summary_html(self) -> str:
        st = self.state
        rej = "∞" if np.isinf(st["rejection"]) else f"{st['rejection']:.4g}"
        return (
            f"threshold = {st['threshold']:.{self._threshold_digits()}f} &nbsp; | &nbsp; ε<sub>S</sub> = {st['eps_S']:.4f} &nbsp; | &nbsp; "
            f"ε<sub>B</sub> = {st['eps_B']:.4g} &nbsp; | &nbsp; 1/ε<sub>B</sub> = {rej}"
        )

    def bin_edges(self) -> np.ndarray:
        """Histogram bin edges: equal in logit(score) on a logit axis, else equal in score."""
        if self.score_scale == "logit":
            lo, hi = max(self.lo, LOGIT_EPS), min(self.hi, 1.0 - LOGIT_EPS)
            if hi <= lo:
                lo, hi = LOGIT_EPS, 1.0 - LOGIT_EPS
            logit = np.linspace(np.log(lo / (1 - lo)), np.log(hi / (1 - hi)), self.bins + 1)
            return 1.0 / (1.0 + np.exp(-logit))
        return np.linspace(self.lo, self.hi if self.hi > self.lo else self.lo + 1, self.bins + 1)

    def _threshold_digits(self) -> int:
        """Decimals that resolve one slider step (scores of an undertrained model can span 1e-3)."""
        step = (self.hi - self.lo) / SLIDER_STEPS if self.hi > self.lo else 0.01
        return int(min(12, max(4, np.ceil(-np.log10(step)) + 1)))

    # ------------------------------------------------------------ drawing
    def _draw(self, fig: Figure) -> None:
        from jetlab.plot._numeric import weighted_hist
        from jetlab.plot._style import COLORS, label_axes

        ax = fig.add_subplot()
        edges = self.bin_edges()
        scores = np.clip(self.scores, edges[0], edges[-1])  # saturated scores land in the end bins
        ymax, ymin = 0.0, np.inf
        for mask, name, color in ((~self._is_sig, "Background", COLORS[0]), (self._is_sig, "Signal", COLORS[2])):
            v, _ = weighted_hist(scores[mask], edges, self.weights[mask])
            v = v / self.weights[mask].sum()  # fraction of the class per bin
            ymax = max(ymax, float(v.max()))
            ymin = min(ymin, float(v[v > 0].min()) if (v > 0).any() else np.inf)
            ax.stairs(v, edges, baseline=None, color=color, lw=1.8, label=name)
        if self.score_scale == "logit":
            from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

            ax.set_xscale("logit")
            ticks = [t for t in LOGIT_TICKS if edges[0] - 1e-12 <= t <= edges[-1] + 1e-12]
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))  # 0.001, 0.5, 0.999
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axvline(self.threshold, color="black", ls="--", lw=1.5, label="Cut")
        ax.axvspan(self.threshold, edges[-1], color="grey", alpha=0.12, lw=0)
        st = self.state
        rej = "inf" if np.isinf(st["rejection"]) else f"{st['rejection']:.3g}"
        ax.text(
            0.03,
            0.97,
            f"$\\varepsilon_S$ = {st['eps_S']:.3f}\n$\\varepsilon_B$ = {st['eps_B']:.3g}\n$1/\\varepsilon_B$ = {rej}",
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize="small",
        )
        if self.logy and ymax > 0:
            ax.set_yscale("log")
            bottom = min(0.5 * ymin, ymax / 100)  # at least two decades: labelled powers of ten
            ax.set_ylim(bottom, bottom * (ymax / bottom) ** 1.5)  # headroom for legend and numbers
        elif ymax > 0:
            ax.set_ylim(0, 1.45 * ymax)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(self.score_label + (" (logit scale)" if self.score_scale == "logit" else ""))
        ax.set_ylabel("Fraction of jets per bin")
        ax.legend(fontsize="small", loc="upper right")
        label_axes(ax)

    # ------------------------------------------------------------ widget
    def _build_controls(self) -> list:
        import ipywidgets as w

        step = (self.hi - self.lo) / SLIDER_STEPS if self.hi > self.lo else 0.01
        self._slider = w.FloatSlider(
            value=min(max(self.threshold, self.lo), self.hi),
            min=self.lo,
            max=self.hi,
            step=step,
            description="threshold",
            continuous_update=False,
            readout_format=f".{self._threshold_digits()}f",
        )
        self._target = w.BoundedFloatText(value=0.5, min=0.001, max=1.0, step=0.01, description="set ε_S")
        button = w.Button(description="Apply ε_S")
        self._slider.observe(self._on_slider, names="value")
        button.on_click(lambda _b: self.set_signal_efficiency(self._target.value))
        return [self._slider, self._target, button]

    def _on_slider(self, change) -> None:
        if not self._syncing:
            self.set_threshold(change["new"])

    def _sync_controls(self) -> None:
        if self._slider is not None:
            self._slider.value = min(max(self.threshold, self._slider.min), self._slider.max)
