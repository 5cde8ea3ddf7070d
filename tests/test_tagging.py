"""jetlab.tasks (tagging, common helpers, baselines) on small synthetic jets: no generator, no download."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jetlab.data.preprocess import Standardizer
from jetlab.data.schema import JetSet, jet_features_from_particles, sort_and_truncate
from jetlab.model import PET, ModelCard, PETConfig, save
from jetlab.model.mlp import ObservableMLP
from jetlab.model.pfn import ParticleFlowNetwork
from jetlab.physics.metrics import roc_metrics
from jetlab.tasks.checkpoint_resolver import resolve_checkpoint
from jetlab.tasks.common import (
    GroupedModel,
    TaskData,
    TrimmedDataset,
    build_finetune_model,
    build_scratch_model,
    load_task_data,
)
from jetlab.tasks.tagging import MODEL_LABELS, TaggingResults, run_tagging

TINY = dict(projection_dim=16, num_heads=2, num_transformer=1, num_transformer_head=1, num_gen_layers=1, k=4,
            num_local=1, time_embed_dim=8)


def synthetic_jets(n: int, seed: int = 0, p: int = 24) -> JetSet:
    """'Top-like' signal (label 1: wide, many particles) vs 'QCD' (narrow, few): easy to separate."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    mult = np.where(labels == 1, rng.integers(12, p + 1, n), rng.integers(4, 12, n))
    width = np.where(labels == 1, 0.35, 0.1)[:, None]
    mask = np.arange(p)[None, :] < mult[:, None]
    pt = rng.exponential(30.0, (n, p)) + 1.0
    eta = rng.normal(0, 1, (n, p)) * width
    phi = rng.normal(0, 1, (n, p)) * width
    e = pt * np.cosh(eta)
    parts = np.stack([pt, eta, phi, e], -1) * mask[..., None]
    parts, mask = sort_and_truncate(parts, mask, p)
    return JetSet(parts, mask, jet_features_from_particles(parts, mask), labels)


@pytest.fixture(scope="module")
def data() -> TaskData:
    return TaskData("synthetic", synthetic_jets(300, seed=1))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, data):
    """A (randomly initialised) 'pretrained' checkpoint with its own pretraining standardizer."""
    torch.manual_seed(0)
    model = PET(PETConfig(**TINY, num_classes=3))
    std = Standardizer.fit_jetset(synthetic_jets(200, seed=99))
    path = tmp_path_factory.mktemp("ckpt") / "pet"
    save(model, path, ModelCard(training_data="synthetic-pretraining", standardizer=std.to_dict()))
    return path


KW = dict(epochs=2, batch_size=64, lr=3e-3, progress=False, device="cpu")


@pytest.fixture(scope="module")
def results(data, checkpoint) -> TaggingResults:
    return run_tagging(data, checkpoint=checkpoint, fractions=(1.0, 0.25), seeds=(0, 1), **KW)


# ------------------------------------------------------------------------- run_tagging
def test_metrics_in_range_and_all_cells_present(results):
    assert len(results.runs) == 3 * 2 * 2
    assert {(r.model, r.fraction, r.seed) for r in results.runs} == {
        (m, f, s) for m in ("finetuned", "scratch", "pfn") for f in (1.0, 0.25) for s in (0, 1)}
    n_test = len(results.labels)
    assert n_test == 60  # 20% of 300
    for r in results.runs:
        assert r.scores.shape == (n_test,)
        assert np.all((r.scores >= 0) & (r.scores <= 1))
        assert 0.5 < r.metrics["auc"] <= 1.0  # the synthetic classes are easy to separate
        # accuracy counts score > 0.5 as signal, recomputed here by hand on the stored scores
        assert r.metrics["accuracy"] == pytest.approx(np.mean((r.scores > 0.5) == (results.labels == 1)))
        assert r.metrics["rej_at_0.5"] >= r.metrics["rej_at_0.8"] >= 1.0
        # the stored metrics are exactly what the metric function gives on the stored scores
        m = roc_metrics(results.labels, r.scores, results.weights)
        assert r.metrics["auc"] == pytest.approx(m["auc"])
        assert r.metrics["rej_at_0.5"] == pytest.approx(m["rej_at_0.5"])


def test_fraction_sizes_and_shared_test_set(results):
    full = results.select("scratch", 1.0, 0)[0]
    quarter = results.select("scratch", 0.25, 0)[0]
    assert full.n_train == 180 and quarter.n_train == 45
    assert full.n_val == 60 and quarter.n_val == 60  # val scales with the fraction, but keeps >= 100 jets (or all)
    assert results.settings["n_test"] == 60


def test_identical_budgets_for_finetuned_and_scratch(results):
    for frac in (1.0, 0.25):
        for seed in (0, 1):
            ft = results.select("finetuned", frac, seed)[0]
            sc = results.select("scratch", frac, seed)[0]
            a, b = dict(ft.budget), dict(sc.budget)
            assert a.pop("lr_factor") == 5.0 and b.pop("lr_factor") == 1.0  # the fine-tuning recipe only
            assert a == b
            assert a["epochs"] == 2 and a["batch_size"] == 64
            assert ft.n_train == sc.n_train and ft.n_val == sc.n_val
            assert ft.history["epochs"] == sc.history["epochs"] == 2


def test_table_layout_like_table_one(results):
    table = results.table()
    assert table.columns == ["Model", "Training jets", "AUC", "Acc", "1/eps_B @ eps_S=0.5", "1/eps_B @ eps_S=0.8"]
    assert [row[0] for row in table.cells] == ["OmniLearn (fine-tuned PET)"] * 2 + ["PET (from scratch)"] * 2 + \
        ["Particle Flow Network"] * 2
    assert [row[1] for row in table.cells][:2] == ["100% (180)", "25% (45)"]
    assert all("±" in c for row in table.cells for c in row[2:])
    md = str(table)
    assert md.count("\n") == len(table.cells) + 2 + 1  # title line, blank, header, separator, rows


def test_summary_mean_and_spread_over_seeds(results):
    row = next(s for s in results.summary() if s["model"] == "pfn" and s["fraction"] == 1.0)
    aucs = [r.metrics["auc"] for r in results.select("pfn", 1.0)]
    assert row["auc"][0] == pytest.approx(np.mean(aucs))
    assert row["auc"][1] == pytest.approx(np.std(aucs, ddof=1))
    cmp = results.comparison(1.0)
    assert cmp["auc"]["difference"] == pytest.approx(
        next(s for s in results.summary() if s["model"] == "finetuned" and s["fraction"] == 1.0)["auc"][0]
        - next(s for s in results.summary() if s["model"] == "scratch" and s["fraction"] == 1.0)["auc"][0])


def test_json_round_trip(results, tmp_path):
    text = results.to_json(tmp_path / "r.json")
    d = json.loads((tmp_path / "r.json").read_text())
    assert d == json.loads(text)
    assert len(d["runs"]) == 12 and d["n_test"] == 60
    assert {"auc", "accuracy", "rej_at_0.5", "rej_at_0.8", "rej_first_above_0.5"} <= set(d["runs"][0]["metrics"])
    assert "scores" not in d["runs"][0]
    with_scores = json.loads(results.to_json(scores=True))
    assert len(with_scores["runs"][0]["scores"]) == 60 and len(with_scores["test_labels"]) == 60


def test_roc_inputs_and_learning_curve(results):
    curves = results.roc_inputs(fraction=0.25)
    assert set(curves) == {"OmniLearn (fine-tuned PET)", "PET (from scratch)", "Particle Flow Network"}
    lc = results.learning_curve("auc")
    assert list(lc["scratch"]["n_train"]) == [45, 180]


def test_weights_enter_loss_and_metrics_only_when_asked(data, checkpoint):
    """Zero weight on half of the training jets changes the trained model; test metrics are
    unweighted (the reference evaluation) unless weighted_metrics=True."""
    js = data.jets
    w = np.ones(len(js), dtype=np.float32)
    w[: len(js) // 2] = 0.0
    weighted = TaskData("w", JetSet(js.particles, js.mask, js.jets, js.labels, w))
    kw = dict(KW, fractions=(1.0,), seeds=(0,), models=("scratch",), checkpoint="none", model=PETConfig(**TINY))
    plain = run_tagging(data, **kw)
    zeroed = run_tagging(weighted, **kw)
    assert not np.allclose(plain.runs[0].scores, zeroed.runs[0].scores)
    # default: unweighted test metrics, recomputed by hand over every test jet
    r = zeroed.runs[0]
    assert np.all(zeroed.weights == 1.0) and not zeroed.settings["weighted_metrics"]
    assert r.metrics["auc"] == pytest.approx(roc_metrics(zeroed.labels, r.scores)["auc"])
    assert "unweighted test metrics" in zeroed.table().title
    # weighted_metrics=True: zero-weight test jets drop out of every metric
    wm = run_tagging(weighted, **dict(kw, weighted_metrics=True))
    rw = wm.runs[0]
    assert set(np.unique(wm.weights)) == {0.0, 1.0}
    keep = wm.weights > 0
    by_hand = roc_metrics(wm.labels[keep], rw.scores[keep])
    assert rw.metrics["auc"] == pytest.approx(by_hand["auc"])
    assert rw.metrics["accuracy"] == pytest.approx(np.mean((rw.scores[keep] > 0.5) == (wm.labels[keep] == 1)))
    assert wm.settings["weighted_metrics"] is True and "per-jet-weighted test metrics" in wm.table().title


# ------------------------------------------------------------------------- common helpers
def test_resolve_checkpoint_explicit_paths(tmp_path, checkpoint):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        resolve_checkpoint(tmp_path / "does-not-exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a jetlab checkpoint"):
        resolve_checkpoint(tmp_path / "empty")
    assert resolve_checkpoint(checkpoint) == checkpoint
    assert resolve_checkpoint("none") is None


def test_resolve_checkpoint_auto_search_order(tmp_path, checkpoint, monkeypatch, without_shipped_model):
    monkeypatch.setenv("JETLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("JETLAB_CHECKPOINT", raising=False)
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "out" / "02_top_tagging"  # this run's output_dir: notebook 01's sits beside it
    assert resolve_checkpoint("auto", run) is None
    nb01 = tmp_path / "out" / "01_pretraining" / "checkpoint"
    nb01.parent.mkdir(parents=True)
    import shutil

    shutil.copytree(checkpoint, nb01 / "model")  # pretrain() layout: <dir>/model
    assert resolve_checkpoint("auto", run) == nb01 / "model"
    monkeypatch.setenv("JETLAB_CHECKPOINT", str(checkpoint))
    assert resolve_checkpoint("auto", run) == checkpoint
    monkeypatch.setenv("JETLAB_CHECKPOINT", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="JETLAB_CHECKPOINT"):
        resolve_checkpoint("auto")


def test_finetune_uses_pretraining_standardizer_and_same_architecture(checkpoint):
    ft = build_finetune_model(checkpoint, num_classes=1, groups=("kinematics",), input_scaling="pretraining")
    sc = build_scratch_model(checkpoint, num_classes=1, groups=("kinematics",))
    assert ft.config.to_dict() == sc.config.to_dict()
    assert ft.config.num_classes == 1
    assert [tuple(p.shape) for p in ft.parameters()] == [tuple(p.shape) for p in sc.parameters()]
    ref = Standardizer.fit_jetset(synthetic_jets(200, seed=99))
    np.testing.assert_allclose(ft.standardizer.particle_mean, ref.particle_mean, rtol=1e-6)
    assert sc.standardizer is None
    # body weights come from the checkpoint
    from jetlab.model import load

    src = load(checkpoint)
    for k, v in src.body.state_dict().items():
        torch.testing.assert_close(ft.model.body.state_dict()[k], v)


def test_grouped_model_drops_pid_inputs():
    torch.manual_seed(0)
    pet = PET(PETConfig(**TINY, num_classes=1, feature_drop=0.0)).eval()
    x = torch.randn(3, 6, 13)
    mask = torch.ones(3, 6, dtype=torch.bool)
    jets = torch.randn(3, 4)
    g = GroupedModel(pet, ("kinematics",)).eval()
    x0 = x.clone()
    x0[..., 7:] = 0
    torch.testing.assert_close(g(x, mask, jets), pet(x0, mask, jets))
    assert not torch.allclose(g(x, mask, jets), pet(x, mask, jets))


def test_trimmed_dataset_is_padding_invariant(data):
    from jetlab.data.torchdata import JetDataset

    ds = JetDataset(data.jets)
    t = TrimmedDataset(ds)
    b = t.__getitems__([0, 2, 4])  # QCD-like jets: < 12 particles
    assert b["x"].shape[1] == int(ds.tensors["mask"][[0, 2, 4]].sum(1).max()) < ds.tensors["x"].shape[1]
    pet = PET(PETConfig(**TINY, num_classes=1)).eval()
    full = ds.__getitems__([0, 2, 4])
    torch.testing.assert_close(pet(b["x"], b["mask"], b["jets"]), pet(full["x"], full["mask"], full["jets"]),
                               atol=1e-5, rtol=1e-5)


def test_load_task_data_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("JETLAB_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="neither a generator"):
        load_task_data("no-such-dataset", 100)
    with pytest.raises(ValueError, match="pass n_jets"):
        load_task_data("toptag-mini", None)
    with pytest.raises(FileNotFoundError, match=r"(?s)not on disk.*jetlab data fetch atlas_toptag --yes"):
        load_task_data("atlas_toptag", 10)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load_task_data((tmp_path / "missing.h5", tmp_path / "test.h5"))


def test_run_tagging_argument_errors(data):
    with pytest.raises(ValueError, match="unknown model"):
        run_tagging(data, models=("bdt",), checkpoint="none")
    with pytest.raises(ValueError, match="fractions"):
        run_tagging(data, fractions=(0.0,), models=("pfn",), checkpoint="none")
    with pytest.raises(ValueError, match="needs a pretrained checkpoint"):
        run_tagging(data, models=("finetuned",), checkpoint="none")


# ------------------------------------------------------------------------- baselines
def test_pfn_is_permutation_and_padding_invariant():
    torch.manual_seed(0)
    pfn = ParticleFlowNetwork(num_classes=2, phi_sizes=(8, 8), f_sizes=(8,))
    x = torch.randn(2, 5, 13)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = pfn(x, mask, None)
    assert out.shape == (2, 2)
    perm = torch.tensor([2, 0, 1, 3, 4])
    x2 = x.clone()
    x2[0] = x[0, perm]
    x2[0, 3:] = 123.0  # garbage in padded slots is ignored
    torch.testing.assert_close(pfn(x2, mask, None)[0], out[0])
    with pytest.raises(ValueError, match="13 particle features"):
        pfn(torch.randn(2, 5, 7), mask)


def test_observable_mlp_standardization():
    mlp = ObservableMLP(2, hidden=(4,))
    f = np.array([[100.0, 1.0], [300.0, 3.0], [200.0, 2.0]])
    mlp.fit_standardization(f, weights=[1.0, 1.0, 0.0])
    np.testing.assert_allclose(mlp.mean.numpy(), [200.0, 2.0])
    np.testing.assert_allclose(mlp.std.numpy(), [100.0, 1.0])
    assert mlp(torch.tensor(f, dtype=torch.float32)).shape == (3, 1)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        mlp.fit_standardization(np.zeros((3, 3)))


# ------------------------------------------------------------------------- shared toolkit
def test_preset_is_the_one_name_to_config_map():
    assert PETConfig.preset("Tiny", num_classes=3) == PETConfig.tiny(num_classes=3)
    assert PETConfig.preset(PETConfig(**TINY), num_classes=2) == PETConfig(**TINY, num_classes=2)
    assert PETConfig.preset({**TINY, "num_classes": 4}) == PETConfig(**TINY, num_classes=4)
    with pytest.raises(ValueError, match=r"unknown model preset 'huge'.*\['tiny', 'small', 'paper'\]"):
        PETConfig.preset("huge")


def test_build_pet_seeds_scaling_and_weights(checkpoint):
    from jetlab.model import load
    from jetlab.model.factory import build_pet

    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = build_pet(checkpoint, pretrained=False, seed=7)
    b = build_pet(checkpoint, pretrained=False, seed=7)
    assert torch.equal(torch.rand(3), before)  # the global RNG stream is left alone
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.config == PETConfig(**TINY, num_classes=1) and a.standardizer is None and not a.pretrained
    ft = build_pet(checkpoint, seed=0, input_scaling="pretraining")
    src = load(checkpoint)
    for k, v in src.body.state_dict().items():
        torch.testing.assert_close(ft.body.state_dict()[k], v)
    assert ft.classifier.out.weight.abs().sum() == 0 and ft.pretrained
    ref = Standardizer.fit_jetset(synthetic_jets(200, seed=99))  # what the checkpoint fixture stored
    np.testing.assert_allclose(ft.standardizer.jet_mean, ref.jet_mean, rtol=1e-6)
    assert build_pet(checkpoint, input_scaling="task").standardizer is None
    assert build_pet(checkpoint).standardizer is None  # DEFAULT_INPUT_SCALING = "task" (bench_finetune_recipe.py)
    with pytest.raises(ValueError, match="input_scaling must be one of"):
        build_pet(checkpoint, input_scaling="data")


def test_lion_recipe_scales_the_body_weight_decay(checkpoint):
    from jetlab.model.factory import build_pet, finetune_groups

    ft = build_pet(checkpoint, seed=0)
    lion = {g["name"]: g for g in finetune_groups(ft, 1e-3, lr_factor=5.0, weight_decay=0.01, optimizer="lion")}
    adamw = {g["name"]: g for g in finetune_groups(ft, 1e-3, lr_factor=5.0, weight_decay=0.01)}
    assert lion["body"]["lr"] == pytest.approx(2e-4) and lion["heads"]["lr"] == pytest.approx(1e-3)
    assert lion["body"]["weight_decay"] == pytest.approx(0.05) and lion["heads"]["weight_decay"] == pytest.approx(0.01)
    assert adamw["body"]["weight_decay"] == pytest.approx(0.01)
    scratch = {g["name"]: g for g in finetune_groups(build_pet(checkpoint, pretrained=False), 1e-3, optimizer="lion")}
    assert scratch["body"]["lr"] == pytest.approx(1e-3) and scratch["body"]["weight_decay"] == pytest.approx(0.01)


def test_the_recipe_is_checked_once_for_tagging_and_omnifold():
    from jetlab.model.factory import check_recipe
    from jetlab.tasks.omnifold import PETClassifier

    assert check_recipe("Lion", " TASK", 4, "here") == ("lion", "task", 4.0)
    with pytest.raises(ValueError, match=r"here: lr_factor must be > 0, got 0"):
        check_recipe("adamw", "task", 0, "here")
    with pytest.raises(ValueError, match=r"here: optimizer must be one of \['adamw', 'lion'\], got 'sgd'"):
        check_recipe("sgd", "task", 5, "here")
    clf = PETClassifier(pretrained=False, optimizer="LION", input_scaling="Pretraining", lr_factor=2)
    assert (clf.optimizer, clf.input_scaling, clf.lr_factor) == ("lion", "pretraining", 2.0)
    with pytest.raises(ValueError, match=r"PETClassifier: input_scaling must be one of \['pretraining', 'task'\]"):
        PETClassifier(pretrained=False, input_scaling="data")
    with pytest.raises(ValueError, match=r"PETClassifier: lr_factor must be > 0"):
        PETClassifier(pretrained=False, lr_factor=-1.0)


def test_optimizer_and_input_scaling_reach_the_fine_tuning(data, checkpoint, results):
    kw = dict(KW, fractions=(1.0,), seeds=(0,), models=("finetuned",), checkpoint=checkpoint)
    base = results.select("finetuned", 1.0, 0)[0]
    lion = run_tagging(data, optimizer="lion", **kw)
    own = run_tagging(data, input_scaling="pretraining", **kw)  # the non-default scaling
    assert lion.settings["optimizer"] == "lion" and own.settings["input_scaling"] == "pretraining"
    assert results.settings["optimizer"] == "adamw" and results.settings["input_scaling"] == "task"
    for other in (lion, own):
        assert not np.allclose(other.runs[0].scores, base.scores)
        assert 0.5 < other.runs[0].metrics["auc"] <= 1.0
    with pytest.raises(ValueError, match=r"TaggingSettings: optimizer must be one of \['adamw', 'lion'\]"):
        run_tagging(data, optimizer="rmsprop", **kw)
    with pytest.raises(ValueError, match=r"TaggingSettings: lr_factor must be > 0"):
        run_tagging(data, lr_factor=0.0, **kw)


def test_results_plots_and_save(results, tmp_path):
    figs = results.plots()
    assert set(figs) == {"roc_100pct.png", "rejection_100pct.png", "roc_25pct.png", "rejection_25pct.png",
                         "learning_curve_auc.png", "learning_curve_rej_at_0.5.png"}
    # the rejection legend quotes each run's table 1/eps_B (one method: "interp")
    legend = [t.get_text() for t in figs["rejection_100pct.png"].axes[0].get_legend().get_texts()]
    for model in results.models:
        m = results.select(model, 1.0, results.seeds[0])[0].metrics
        line = next(t for t in legend if t.startswith(MODEL_LABELS[model] + " ("))
        assert line.endswith(f": {m['rej_at_0.5']:.1f}, {m['rej_at_0.8']:.1f})"), (line, m)
    written = results.save(tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["metrics"]["auc"] for r in saved["runs"]] == pytest.approx([r.metrics["auc"] for r in results.runs])
    assert saved["finetuned_vs_scratch_at_smallest_fraction"]["auc"]["difference"] == pytest.approx(
        results.comparison(0.25)["auc"]["difference"])
    assert all(written[name].read_bytes()[:4] == b"\x89PNG" for name in figs)
    assert results.comparison_report().count("\n") == 3 and "fine-tuned - scratch" in results.comparison_report()
    assert results.headline_run() is results.select("finetuned", 1.0, 0)[0]
