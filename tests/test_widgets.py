"""Tests for jetlab.widgets: driven programmatically, numbers checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

import jetlab.widgets as jw
from jetlab.data.schema import JetSet, jet_features_from_particles, sort_and_truncate
from jetlab.widgets._base import resolve_mode

# 4 signal, 4 background scores
LABELS = [1, 1, 1, 1, 0, 0, 0, 0]
SCORES = [0.9, 0.7, 0.6, 0.2, 0.8, 0.4, 0.3, 0.1]


def test_mode_selection(monkeypatch):
    monkeypatch.setenv("JETLAB_HEADLESS", "1")
    assert not jw.is_interactive() and resolve_mode("auto") == "static"
    monkeypatch.setenv("JETLAB_HEADLESS", "0")
    assert jw.is_interactive() and resolve_mode("auto") == "widget"
    monkeypatch.delenv("JETLAB_HEADLESS")
    assert not jw.is_interactive()  # pytest is not an IPython kernel
    assert resolve_mode("widget") == "widget" and resolve_mode("static") == "static"
    with pytest.raises(ValueError, match="mode must be one of"):
        resolve_mode("gui")


def test_threshold_explorer_hand_computation():
    explorer = jw.ThresholdExplorer(LABELS, SCORES, mode="static")
    st = explorer.set_threshold(0.5)
    # signal >= 0.5: 0.9 0.7 0.6 -> 3/4; background >= 0.5: 0.8 -> 1/4
    assert st["eps_S"] == 0.75 and st["eps_B"] == 0.25 and st["rejection"] == 4.0
    assert (st["n_signal_pass"], st["n_background_pass"]) == (3, 1)
    st = explorer.set_threshold(0.85)
    assert st["eps_S"] == 0.25 and st["eps_B"] == 0.0 and st["rejection"] == float("inf")
    assert "1/ε<sub>B</sub> = ∞" in explorer.text
    # eps_S = 0.5 needs the two highest signal scores: threshold 0.7
    assert explorer.set_signal_efficiency(0.5) == 0.7 and explorer.state["eps_S"] == 0.5
    assert explorer.set_signal_efficiency(0.6) == 0.6 and explorer.state["eps_S"] == 0.75
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\]"):
        explorer.set_signal_efficiency(1.5)
    assert isinstance(explorer.figure(), Figure)


def test_threshold_explorer_weighted():
    w = [1, 1, 1, 1, 3, 1, 1, 1]  # the background at 0.8 weighs 3 of 6
    st = jw.ThresholdExplorer(LABELS, SCORES, w, threshold=0.5, mode="static").state
    assert st["eps_B"] == pytest.approx(0.5) and st["rejection"] == pytest.approx(2.0)


def test_threshold_widget_slider_updates_text():
    explorer = jw.ThresholdExplorer(LABELS, SCORES, mode="widget")
    box = explorer.widget
    assert box.children[-1].__class__.__name__ == "Output"
    explorer._slider.value = 0.65  # like a user dragging the slider
    assert explorer.threshold == 0.65 and explorer.state["eps_S"] == 0.5
    assert "ε<sub>S</sub> = 0.5000" in explorer._html.value and "1/ε<sub>B</sub> = 4" in explorer._html.value
    explorer.set_threshold(0.35)  # programmatic change moves the slider
    assert explorer._slider.value == pytest.approx(0.35)
    assert isinstance(explorer.last_figure, Figure)


def test_threshold_input_errors():
    with pytest.raises(ValueError, match="labels shape"):
        jw.ThresholdExplorer([1, 0], [0.1, 0.2, 0.3], mode="static")
    with pytest.raises(ValueError, match="need both signal"):
        jw.ThresholdExplorer([0, 0], [0.1, 0.2], mode="static")


def test_training_monitor_accumulates():
    tm = jw.TrainingMonitor(mode="static")
    assert tm.state == {"n_updates": 0}
    tm({"epoch": [1], "train_loss": [1.0], "val_loss": [0.9]})
    # a full history (what a trainer holds) replaces the stored one ...
    tm({"epoch": [1, 2], "train_loss": [1.0, 0.8], "val_loss": [0.9, 0.7], "step_loss": [1.2, 1.1, 0.9]})
    # ... increments and keyword scalars are appended
    tm.update({"epoch": [3], "train_loss": [0.75], "val_loss": [0.72]})
    tm.update(epoch=4, train_loss=0.7, val_loss=0.71)
    assert tm.history["epoch"] == [1, 2, 3, 4]
    assert tm.history["val_loss"] == [0.9, 0.7, 0.72, 0.71]
    st = tm.state
    assert st["n_updates"] == 4 and st["epoch"] == 4 and st["best_val_loss"] == 0.7 and st["best_epoch"] == 2
    fig = tm.figure()
    assert [ax.get_xlabel() for ax in fig.axes] == ["Epoch", "Optimiser step"]
    np.testing.assert_allclose(fig.axes[0].get_lines()[1].get_ydata(), [0.9, 0.7, 0.72, 0.71])


def test_training_monitor_accepts_history_objects():
    class History:
        def __init__(self):
            self.epoch, self.train_loss, self.val_loss, self.name = [1, 2], [0.5, 0.4], [0.6, 0.5], "run"

    tm = jw.TrainingMonitor(mode="widget")
    tm.widget  # noqa: B018 - build it so updates go through the refresh path
    tm(History())
    assert tm.history == {"epoch": [1.0, 2.0], "train_loss": [0.5, 0.4], "val_loss": [0.6, 0.5]}
    assert "val_loss = 0.5" in tm.text
    with pytest.raises(TypeError, match="expected a dict"):
        tm.update(3)


def _jets(n: int = 4, n_part: int = 16) -> JetSet:
    rng = np.random.default_rng(0)
    pt = rng.exponential(20, (n, n_part))
    eta, phi = rng.normal(0, 0.3, (2, n, n_part))
    mask = np.arange(n_part)[None] < np.array([5, 9, 16, 3])[:, None]
    p, mask = sort_and_truncate(np.stack([pt, eta, phi, pt * np.cosh(eta)], -1) * mask[..., None], mask, n_part)
    return JetSet(p, mask, jet_features_from_particles(p, mask), [0, 1, 0, 1])


def test_jet_event_display():
    js = _jets()
    ed = jw.JetEventDisplay(js, label_names=["QCD", "top"], mode="widget")
    ed.widget  # noqa: B018
    ed._slider.value = 2
    st = ed.state
    assert st["index"] == 2 and st["multiplicity"] == 16 and st["label"] == "QCD"
    assert st["pt"] == pytest.approx(float(js.jets[2, 0])) and st["mass"] == pytest.approx(float(js.jets[2, 3]))
    assert f"{js.jets[2, 0]:.1f} GeV" in ed.text
    assert ed.next()["index"] == 3 and ed.next()["index"] == 0 and ed._slider.value == 0
    fig = ed.figure()
    assert "[rad]" in fig.axes[0].get_ylabel() and len(fig.axes[0].collections[0].get_offsets()) == 5
    with pytest.raises(IndexError, match="index 7 out of range for 4 jets"):
        ed.set(7)


def _cutscan_data():
    rng = np.random.default_rng(1)
    n_b, n_s = 30000, 400
    mjj = np.r_[2.3 + rng.exponential(0.6, n_b), rng.normal(3.5, 0.05, n_s)]
    scores = np.r_[rng.random(n_b), 0.95 + 0.05 * rng.random(n_s)]
    labels = np.r_[np.zeros(n_b), np.ones(n_s)]
    return scores, mjj, labels


def test_cutscan_counts_and_significance():
    scores, mjj, labels = _cutscan_data()
    cs = jw.CutScanExplorer(scores, mjj, (3.3, 3.7), ((2.3, 3.3), (3.7, 5.0)), labels=labels, bin_width=0.1, mode="static")
    st = cs.set_efficiency(0.02)
    window = (mjj >= 2.3) & (mjj < 5.0)
    t = np.quantile(scores[window], 0.98)
    sel = window & (scores >= t)
    in_sr = sel & (mjj >= 3.3) & (mjj < 3.7)
    assert st["threshold"] == pytest.approx(t)
    assert st["n_selected"] == sel.sum()
    assert st["n_observed_sr"] == in_sr.sum()
    assert st["n_signal_sr"] == (in_sr & (labels == 1)).sum() and st["n_background_sr"] == (in_sr & (labels == 0)).sum()
    b = st["n_expected_sr"]
    # the sideband fit predicts the background, not the injected signal
    assert abs(b - st["n_background_sr"]) < 4 * np.sqrt(st["n_background_sr"])
    n = st["n_observed_sr"]
    assert st["significance"] == pytest.approx(np.sqrt(2 * (n * np.log(n / b) - (n - b))))
    assert st["significance"] > 5  # the cut uncovers the bump
    fig = cs.figure()
    assert "[TeV]" in fig.axes[1].get_xlabel()


def test_cutscan_background_only_is_not_significant_and_fit_recovers_slope():
    rng = np.random.default_rng(2)
    edges = jw.mass_bins((3.3, 3.7), ((2.3, 3.3), (3.7, 5.0)), 0.1)
    assert 3.3 in np.round(edges, 12) and 3.7 in np.round(edges, 12) and len(edges) == 28
    mjj = 2.3 + rng.exponential(0.5, 50000)
    cs = jw.CutScanExplorer(rng.random(50000), mjj, labels=None, bin_width=0.1, mode="static")
    assert abs(cs.state["significance"]) < 3
    # an exact exponential in the sidebands is reproduced in the SR (noise-free counts)
    centres = 0.5 * (edges[1:] + edges[:-1])
    mu_true = 1000 * np.exp(-(centres - 2.3) / 0.5)
    use = (centres < 3.3) | (centres > 3.7)
    mu_fit, _, _ = jw.fit_sidebands(mu_true, edges, use, degree=1)
    np.testing.assert_allclose(mu_fit, mu_true, rtol=1e-6)


def test_cutscan_widget_and_fit_failure():
    scores, mjj, labels = _cutscan_data()
    cs = jw.CutScanExplorer(scores[:200], mjj[:200], mode="widget")
    cs.widget  # noqa: B018
    cs._slider.value = 0.2  # like a user moving the slider
    assert cs.state["efficiency"] == pytest.approx(0.2) and cs.state["n_selected"] == 40
    st = cs.set_efficiency(0.01)  # 2 events left: too few non-empty sideband bins to fit
    assert not st["fit_ok"] and np.isnan(st["significance"]) and st["n_selected"] == 2
    assert "sideband fit failed" in cs.text
    with pytest.raises(ValueError, match="ordered sb_low < sr < sb_high"):
        jw.CutScanExplorer(scores, mjj, sr=(2.0, 2.5), mode="static")
    with pytest.raises(ValueError, match=r"efficiency must be in \(0, 1\]"):
        cs.set_efficiency(0)


def _unfold_results():
    edges = np.linspace(0, 100, 11)
    c = 0.5 * (edges[1:] + edges[:-1])
    truth, prior = np.exp(-c / 30), np.exp(-c / 20)
    its = [prior + (truth - prior) * (1 - 0.5**k) for k in range(1, 5)]
    return {
        "jet mass": {"bins": edges, "truth": truth, "prior": prior, "iterations": its, "ibu": truth * 1.0},
        "zg": {"bins": np.linspace(0.1, 0.5, 5), "truth": [1, 1, 1, 1], "prior": [2, 1, 1, 0], "iterations": [[1, 1, 1, 1]]},
    }


def _delta(p, q):
    p, q = np.asarray(p) / np.sum(p), np.asarray(q) / np.sum(q)
    return 0.5 * np.sum((p - q) ** 2 / (p + q))


def test_iteration_explorer():
    res = _unfold_results()
    ie = jw.IterationExplorer(res, mode="widget")
    assert ie.state["iteration"] == 4  # starts at the final iteration
    ie.widget  # noqa: B018
    ie._it_dd.value = 1
    st = ie.state
    assert st["delta_unfolded_x1e3"] == pytest.approx(1e3 * _delta(res["jet mass"]["iterations"][0], res["jet mass"]["truth"]))
    assert st["delta_ibu_x1e3"] == pytest.approx(0.0, abs=1e-12)
    # later iterations approach truth
    d = [ie.set(iteration=k)["delta_unfolded_x1e3"] for k in (1, 2, 3, 4)]
    assert d == sorted(d, reverse=True)
    ie._obs_dd.value = "zg"  # only one iteration there: clipped
    assert ie.state["iteration"] == 1 and ie._it_dd.options == (1,)
    assert ie.state["delta_prior_x1e3"] == pytest.approx(1e3 * _delta([2, 1, 1, 0], [1, 1, 1, 1]))
    fig = ie.figure()
    assert "$z_g$" in fig.axes[1].get_xlabel()
    ie.set(observable="jet mass", iteration=2)
    assert "[GeV]" in ie.figure().axes[1].get_xlabel()
    with pytest.raises(ValueError, match=r"iteration must be in 1..4"):
        ie.set(iteration=9)
    with pytest.raises(ValueError, match="lacks 'prior'"):
        jw.IterationExplorer({"m": {"bins": [0, 1], "truth": [1], "iterations": [[1]]}}, mode="static")
    with pytest.raises(ValueError, match=r"expected 10 bin contents"):
        jw.IterationExplorer({"m": {**res["jet mass"], "prior": [1, 2]}}, mode="static")


def test_iteration_explorer_accepts_hist_objects():
    import hist

    h = hist.Hist(hist.axis.Regular(4, 0, 1), storage=hist.storage.Weight())
    h.fill([0.1, 0.1, 0.6, 0.9])
    ie = jw.IterationExplorer({"width": {"bins": np.linspace(0, 1, 5), "truth": [2, 0, 1, 1], "prior": [1, 1, 1, 1], "iterations": [h]}}, mode="static")
    assert ie.state["delta_unfolded_x1e3"] == pytest.approx(0.0)
    assert isinstance(ie.render_static(), Figure)


def test_display_static_mode_shows_figure(monkeypatch):
    shown = []
    monkeypatch.setattr("jetlab.widgets._base._display", shown.append)
    jw.ThresholdExplorer(LABELS, SCORES, mode="static").display()
    explorer = jw.ThresholdExplorer(LABELS, SCORES, mode="widget")
    explorer.display()
    assert isinstance(shown[0], Figure) and shown[1] is explorer.widget


def test_training_monitor_reads_trainer_history_updates():
    # the shape jetlab.train's LiveLossPlot sends: {"kind", "info", "history"} with History rows
    class History:
        def __init__(self):
            self.steps = [{"step": 1, "epoch": 1, "loss": 1.0}, {"step": 2, "epoch": 1, "loss": 0.9}]
            self.epochs = [{"epoch": 1, "train_loss": 0.95, "val_loss": None}]

    h = History()
    tm = jw.TrainingMonitor(mode="static")
    tm({"kind": "step", "info": {}, "history": h})
    h.epochs.append({"epoch": 2, "train_loss": 0.8, "val_loss": 0.7})
    h.steps.append({"step": 3, "epoch": 2, "loss": 0.8})
    tm({"kind": "epoch", "info": {}, "history": h})
    assert tm.history["epoch"] == [1, 2] and tm.history["step_loss"] == [1.0, 0.9, 0.8]
    assert np.isnan(tm.history["val_loss"][0]) and tm.state["best_val_loss"] == 0.7 and tm.state["best_epoch"] == 2
    assert isinstance(tm.figure(), Figure)


def test_iteration_explorer_integrates_over_unequal_bins():
    """On unequal bins the Δ is 0.5 * integral (p - q)^2 / (p + q) dx over the densities the widget
    draws (np.histogram(density=True), by hand); the same sum without the widths is different."""
    rng = np.random.default_rng(5)
    edges = np.array([0.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0])
    truth_x, unf_x, prior_x = rng.exponential(30, 4000), rng.exponential(36, 3000), rng.exponential(50, 5000)
    counts = {k: np.histogram(v, edges)[0] for k, v in (("truth", truth_x), ("unf", unf_x), ("prior", prior_x))}
    ie = jw.IterationExplorer({"jet mass": {"bins": edges, "truth": counts["truth"], "prior": counts["prior"],
                                            "iterations": [counts["unf"]]}}, mode="static")
    widths = np.diff(edges)
    pt = np.histogram(truth_x, edges, density=True)[0]
    for key, x in (("delta_unfolded_x1e3", unf_x), ("delta_prior_x1e3", prior_x)):
        p = np.histogram(x, edges, density=True)[0]
        by_hand = 1e3 * 0.5 * np.sum(widths * (p - pt) ** 2 / (p + pt))
        assert ie.state[key] == pytest.approx(by_hand, rel=1e-10)
        without_widths = 1e3 * 0.5 * np.sum((p / p.sum() - pt / pt.sum()) ** 2 / (p / p.sum() + pt / pt.sum()))
        assert abs(ie.state[key] - without_widths) > 0.1 * by_hand
    with pytest.raises(ValueError, match=r"\['truth'\] has no positive content"):
        jw.IterationExplorer({"m": {"bins": [0, 1, 3], "truth": [0, 0], "prior": [1, 1], "iterations": [[1, 1]]}},
                             mode="static")


def test_threshold_explorer_points_lie_on_the_roc():
    """At every ROC threshold the explorer's (eps_B, eps_S) is sklearn's (fpr, tpr), weighted."""
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(2)
    labels = np.r_[np.zeros(60, int), np.ones(40, int)]
    scores = np.r_[rng.normal(0, 1, 60), rng.normal(1, 1, 40)]
    w = rng.uniform(0.5, 2, 100)
    fpr, tpr, thr = roc_curve(labels, scores, sample_weight=w, drop_intermediate=False)
    explorer = jw.ThresholdExplorer(labels, scores, w, mode="static")
    for f, t, cut in list(zip(fpr, tpr, thr))[1::7]:
        st = explorer.set_threshold(cut)
        assert (st["eps_B"], st["eps_S"]) == pytest.approx((f, t), abs=1e-12)
