"""Saved figures read as a physicist reads them: score distributions on a logit axis with the
fraction of each class per bin on a log scale (so the overlap that decides a cut shows), and
legends that do not sit on the curves."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

import jetlab.widgets as jw
from jetlab.plot import rejection_curves, sic_curves

# 4 logit-equal bins over [0.01, 0.99] have edges 0.01, 0.0914, 0.5, 0.9086, 0.99
# (logit(0.01) = -4.595, quarters of the logit range); linear bins would be 0.01, 0.255, 0.5, 0.745, 0.99
BACKGROUND = [0.01, 0.05, 0.2, 0.4, 0.6, 0.95]  # logit bins: 2, 2, 1, 1   (linear: 3, 1, 1, 1)
SIGNAL = [0.3, 0.7, 0.93, 0.99]  # logit bins: 0, 1, 1, 2


def _explorer(**kw):
    labels = [0] * len(BACKGROUND) + [1] * len(SIGNAL)
    return jw.ThresholdExplorer(labels, BACKGROUND + SIGNAL, bins=4, mode="static", **kw)


def _stairs(ax):
    return {p.get_label(): p.get_data().values for p in ax.patches if hasattr(p, "get_data")}


def test_spread_scores_get_logit_bins_ticks_in_score_units_and_log_fractions():
    explorer = _explorer()
    assert explorer.score_scale == "logit"
    logit = np.log(explorer.bin_edges() / (1 - explorer.bin_edges()))
    assert logit == pytest.approx([-4.59512, -2.29756, 0.0, 2.29756, 4.59512], abs=1e-4)
    ax = explorer.figure().axes[0]
    assert ax.get_xscale() == "logit" and ax.get_yscale() == "log"
    values = _stairs(ax)
    assert values["Background"] == pytest.approx([2 / 6, 2 / 6, 1 / 6, 1 / 6])
    assert values["Signal"] == pytest.approx([0, 1 / 4, 1 / 4, 2 / 4])
    canvas = FigureCanvasAgg(ax.figure)
    canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.01", "0.1", "0.5", "0.9", "0.99"]
    assert "logit" in ax.get_xlabel() and ax.get_ylabel() == "Fraction of jets per bin"
    lo, hi = ax.get_ylim()
    assert hi / lo >= 100  # at least two decades: powers of ten are labelled


def test_linear_axis_for_narrow_or_unbounded_scores_and_on_request():
    explorer = _explorer(score_scale="linear")
    assert explorer.bin_edges() == pytest.approx([0.01, 0.255, 0.5, 0.745, 0.99])
    assert _stairs(explorer.figure().axes[0])["Background"] == pytest.approx([3 / 6, 1 / 6, 1 / 6, 1 / 6])
    narrow = jw.ThresholdExplorer([0, 0, 1, 1], [0.4766, 0.4770, 0.4772, 0.4775], mode="static")
    assert narrow.score_scale == "linear"  # no pile-up at 0 and 1 to unfold
    logits = jw.ThresholdExplorer([0, 0, 1, 1], [-3.0, -1.0, 0.5, 4.0], mode="static")
    assert logits.score_scale == "linear" and logits.figure().axes[0].get_xscale() == "linear"
    with pytest.raises(ValueError, match=r"score_scale='logit' needs scores in \[0, 1\].*\[-3, 4\]"):
        jw.ThresholdExplorer([0, 0, 1, 1], [-3.0, -1.0, 0.5, 4.0], score_scale="logit", mode="static")
    with pytest.raises(ValueError, match="score_scale must be"):
        _explorer(score_scale="log")


def test_saturated_scores_land_in_the_end_bins():
    # float32 sigmoids return exactly 0 and 1 for confident jets
    explorer = jw.ThresholdExplorer([0, 0, 0, 1, 1, 1], [0.0, 0.0, 0.3, 0.8, 1.0, 1.0], bins=10, mode="static")
    assert explorer.score_scale == "logit"
    values = _stairs(explorer.figure().axes[0])
    assert values["Background"][0] == pytest.approx(2 / 3) and values["Signal"][-1] == pytest.approx(2 / 3)
    assert sum(values["Background"]) == pytest.approx(1) and sum(values["Signal"]) == pytest.approx(1)


def test_threshold_readout_resolves_one_slider_step():
    explorer = jw.ThresholdExplorer([0, 0, 1, 1], [0.4766, 0.4770, 0.4772, 0.4776], threshold=0.4772484, mode="static")
    # a step is 0.001 / 500 = 2e-6: seven decimals tell two neighbouring positions apart
    assert "threshold = 0.4772484 " in explorer.text
    assert "threshold = 0.5000 " in _explorer(threshold=0.5).text


def _points_inside(ax, box) -> int:
    """Curve vertices (display coordinates) inside ``box``."""
    n = 0
    for line in ax.get_lines():
        xy = ax.transData.transform(np.column_stack(line.get_data()))
        n += int(((xy[:, 0] > box.x0) & (xy[:, 0] < box.x1) & (xy[:, 1] > box.y0) & (xy[:, 1] < box.y1)).sum())
    return n


@pytest.mark.parametrize("plot", [rejection_curves, sic_curves], ids=["rejection", "sic"])
def test_legend_leaves_the_curves_visible(plot):
    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(4000), np.zeros(4000)]
    good = np.r_[rng.normal(2.5, 1, 4000), rng.normal(-2.5, 1, 4000)]  # 1/eps_B ~ 1e2-1e3 at eps_S ~ 0.3
    # three taggers with long legend labels, as notebooks 02 and 04 draw them
    fig = plot({"OmniLearn (fine-tuned PET)": (labels, good), "PET (from scratch)": (labels, good * 0.7 + rng.normal(0, 0.8, 8000)),
                "Particle Flow Network": (labels, good * 0.5 + rng.normal(0, 1.2, 8000))})
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert _points_inside(ax, legend) == 0
