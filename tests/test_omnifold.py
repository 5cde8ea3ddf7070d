"""OmniFold on zjets-mini (small scale), weighted histograms, splits, convergence, parallel runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jetlab.data.cache import dataset_file
from jetlab.data.schema import JetSet, read_jetsets
from jetlab.physics import compute_observables
from jetlab.tasks.omnifold import (
    ConvergenceStudy,
    OmniFoldResult,
    PETClassifier,
    convergence_ratio,
    epochs_to_reach,
    make_classifier,
    omnifold,
    step1_curves,
    unfold_observables,
    weighted_histogram,
)
from jetlab.tasks.omnifold.algorithm import _WeightedRows
from jetlab.tasks.parallel import bootstrap_weights, run_parallel

N_JETS = 1000
OBS = ("mass", "multiplicity", "width", "log_rho", "tau21", "zg")


@pytest.fixture(scope="module")
def zjets() -> dict[str, JetSet]:
    return read_jetsets(dataset_file("zjets-mini", N_JETS, seed=0, progress=False))


@pytest.fixture(scope="module")
def observables(zjets) -> dict[str, dict[str, np.ndarray]]:
    return {k: compute_observables(v, OBS) for k, v in zjets.items()}


def _stress_weights(obs_gen: dict[str, np.ndarray]) -> np.ndarray:
    """A known, smooth particle-level reweighting of the 'data' setup (towards wide, high-multiplicity
    jets with a low tau21 and a high z_g): it makes the sim -> truth shift resolvable in every one of
    the six observables with 1000 events. Without the tau21 and z_g terms those two differ little
    (prior TD x10^3 25 and 12) and the MLP's unfolding of them at 1000 events is noise (59-83 and 11-21)."""
    z = lambda v: (v - v.mean()) / v.std()  # noqa: E731
    log_w = 0.6 * z(obs_gen["multiplicity"].astype(float)) + 0.4 * z(obs_gen["width"])
    log_w += -0.6 * z(obs_gen["tau21"]) + 0.6 * z(obs_gen["zg"])
    return np.exp(np.clip(log_w, -3, 3))


def _range_bins(*samples: np.ndarray, n: int = 10) -> np.ndarray:
    """``n`` equal bins over the 1st-99th percentile of the samples together (the reference bins
    equally over a fixed range; quantile bins of the truth left IBU's response with near-empty
    simulated bins and IBU above the prior)."""
    return np.linspace(*np.percentile(np.concatenate(samples), [1, 99]), n + 1)


#: observables the jet mass and multiplicity carry most of (the MLP unfolds them to < 0.3 of the prior);
#: tau21 and z_g, the weakest, are held to < 0.5 of the prior (measured below)
STRONG = ("mass", "multiplicity", "width", "log_rho")


def test_unfolded_moves_toward_truth_for_every_observable(observables, test_seed, measured):
    """TD(unfolded, truth) well below TD(prior, truth) for all six observables (MLP classifier), and
    IBU below the prior for all six.

    Measured with these stress weights, seeds 0-4, on zjets-mini with and without its z_g stress test
    (10 runs; unfolded / prior TD): mass 0.08-0.15, multiplicity 0.08-0.17, width 0.04-0.14, log rho
    0.02-0.11, tau21 0.18-0.35, z_g 0.16-0.35; prior TD x10^3 at least 59 (z_g) and 101 (tau21)."""
    sim_gen, sim_reco = observables["sim_gen"], observables["sim_reco"]
    truth_w = _stress_weights(observables["data_gen"])  # the same per-event weights at both levels
    result = omnifold(sim_gen, sim_reco, observables["data_reco"], classifier_factory="mlp", data_weights=truth_w,
                      n_iterations=2, epochs=6, batch_size=200, early_stopping_patience=3, seed=test_seed,
                      progress=False)
    bins = {o: _range_bins(sim_gen[o], observables["data_gen"][o]) for o in OBS}
    summary = unfold_observables(result, sim_gen, observables["data_gen"], OBS, bins, sim_reco=sim_reco,
                                 data_reco=observables["data_reco"], truth_weights=truth_w, data_weights=truth_w,
                                 n_bootstrap=5)
    prior = summary.nominal["prior"]
    unfolded = summary.nominal["OmniFold-mlp"]
    for o in OBS:
        measured(f"{o} TD unfolded", unfolded[o])
        measured(f"{o} TD prior", prior[o])
    assert summary.methods == ["IBU", "OmniFold-mlp", "prior"]
    for o in OBS:
        assert summary.nominal["IBU"][o] < 0.8 * prior[o], f"{o}: IBU TD {summary.nominal['IBU'][o]:.2f} vs prior {prior[o]:.2f}"
    for o in OBS:
        assert prior[o] > 40.0, f"{o}: the test needs a large sim/truth difference, prior TD {prior[o]:.2f}"
        bound = 0.3 if o in STRONG else 0.5
        assert unfolded[o] < bound * prior[o], f"{o}: unfolded TD {unfolded[o]:.2f} vs prior {prior[o]:.2f}"
    moved = summary.moved_toward_truth("OmniFold-mlp")
    assert moved == {o: True for o in OBS}
    # weights: positive, finite, one per simulated event; pulls and pushes per iteration
    assert len(result.push_weights) == len(result.pull_weights) == 2
    for w in result.push_weights + result.pull_weights:
        assert w.shape == (N_JETS,) and np.all(np.isfinite(w)) and np.all(w > 0)
    # table / widget layouts
    table = summary.table()
    assert list(table.index) == list(OBS) and list(table.columns) == summary.methods
    ex = summary.explorer_results("OmniFold-mlp")
    assert set(ex) == set(OBS) and len(ex["mass"]["iterations"]) == 2 and "ibu" in ex["mass"]
    assert summary.per_iteration["OmniFold-mlp"]["width"].shape == (2,)


def test_splits_are_disjoint_and_histories_recorded(observables):
    result = omnifold(observables["sim_gen"], observables["sim_reco"], observables["data_reco"],
                      classifier_factory=make_classifier("mlp"), n_iterations=2, epochs=2, batch_size=250,
                      early_stopping_patience=None, validation_fraction=0.25, seed=3, progress=False)
    s = result.splits
    assert len(np.intersect1d(s["sim_train"], s["sim_val"])) == 0
    assert len(np.intersect1d(s["data_train"], s["data_val"])) == 0
    assert len(s["sim_train"]) + len(s["sim_val"]) == N_JETS and len(s["sim_val"]) == 250
    h = result.histories
    assert [list(x) for x in h] == [["step1", "step2"]] * 2
    assert h[0]["step1"]["epoch"] == [1, 2] and len(h[0]["step1"]["val_loss"]) == 2
    assert not h[0]["step1"]["warm_start"] and h[1]["step1"]["warm_start"]
    assert h[1]["step1"]["lr"] == pytest.approx(h[0]["step1"]["lr"] / 5)
    curve = h[0]["step1"]["curve"]
    assert curve[0][0] == 0.0 and curve[-1][0] == pytest.approx(2.0) and len(curve) == 5  # 0, 0.5, 1, 1.5, 2
    assert result.epochs_to_best[0]["step1"] in (1, 2)
    # step 1 learns data from sim: best validation loss below chance (ln 2 = 0.6931) by a margin.
    # Measured (seeds 0-5, this setting): 0.670-0.683; with data = sim (no difference to learn):
    # 0.6932-0.6948 (seeds 0-2). The bound 0.688 sits between the two.
    assert 0.6 < h[0]["step1"]["best_val_loss"] < 0.688
    chance = omnifold(observables["sim_gen"], observables["sim_reco"], observables["sim_reco"],
                      classifier_factory=make_classifier("mlp"), n_iterations=1, epochs=2, batch_size=250,
                      early_stopping_patience=None, validation_fraction=0.25, seed=3, progress=False)
    assert chance.histories[0]["step1"]["best_val_loss"] > 0.688  # the bound fails when there is nothing to learn


def test_step2_starts_from_the_step1_model(observables):
    """Both steps learn the same log ratio, at detector and at particle level. With the detector
    switched off (sim_reco = sim_gen) and step 2 not trained (warm_lr = 0), step 2's copy of the
    step-1 model must give push weights equal to the pull weights. A fresh step-2 model
    (step2_init="previous") learns its own ratio, so the same check fails for it."""
    og, truth = observables["sim_gen"], observables["data_gen"]
    kw = dict(classifier_factory=make_classifier("mlp"), n_iterations=1, epochs=2, batch_size=250, warm_lr=0.0,
              early_stopping_patience=None, seed=0, progress=False)
    copied = omnifold(og, og, truth, **kw)
    assert copied.histories[0]["step2"]["warm_start"] and copied.config["step2_init"] == "step1"
    pull = copied.pull_weights[0]
    # step 1 learned something (sd of log pull 0.068-0.117 over seeds 0-2), so the equality is not trivial
    assert np.std(np.log(pull)) > 0.04
    np.testing.assert_allclose(copied.push_weights[0], pull, rtol=1e-5)
    fresh = omnifold(og, og, truth, step2_init="previous", **kw)
    np.testing.assert_allclose(fresh.pull_weights[0], pull, rtol=1e-6)  # the same step-1 training
    assert not fresh.histories[0]["step2"]["warm_start"]
    assert np.median(np.abs(np.log(fresh.push_weights[0] / pull))) > 0.02  # measured 0.049-0.080, seeds 0-2
    with pytest.raises(ValueError, match="step2_init"):
        omnifold(og, og, truth, step2_init="fresh", progress=False)


def test_weighted_histogram_and_weighted_rows():
    v = np.array([0.5, 1.5, 1.5, 2.5, np.nan, 9.0])
    w = np.array([1.0, 2.0, 3.0, 0.5, 7.0, 4.0])
    h, err = weighted_histogram(v, [0, 1, 2, 3], w)
    np.testing.assert_allclose(h, [1.0, 5.0, 0.5])
    np.testing.assert_allclose(err, np.sqrt([1.0, 13.0, 0.25]))
    with pytest.raises(ValueError, match="weights"):
        weighted_histogram(v, [0, 1], w[:2])
    feats = [{"f": torch.arange(5.0)[:, None]}, {"f": 10 + torch.arange(3.0)[:, None]}]
    ds = _WeightedRows(feats, [(0, np.array([4, 1]), 0, np.array([0.5, 2.0])), (1, np.array([2]), 1, np.array([3.0]))])
    b = ds.__getitems__([0, 2, 1])
    assert b["f"][:, 0].tolist() == [4.0, 12.0, 1.0]
    assert b["label"].tolist() == [0, 1, 0] and b["weight"].tolist() == [0.5, 3.0, 2.0]


def test_input_errors_name_the_parameter(observables):
    og = observables["sim_gen"]
    with pytest.raises(ValueError, match="row-aligned"):
        omnifold(og, {k: v[:10] for k, v in og.items()}, og, progress=False)
    with pytest.raises(ValueError, match="data_weights"):
        omnifold(og, og, og, data_weights=np.ones(3), progress=False)
    with pytest.raises(ValueError, match="unknown classifier"):
        make_classifier("bdt")
    with pytest.raises(ValueError, match="checkpoint"):
        make_classifier("pretrained")


def test_epochs_to_reach_and_convergence_ratio():
    curve = [(0.0, 0.70), (0.5, 0.69), (1.0, 0.67), (2.0, 0.66)]
    assert epochs_to_reach(curve, 0.68) == pytest.approx(0.75)
    assert epochs_to_reach(curve, 0.60) is None

    def fake(points):
        rec = {"curve": points}
        return OmniFoldResult("x", [np.ones(2)], [np.ones(2)], [{"step1": rec, "step2": rec}], {}, np.ones(2), np.ones(2))

    r = convergence_ratio(fake([(0, 0.7), (1, 0.68), (2, 0.66), (4, 0.65)]), fake([(0, 0.69), (1, 0.66), (2, 0.64)]))
    assert r["target_val_loss"] == 0.65
    assert r["scratch_epochs"] == 4.0 and r["pretrained_epochs"] == pytest.approx(1.5)
    assert r["ratio"] == pytest.approx(4.0 / 1.5)


def test_convergence_study_averages_seeds_before_comparing():
    scratch = [[(0, 0.70), (1, 0.68), (2, 0.66), (3, 0.66)], [(0, 0.70), (1, 0.69), (2, 0.67), (3, 0.65)]]
    pretrained = [[(0, 0.69), (1, 0.66), (2, 0.65)], [(0, 0.69), (1, 0.65), (2, 0.64), (3, 0.64)]]
    study = ConvergenceStudy({"scratch": scratch, "pretrained": pretrained})
    np.testing.assert_allclose([y for _, y in study.mean_curve("scratch")], [0.70, 0.685, 0.665, 0.655])
    # the pretrained mean ends where its shortest (early-stopped) curve ends
    assert [x for x, _ in study.mean_curve("pretrained")] == [0, 1, 2]
    np.testing.assert_allclose([y for _, y in study.mean_curve("pretrained")], [0.69, 0.655, 0.645])
    np.testing.assert_allclose(study.spread("scratch"), [0.0, 0.005, 0.005, 0.005], atol=1e-12)
    r = study.ratio()
    assert r["target_val_loss"] == pytest.approx(0.655) and r["scratch_epochs"] == pytest.approx(3.0)
    assert r["pretrained_epochs"] == pytest.approx(1.0) and r["ratio"] == pytest.approx(3.0)
    assert r["pretrained_best_val_loss"] == pytest.approx(0.645) and r["n_seeds"] == 2
    # seed by seed: scratch 0 is best (0.66) at 2.0, reached by pretrained 0 at 1.0; pair 1: 3.0 / 1.0
    assert r["per_seed"] == pytest.approx([2.0, 3.0])
    with pytest.raises(KeyError, match="no curves for 'mlp'"):
        study.mean_curve("mlp")
    with pytest.raises(ValueError, match="'scratch' needs at least one curve"):
        ConvergenceStudy({"scratch": []})


def test_step1_curves_repeat_omnifold_first_step_per_seed(observables):
    """Seed s of the convergence study is exactly the first step-1 training of omnifold(seed=s)."""
    o = observables
    kw = dict(epochs=2, batch_size=250, early_stopping_patience=None)
    runs = {s: omnifold(o["sim_gen"], o["sim_reco"], o["data_reco"], classifier_factory="mlp", n_iterations=1,
                        seed=s, progress=False, **kw) for s in (3, 4)}
    curves = step1_curves(o["sim_reco"], o["data_reco"], classifier_factory="mlp", seeds=(3, 4), progress=False, **kw)
    assert len(curves) == 2 and len(curves[0]) == 5  # 0 and two evaluations per epoch
    for s, c in zip((3, 4), curves):
        np.testing.assert_allclose(c, runs[s].histories[0]["step1"]["curve"], rtol=1e-6)
    assert curves[0] != curves[1]
    assert curves[0][-1][1] < curves[0][0][1]  # it learns
    with pytest.raises(ValueError, match="at least one seed"):
        step1_curves(o["sim_reco"], o["data_reco"], classifier_factory="mlp", seeds=(), progress=False)
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        step1_curves(o["sim_reco"], o["data_reco"], classifier_factory="mlp", validation_fraction=1.0, progress=False)


def test_pet_input_scaling_task_or_pretraining(zjets, tmp_path):
    import jetlab.model as jm
    from jetlab.data.preprocess import Standardizer, jet_inputs, particle_inputs

    sub = {k: v.subset(slice(0, 64)) for k, v in zjets.items()}
    cfg = jm.PETConfig.tiny(num_classes=10, projection_dim=16, num_transformer=1, k=4)
    # a "pretraining" scaling far from these jets: fitted on the data-setup jets shifted in pT
    pre = Standardizer.fit(particle_inputs(sub["data_reco"]) + 3.0, sub["data_reco"].mask, jet_inputs(sub["data_reco"]) * 2.0)
    ckpt = jm.save(jm.PET(cfg), tmp_path / "ckpt", {"training_data": "test", "standardizer": pre})
    fitted = PETClassifier(checkpoint=str(ckpt), input_scaling="task")
    sim, data = fitted.prepare("reco", [sub["sim_reco"], sub["data_reco"]])
    m = sub["sim_reco"].mask
    # scaled to the simulation: mean 0 over its real particles and jets, and the data go through the same scaling
    np.testing.assert_allclose(sim["x"].numpy()[m].mean(0)[:4], 0.0, atol=1e-4)
    np.testing.assert_allclose(sim["jets"].numpy().mean(0), 0.0, atol=1e-4)
    assert not np.allclose(data["jets"].numpy().mean(0), 0.0, atol=1e-3)
    assert PETClassifier(checkpoint=str(ckpt)).input_scaling == "task"  # DEFAULT_INPUT_SCALING (bench_finetune_recipe.py)
    kept = PETClassifier(checkpoint=str(ckpt), input_scaling="pretraining")
    sim_pre, _ = kept.prepare("reco", [sub["sim_reco"], sub["data_reco"]])
    expected = pre.transform_jets(jet_inputs(sub["sim_reco"]))
    np.testing.assert_allclose(sim_pre["jets"].numpy(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"input_scaling must be one of \['pretraining', 'task'\], got 'jetclass'"):
        PETClassifier(checkpoint=str(ckpt), input_scaling="jetclass")
    # a scratch model has no pretraining sample: it always scales to the simulation
    scratch = PETClassifier(checkpoint=str(ckpt), pretrained=False, input_scaling="pretraining")
    sim_s, _ = scratch.prepare("reco", [sub["sim_reco"], sub["data_reco"]])
    np.testing.assert_allclose(sim_s["jets"].numpy(), sim["jets"].numpy(), rtol=1e-6)


def test_pet_smoke_scratch_and_pretrained(zjets, tmp_path):
    """Tiny PET runs end to end, from scratch and from a (random) checkpoint loaded as pretrained."""
    import jetlab.model as jm

    sub = {k: v.subset(slice(0, 96)) for k, v in zjets.items()}
    cfg = jm.PETConfig.tiny(num_classes=10, projection_dim=16, num_transformer=1, k=4)
    torch.manual_seed(0)
    ckpt = jm.save(jm.PET(cfg), tmp_path / "ckpt", {"training_data": "test"})
    for spec in (PETClassifier(checkpoint=str(ckpt), pretrained=False, max_particles=24),
                 PETClassifier(checkpoint=str(ckpt), pretrained=True, max_particles=24, input_scaling="task")):
        res = omnifold(sub["sim_gen"], sub["sim_reco"], sub["data_reco"], classifier_factory=spec, n_iterations=1,
                       epochs=1, batch_size=48, seed=0, progress=False, device="cpu")
        w = res.weights()
        assert res.classifier == spec.name and w.shape == (96,) and np.all(np.isfinite(w)) and np.all(w > 0)
        assert np.isfinite(res.histories[0]["step1"]["best_val_loss"])
    with pytest.raises(ValueError, match="has no standardizer in its model card; pass input_scaling='task'"):
        PETClassifier(checkpoint=str(ckpt), max_particles=24, input_scaling="pretraining").prepare("reco", [sub["sim_reco"]])
    model = spec.build("reco")
    ref = jm.load(ckpt)
    torch.testing.assert_close(model.body.state_dict(), ref.body.state_dict())
    assert model.classifier.out.out_features == 1


def _tiny_training(seed: int, n: int) -> float:
    """A tiny logistic regression trained in a worker; returns its final weight."""
    torch.manual_seed(seed)
    x = torch.randn(n, 1)
    y = (x[:, 0] > 0).float()
    lin = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(lin.parameters(), lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(lin(x)[:, 0], y).backward()
        opt.step()
    return float(lin.weight.detach())


def test_run_parallel_two_local_jobs_match_serial():
    tasks = [{"seed": 1, "n": 64}, {"seed": 2, "n": 64}]
    par = run_parallel(_tiny_training, tasks, n_jobs=2)
    serial = [_tiny_training(**t) for t in tasks]
    assert par == pytest.approx(serial, abs=1e-6)
    assert par[0] != par[1] and all(p > 0 for p in par)
    assert run_parallel(_tiny_training, [], n_jobs=2) == []
    with pytest.raises(ValueError, match="n_jobs"):
        run_parallel(_tiny_training, tasks, n_jobs=0)
    b = bootstrap_weights(1000, 3, seed=0)
    assert b.shape == (3, 1000) and abs(b.mean() - 1.0) < 0.1 and not np.array_equal(b[0], b[1])


def test_run_omnifold_study_in_one_call(zjets, tmp_path):
    """run_omnifold = the notebook-03 study: one OmniFold run per classifier at seeds[0], the PETs'
    step-1 curve of every further seed, the TD table against the truth, figures and JSON."""
    import json

    import jetlab.model as jm
    from jetlab.tasks.omnifold import run_omnifold

    sub = {k: v.subset(slice(0, 96)) for k, v in zjets.items()}
    torch.manual_seed(0)
    cfg = jm.PETConfig.tiny(num_classes=10, projection_dim=16, num_transformer=1, k=4)
    ckpt = jm.save(jm.PET(cfg), tmp_path / "ckpt", {"training_data": "test"})
    kw = dict(checkpoint=ckpt, seeds=(0, 1), n_iterations=1, epochs=1, batch_size=48, max_particles=16, bins=5,
              n_bootstrap=2, observables=("mass", "multiplicity"), device="cpu", progress=False)
    res = run_omnifold(sub, classifiers=("scratch", "mlp"), **kw)
    assert set(res.runs) == {"scratch", "mlp"} and res.settings["input_scaling"] == "task"
    curves = res.study.curves["scratch"]
    assert len(curves) == 2 and curves[0] == res.runs["scratch"].histories[0]["step1"]["curve"]
    alone = step1_curves(sub["sim_reco"], sub["data_reco"], classifier_factory=PETClassifier(
        checkpoint=str(ckpt), pretrained=False, max_particles=16), seeds=(1,), epochs=1, batch_size=48, device="cpu",
        progress=False)
    # seed 1's curve is step1_curves' for that seed ((epoch, loss) pairs; pytest >= 9.2 refuses approx on nested tuples)
    np.testing.assert_allclose(np.asarray(curves[1], dtype=float), np.asarray(alone[0], dtype=float), rtol=1e-6)
    assert res.convergence() is None and res.convergence_report() == ""  # needs both PETs
    assert res.summary.methods == ["IBU", "OmniFold-scratch", "OmniFold-mlp", "prior"]
    d = json.loads(res.to_json())
    assert d["triangular_discriminator"]["OmniFold-mlp"]["mass"]["value"] == pytest.approx(
        res.summary.td["OmniFold-mlp"]["mass"][0])
    assert set(res.plots()) == {"val_loss_step1.png", "unfolded_mass.png", "unfolded_multiplicity.png"}
    assert [row[0] for row in res.table().cells] == ["mass", "multiplicity"]
    with pytest.raises(ValueError, match="unknown classifier"):
        run_omnifold(sub, classifiers=("bdt",), **kw)
