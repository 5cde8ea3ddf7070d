"""Classifier threshold explorer: score distributions and the efficiencies at a cut."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jetlab.plot._numeric import binary_inputs, efficiencies
from jetlab.widgets._base import Explorer


class ThresholdExplorer(Explorer):
    """Signal/background score histograms with a movable cut ``score >= threshold``.

    Shows eps_S, eps_B and the background rejection 1/eps_B at the cut (weighted if ``weights``
    are given). Drive it with :meth:`set_threshold` / :meth:`set_signal_efficiency` or the slider.
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
        logy: bool = False,
        score_label: str = "Classifier score",
        mode: str = "auto",
    ) -> None:
        super().__init__(mode)
        self._is_sig, self.scores, self.weights = binary_inputs(labels, scores, weights, "ThresholdExplorer", signal_label)
        self.bins = int(bins)
        self.logy = logy
        self.score_label = score_label
        self.lo, self.hi = float(self.scores.min()), float(self.scores.max())
        self.threshold = float(np.median(self.scores)) if threshold is None else float(threshold)
        self._slider = None
        self._target = None

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
            f"threshold = {st['threshold']:.4g} &nbsp; | &nbsp; ε<sub>S</sub> = {st['eps_S']:.4f} &nbsp; | &nbsp; "
            f"ε<sub>B</sub> = {st['eps_B']:.4g} &nbsp; | &nbsp; 1/ε<sub>B</sub> = {rej}"
        )

    # ------------------------------------------------------------ drawing
    def _draw(self, fig: Figure) -> None:
        from jetlab.plot._numeric import weighted_hist
        from jetlab.plot._style import COLORS, label_axes

        ax = fig.add_subplot()
        edges = np.linspace(self.lo, self.hi if self.hi > self.lo else self.lo + 1, self.bins + 1)
        ymax = 0.0
        for mask, name, color in ((~self._is_sig, "Background", COLORS[0]), (self._is_sig, "Signal", COLORS[2])):
            v, _ = weighted_hist(self.scores[mask], edges, self.weights[mask], density=True)
            ymax = max(ymax, float(v.max()))
            ax.stairs(v, edges, baseline=None, color=color, lw=1.8, label=name)
        ax.axvline(self.threshold, color="black", ls="--", lw=1.5, label="Cut")
        ax.axvspan(self.threshold, edges[-1], color="grey", alpha=0.12, lw=0)
        st = self.state
        rej = "inf" if np.isinf(st["rejection"]) else f"{st['rejection']:.3g}"
        ax.text(
            0.03, 0.97,
            f"$\\varepsilon_S$ = {st['eps_S']:.3f}\n$\\varepsilon_B$ = {st['eps_B']:.3g}\n$1/\\varepsilon_B$ = {rej}",
            transform=ax.transAxes, va="top", ha="left", fontsize="small",
        )
        if self.logy:
            ax.set_yscale("log")
        elif ymax > 0:
            ax.set_ylim(0, 1.45 * ymax)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(self.score_label)
        ax.set_ylabel("Normalised entries")
        ax.legend(fontsize="small", loc="upper right")
        label_axes(ax)

    # ------------------------------------------------------------ widget
    def _build_controls(self) -> list:
        import ipywidgets as w

        step = (self.hi - self.lo) / 500 if self.hi > self.lo else 0.01
        self._slider = w.FloatSlider(
            value=min(max(self.threshold, self.lo), self.hi), min=self.lo, max=self.hi, step=step,
            description="threshold", continuous_update=False, readout_format=".4g",
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
