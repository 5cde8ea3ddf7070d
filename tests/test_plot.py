"""Tests for jetlab.plot: every figure has labelled axes with units and saves a real PNG."""

from __future__ import annotations

import os

import numpy as np
import pytest
from matplotlib.figure import Figure

import jetlab.plot as jp
from jetlab.data.schema import JetSet, jet_features_from_particles, sort_and_truncate
from jetlab.physics import metrics
from jetlab.plot._numeric import asimov_significance

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_jets(n: int, seed: int, n_part: int = 24) -> JetSet:
    rng = np.random.default_rng(seed)
    pt = rng.exponential(20.0, (n, n_part))
    eta = rng.normal(0.0, 0.3, (n, n_part))
    phi = rng.normal(0.0, 0.3, (n, n_part))
    mult = rng.integers(3, n_part, n)
    mask = np.arange(n_part)[None] < mult[:, None]
    p = np.stack([pt, eta, phi, pt * np.cosh(eta)], -1) * mask[..., None]
    p, mask = sort_and_truncate(p, mask, n_part)
    return JetSet(p, mask, jet_features_from_particles(p, mask), rng.integers(0, 2, n))


def saved_png(fig: Figure, tmp_path, name: str) -> bytes:
    path = jp.save_figure(fig, tmp_path / name, dpi=60)
    assert path == tmp_path / name
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]  # atomic: no leftovers
    return data


def test_compare_hist_density_ratio_and_png(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(100, 20, 4000), rng.normal(105, 20, 3000)
    fig = jp.compare_hist({"Pythia": a, "Herwig": b}, bins=np.linspace(0, 200, 41), xlabel="Jet mass [GeV]")
    main, ratio = fig.axes
    assert "[GeV]" in ratio.get_xlabel()
    assert main.get_ylabel() == "Normalised entries" and ratio.get_ylabel() == "Ratio"
    # the drawn histograms integrate to one (density) over the bin range
    steps = [p for p in main.patches if hasattr(p, "get_data")]
    assert len(steps) == 2
    for st in steps:
        values, edges = st.get_data().values, st.get_data().edges
        assert np.sum(values * np.diff(edges)) == pytest.approx(1.0, rel=1e-9)
    # reference is the first sample, marked in the legend
    labels = [t.get_text() for t in main.get_legend().get_texts()]
    assert labels == ["Pythia (ref.)", "Herwig"]
    saved_png(fig, tmp_path, "compare.png")


def test_compare_hist_weights_counts_and_errors():
    fig = jp.compare_hist(
        {"x": [0.5, 1.5, 1.5]},
        bins=[0, 1, 2],
        weights={"x": [2.0, 1.0, 3.0]},
        density=False,
        ratio=False,
        xlabel="Particle $p_T$ [GeV]",
    )
    (ax,) = fig.axes
    st = [p for p in ax.patches if hasattr(p, "get_data")][0]
    np.testing.assert_allclose(st.get_data().values, [2.0, 4.0])
    assert ax.get_ylabel() == "Entries" and "[GeV]" in ax.get_xlabel()


def test_compare_hist_errors_name_the_parameter():
    with pytest.raises(ValueError, match="reference 'nope'"):
        jp.compare_hist({"a": [1, 2]}, reference="nope")
    with pytest.raises(ValueError, match=r"weights\['a'\] has 1 entries, expected 2"):
        jp.compare_hist({"a": [1, 2]}, weights={"a": [1.0]})
    with pytest.raises(ValueError, match="increasing bin edges"):
        jp.compare_hist({"a": [1, 2]}, bins=[0, 2, 1])


def test_compare_jets_grid(tmp_path):
    real, gen = make_jets(200, 1), make_jets(200, 2)
    fig = jp.compare_jets(real, gen)
    # 5 observables x (main + ratio)
    assert len(fig.axes) == 10
    xlabels = [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()]
    assert any("Particle $p_{T}$ [GeV]" == x for x in xlabels)
    assert "Jet mass [GeV]" in xlabels and "Particle $\\phi$ [rad]" in xlabels
    saved_png(fig, tmp_path, "jets.png")
    with pytest.raises(ValueError, match="unknown observables \\['tau42'\\]"):
        jp.compare_jets(real, gen, observables=("tau42",))


def test_jet_observables_match_hand_computation():
    js = make_jets(30, 3)
    mult, w = jp.JET_OBSERVABLES["multiplicity"][0](js)
    np.testing.assert_array_equal(mult, js.mask.sum(1))
    mass, _ = jp.JET_OBSERVABLES["jet mass"][0](js)
    np.testing.assert_allclose(mass, js.jets[:, 3], rtol=1e-5)
    pt, pw = jp.JET_OBSERVABLES["particle pt"][0](js)
    assert len(pt) == js.mask.sum() == len(pw)
    dphi, _ = jp.JET_OBSERVABLES["particle dphi"][0](js)
    assert np.all(np.abs(dphi) <= np.pi)


def test_roc_rejection_sic_curves(tmp_path):
    rng = np.random.default_rng(4)
    labels = np.r_[np.ones(1000), np.zeros(1000)]
    scores = np.r_[rng.normal(1, 1, 1000), rng.normal(-1, 1, 1000)]
    results = {"PET": (labels, scores, None), "Random": (labels, rng.random(2000))}
    fig = jp.roc_curves(results)
    ax = fig.axes[0]
    assert "efficiency" in ax.get_xlabel() and "efficiency" in ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("PET (AUC = 0.9")  # separation of 2 sigma: AUC ~ 0.92
    saved_png(fig, tmp_path, "roc.png")
    fig = jp.rejection_curves(results)
    assert fig.axes[0].get_yscale() == "log" and "1/" in fig.axes[0].get_ylabel()
    saved_png(fig, tmp_path, "rej.png")
    fig = jp.sic_curves(results)
    assert "SIC" in fig.axes[0].get_ylabel()
    saved_png(fig, tmp_path, "sic.png")


# 4 signal, 4 background ordered S S B S B S B B: ROC corners (fpr, tpr) (0, .5), (.25, .5),
# (.25, .75), (.5, .75), (.5, 1), (1, 1)
HAND_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])
HAND_SCORES = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1])


def _legend(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_curves_draw_the_metrics_core_numbers_by_hand():
    """Curves, AUC, 1/eps_B and max SIC in the figures equal hand values and the metrics core's."""
    results = {"tagger": (HAND_LABELS, HAND_SCORES)}
    line = jp.roc_curves(results).axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [0, 0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(line.get_ydata(), [0, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0, 1.0])
    assert _legend(jp.roc_curves(results))[0] == "tagger (AUC = 0.812)"  # 13 of 16 pairs ordered: 0.8125
    # 1/eps_B at eps_S = 0.6: fpr interpolated between the points (tpr .5, fpr 0) and (.75, .25)
    # -> 0.1 -> 10; at 0.8 between (.75, .25) and (1, .5) -> 0.3 -> 3.3 (the table's "interp")
    assert "10.0, 3.3)" in _legend(jp.rejection_curves(results, working_points=(0.6, 0.8)))[0]
    # the OmniLearn convention on request: first point with tpr > eps_S: fpr .25 and .5
    assert "4.0, 2.0)" in _legend(jp.rejection_curves(results, working_points=(0.6, 0.8), method="first_above"))[0]
    # SIC over fpr > 1e-4: tpr/sqrt(fpr) at the corners, best .75/sqrt(.25) = 1.5
    sic = jp.sic_curves(results).axes[0].get_lines()[0]
    np.testing.assert_allclose(sic.get_xdata(), [0.5, 0.75, 0.75, 1.0, 1.0, 1.0])
    assert "max SIC = 1.50" in _legend(jp.sic_curves(results))[0]
    # >= 3 background events above the cut: only fpr >= .75 is left, best 1/sqrt(.75) = 1.15
    assert "max SIC = 1.15" in _legend(jp.sic_curves(results, min_background_events=3))[0]
    assert metrics.max_sic(HAND_LABELS, HAND_SCORES, min_background_events=3) == pytest.approx(1 / np.sqrt(0.75))


def test_rejection_legend_equals_the_tagging_table_on_random_scores():
    """Notebook 02's figure and table quote one 1/eps_B: the legend equals roc_metrics (the table's
    function) and an independent interpolation on sklearn's ROC."""
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(11)
    labels = np.r_[np.zeros(700, int), np.ones(500, int)]
    scores = np.r_[rng.normal(0, 1, 700), rng.normal(1.3, 1, 500)]
    weights = rng.uniform(0.5, 2.0, 1200)
    fpr, tpr, _ = roc_curve(labels, scores, sample_weight=weights, drop_intermediate=False)
    by_hand = []
    for e in (0.5, 0.8):
        i = int(np.argmax(tpr >= e))  # first point at or above eps_S
        j = int(np.argmax(tpr == tpr[i - 1]))  # first (lowest-fpr) point of the tpr just below it
        by_hand.append(1 / (fpr[j] + (e - tpr[j]) * (fpr[i] - fpr[j]) / (tpr[i] - tpr[j])))
    table = metrics.roc_metrics(labels, scores, weights, method="interp")
    assert [table["rej_at_0.5"], table["rej_at_0.8"]] == pytest.approx(by_hand, rel=1e-9)
    text = _legend(jp.rejection_curves({"PET": (labels, scores, weights)}))[0]
    assert text.endswith(f"{by_hand[0]:.1f}, {by_hand[1]:.1f})")
    line = jp.roc_curves({"PET": (labels, scores, weights)}).axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), fpr)
    np.testing.assert_allclose(line.get_ydata(), tpr)
    with pytest.raises(ValueError, match="need both signal"):
        jp.roc_curves({"x": ([1, 1], [0.1, 0.2])})


def test_loss_curves_and_errors(tmp_path):
    hist = {
        "OmniLearn": {"epoch": [1, 2, 3], "train_loss": [0.5, 0.4, 0.35], "val_loss": [0.45, 0.4, 0.38]},
        "Scratch": {"epoch": [1, 2, 3], "train_loss": [0.7, 0.6, 0.5], "val_loss": [0.66, 0.58, 0.5]},
    }
    fig = jp.loss_curves(hist)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Epoch" and ax.get_ylabel() == "Loss"
    assert len(ax.get_lines()) == 4
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.45, 0.4, 0.38])
    saved_png(fig, tmp_path, "loss.png")
    with pytest.raises(ValueError, match="'epoch' has 2 entries but 'val_loss' has 3"):
        jp.loss_curves({"x": {"epoch": [1, 2], "val_loss": [1, 2, 3]}})
    # a mean over seeds with its spread: a band from mean - std to mean + std
    band = jp.loss_curves(
        {"mean": {"epoch": [0, 1, 2], "val_loss": [0.7, 0.6, 0.5], "val_loss_std": [0.0, 0.1, 0.05]}}, train=False
    )
    (poly,) = band.axes[0].collections
    ys = poly.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(0.45) and ys.max() == pytest.approx(0.7)
    with pytest.raises(ValueError, match="'val_loss_std' has 2 entries but 'val_loss' has 3"):
        jp.loss_curves({"x": {"epoch": [1, 2, 3], "val_loss": [1, 2, 3], "val_loss_std": [0, 1]}})


def test_confusion_matrix(tmp_path):
    labels = [0, 0, 1, 1, 2, 2]
    pred = np.array([[0.9, 0.1, 0], [0.1, 0.8, 0.1], [0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    fig = jp.confusion_matrix(labels, pred, ["QCD", "W", "top"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Predicted class" and ax.get_ylabel() == "True class"
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.5, 0.5, 0], [0, 1, 0], [0.5, 0, 0.5]])
    saved_png(fig, tmp_path, "cm.png")
    with pytest.raises(ValueError, match=r"outside \[0, 2\]"):
        jp.confusion_matrix([0, 3], [0, 1], ["a", "b", "c"])


def test_mjj_spectrum(tmp_path):
    rng = np.random.default_rng(5)
    mjj = 2.3 + rng.exponential(0.6, 5000)
    fig = jp.mjj_spectrum(mjj, cut_masks={"top 10%": rng.random(5000) < 0.1})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Dijet mass $m_{jj}$ [TeV]" and ax.get_yscale() == "log"
    assert {"Signal region", "Sidebands", "All events", "top 10%"} <= {
        t.get_text() for t in ax.get_legend().get_texts()
    }
    saved_png(fig, tmp_path, "mjj.png")
    with pytest.raises(ValueError, match="sr="):
        jp.mjj_spectrum(mjj, sr=(2.0, 2.5))


def test_jet_image(tmp_path):
    js = make_jets(2, 6)
    fig = jp.jet_image(js.particles[0], js.mask[0], title="jet 0")
    ax, cbar = fig.axes
    assert "[rad]" in ax.get_ylabel() and "[GeV]" in cbar.get_ylabel()
    offsets = ax.collections[0].get_offsets()
    assert len(offsets) == js.mask[0].sum()
    sizes = ax.collections[0].get_sizes()
    pt = js.particles[0, js.mask[0], 0]
    np.testing.assert_allclose(sizes / sizes.max(), pt / pt.max(), rtol=1e-6)  # area ~ pT
    saved_png(fig, tmp_path, "image.png")
    with pytest.raises(ValueError, match=r"\(P, >=3\)"):
        jp.jet_image(np.zeros((3, 2)))


def test_results_table_markdown_and_html():
    rows = [
        {"Model": "PET", "AUC": 0.959, "1/eps_B": (146.5, 3.2)},
        {"Model": "OmniLearn <new>", "AUC": 0.961, "1/eps_B": None},
    ]
    t = jp.results_table(rows, highlight={"AUC": "max"}, formats={"1/eps_B": ".1f"})
    md = str(t).splitlines()
    assert md[0].split("|")[1].strip() == "Model"
    assert "146.5 ± 3.2" in md[2] and "**0.961**" in md[3] and "–" in md[3]
    html = t.to_html()
    assert "<b>0.961</b>" in html and "OmniLearn &lt;new&gt;" in html and html.startswith("<table")
    assert t._repr_html_() == html
    with pytest.raises(ValueError, match="unknown columns \\['ACC'\\]"):
        jp.results_table(rows, highlight={"ACC": "max"})
    with pytest.raises(ValueError, match="sequence rows need columns"):
        jp.results_table([[1, 2]])


def test_numeric_helpers():
    # Z for n = 20 observed over b = 10: sqrt(2 (20 ln 2 - 10))
    assert asimov_significance(20, 10) == pytest.approx(np.sqrt(2 * (20 * np.log(2) - 10)))
    assert asimov_significance(5, 10) < 0 and asimov_significance(10, 10) == 0.0


def test_style_and_save_figure(tmp_path):
    import matplotlib as mpl

    before = mpl.rcParams["font.size"]
    with jp.style():
        assert mpl.rcParams["xtick.direction"] == "in"
    assert mpl.rcParams["font.size"] == before
    with pytest.raises(TypeError, match="expected a matplotlib Figure"):
        jp.save_figure("not a figure", tmp_path / "x.png")
    fig = jp.roc_curves({"a": ([0, 1, 0, 1], [0.1, 0.9, 0.3, 0.6])})
    path = jp.save_figure(fig, tmp_path / "sub" / "roc")
    assert path.suffix == ".png" and path.read_bytes().startswith(PNG_MAGIC)


def test_curves_reject_fpr_tpr_passed_as_labels_scores():
    from jetlab.plot import sic_curves

    fpr = np.linspace(0, 1, 50)
    with pytest.raises(ValueError, match=r"labels must hold two classes .* pass \(labels, scores\), not \(fpr, tpr\)"):
        sic_curves({"oops": (fpr, fpr**0.5)})


def _bold_cells(table) -> set[tuple[str, str]]:
    """(first cell of the row, column) of every bold cell, read back from the markdown."""
    lines = [line for line in str(table).splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    out = set()
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out |= {(cells[0].strip("*"), header[j]) for j, c in enumerate(cells) if c.startswith("**")}
    return out


def _tagging_results(metrics: dict[tuple[str, float], list[tuple[float, float, float, float]]]):
    """A hand-made TaggingResults: ``metrics[(model, fraction)]`` = one (auc, acc, rej0.5, rej0.8) per seed."""
    from jetlab.tasks.tagging.results import TaggingResults, TaggingRun

    runs = [
        TaggingRun(
            model=model,
            fraction=fraction,
            seed=seed,
            n_train=int(1800 * fraction),
            n_val=200,
            metrics=dict(zip(("auc", "accuracy", "rej_at_0.5", "rej_at_0.8"), values)),
            budget={},
            history={},
            seconds=1.0,
        )
        for (model, fraction), per_seed in metrics.items()
        for seed, values in enumerate(per_seed)
    ]
    return TaggingResults(runs=runs, labels=np.zeros(4), weights=np.ones(4), dataset="hand-made")


def test_tagging_table_bolds_the_best_model_at_each_training_size():
    # Notebook 02's table compares models trained on the same jets: per training fraction and metric
    # column, the highest mean is bold (higher AUC, accuracy and background rejection are better).
    # The best 10% cell here is below every 100% cell, so a single best per column (the old rule)
    # would leave the 10% rows without bold.
    res = _tagging_results(
        {
            ("finetuned", 1.0): [(0.950, 0.900, 30.0, 12.0), (0.948, 0.898, 28.0, 12.0)],  # means .949 .899 29 12
            ("scratch", 1.0): [(0.940, 0.905, 20.0, 14.0), (0.938, 0.903, 22.0, 14.0)],  # .939 .904 21 14
            ("finetuned", 0.1): [(0.930, 0.850, 15.0, 8.0), (0.932, 0.852, 15.0, 8.0)],  # .931 .851 15 8
            ("scratch", 0.1): [(0.920, 0.860, 16.0, 7.0), (0.922, 0.862, 18.0, 7.0)],  # .921 .861 17 7
        }
    )
    table = res.table()
    bold = {
        (row[0], row[1].split()[0], table.columns[j])
        for i, row in enumerate(table.cells)
        for (r, j) in table.bold
        if r == i
    }
    assert {(row[0], row[1].split()[0]) for row in table.cells} == {
        ("OmniLearn (fine-tuned PET)", "100%"),
        ("OmniLearn (fine-tuned PET)", "10%"),
        ("PET (from scratch)", "100%"),
        ("PET (from scratch)", "10%"),
    }
    fine, scratch = "OmniLearn (fine-tuned PET)", "PET (from scratch)"
    assert bold == {
        (fine, "100%", "AUC"),
        (scratch, "100%", "Acc"),
        (fine, "100%", "1/eps_B @ eps_S=0.5"),
        (scratch, "100%", "1/eps_B @ eps_S=0.8"),
        (fine, "10%", "AUC"),
        (scratch, "10%", "Acc"),
        (scratch, "10%", "1/eps_B @ eps_S=0.5"),
        (fine, "10%", "1/eps_B @ eps_S=0.8"),
    }


def test_results_table_ties_on_the_printed_value_are_all_bold():
    # 0.91441 and 0.91436 both print as 0.9144: a reader sees a tie, so both are bold.
    rows = [{"m": "a", "Acc": 0.91441}, {"m": "b", "Acc": 0.91436}, {"m": "c", "Acc": 0.9100}]
    t = jp.results_table(rows, highlight={"Acc": "max"}, formats={"Acc": ".4f"})
    assert _bold_cells(t) == {("a", "Acc"), ("b", "Acc")}


def _unfolding_results(td: dict[str, dict[str, float]]):
    """OmniFoldResults around a hand-made UnfoldingSummary (``td[method][observable]``, spread 1.0)."""
    from jetlab.tasks.omnifold.evaluation import UnfoldingSummary
    from jetlab.tasks.omnifold.results import OmniFoldResults

    methods = list(td)
    observables = tuple(next(iter(td.values())))
    summary = UnfoldingSummary(
        observables=observables,
        bins={},
        methods=methods,
        td={m: {o: (v, 1.0) for o, v in td[m].items()} for m in methods},
        nominal={m: dict(td[m]) for m in methods},
        per_iteration={},
        hists={},
    )
    return OmniFoldResults(runs={}, summary=summary, study=None, observables={})


def test_unfolding_table_bolds_the_best_method_per_observable():
    # Notebook 03's stored values (TD x10^3): the lowest TD among the unfolding methods of each
    # observable is bold; the prior is the reference, never bold, and where no method gets below it
    # (z_g) nothing is. The old rule bolded each column's smallest value (the width row throughout).
    res = _unfolding_results(
        {
            "IBU": {"mass": 6.64, "width": 0.79, "log_rho": 3.48, "tau21": 4.98, "zg": 4.38},
            "OmniFold-pretrained": {"mass": 10.92, "width": 2.67, "log_rho": 24.43, "tau21": 20.54, "zg": 4.50},
            "OmniFold-scratch": {"mass": 8.33, "width": 3.83, "log_rho": 26.20, "tau21": 25.82, "zg": 5.64},
            "OmniFold-mlp": {"mass": 7.17, "width": 4.04, "log_rho": 2.10, "tau21": 8.50, "zg": 5.02},
            "prior": {"mass": 75.31, "width": 75.60, "log_rho": 67.23, "tau21": 42.06, "zg": 3.87},
        }
    )
    assert _bold_cells(res.table()) == {
        ("mass", "IBU"),
        ("width", "IBU"),
        ("log_rho", "OmniFold-mlp"),
        ("tau21", "IBU"),
    }
