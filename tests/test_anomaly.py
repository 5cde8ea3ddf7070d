"""Tests for jetlab.tasks.anomaly (CATHODE-style weakly supervised anomaly detection).

All tests run on small in-memory dijet events (no event generation) so the file stays fast.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jetlab.data.schema import JetSet
from jetlab.tasks import anomaly as A

P = 8  # particles per jet


def _jetset(rng, n, mass_scale, labels):
    pt_jet = rng.uniform(1200, 1800, n)
    eta_jet = rng.uniform(-1.5, 1.5, n)
    phi_jet = rng.uniform(-np.pi, np.pi, n)
    mult = rng.integers(3, P + 1, n)
    frac = rng.dirichlet(np.ones(P), n)
    frac = -np.sort(-frac, axis=1)
    mask = np.arange(P)[None] < mult[:, None]
    frac = np.where(mask, frac, 0)
    frac /= frac.sum(1, keepdims=True)
    spread = 0.05 + 0.1 * mass_scale[:, None]
    pt = frac * pt_jet[:, None]
    eta = eta_jet[:, None] + rng.normal(0, 1, (n, P)) * spread
    phi = phi_jet[:, None] + rng.normal(0, 1, (n, P)) * spread
    e = pt * np.cosh(eta)
    parts = np.stack([pt, eta, phi, e], -1) * mask[..., None]
    jets = np.stack([pt_jet, eta_jet, phi_jet, 100 + 300 * mass_scale, mult], 1)
    return JetSet(parts, mask, jets, labels)


def fake_events(n_bkg=300, n_sig=120, seed=0) -> A.DijetEvents:
    """Background: mjj falling over 2.3-5 TeV, light jets; signal: mjj ~ 3.5 TeV, heavy wide jets."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n_bkg, int), np.ones(n_sig, int)]
    mjj = np.r_[2.3 + rng.exponential(0.8, n_bkg).clip(0, 2.69), rng.normal(3.5, 0.08, n_sig)]
    ms = np.r_[rng.uniform(0, 0.3, n_bkg), rng.uniform(0.7, 1.0, n_sig)]
    return A.DijetEvents(_jetset(rng, len(labels), ms, labels), _jetset(rng, len(labels), ms * 0.5, labels), mjj, labels)


# ------------------------------------------------------------------- windows
def test_mass_windows_masks_and_scaling_round_trip():
    w = A.MassWindows()
    m = np.array([2.2, 2.3, 3.29, 3.3, 3.5, 3.69, 3.7, 4.99, 5.0])
    np.testing.assert_array_equal(w.in_sr(m), [0, 0, 0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(w.in_sb(m), [0, 1, 1, 0, 0, 0, 1, 1, 0])
    assert not (w.in_sr(m) & w.in_sb(m)).any()
    s = w.scale(np.array([2.3, 3.65, 5.0]))
    np.testing.assert_allclose(s, [-1.0, 0.0, 1.0], atol=1e-6)
    x = np.linspace(2.3, 5.0, 11)
    np.testing.assert_allclose(w.unscale(w.scale(x)), x, rtol=1e-6)


def test_mass_windows_reject_overlapping_regions():
    with pytest.raises(ValueError, match="sb_low < sr < sb_high"):
        A.MassWindows(sr=(3.0, 3.7), sb=((2.3, 3.3), (3.7, 5.0)))


# ------------------------------------------------------------------- injection
def test_inject_signal_counts_and_disjoint_references():
    ev = fake_events(300, 120)
    sp = A.inject_signal(ev, 40, data_background_fraction=0.5, seed=3)
    assert (sp.data.labels == 1).sum() == 40
    assert (sp.data.labels == 0).sum() == 150
    assert len(sp.background) == 150 and (sp.background.labels == 0).all()
    assert len(sp.signal) == 80 and (sp.signal.labels == 1).all()
    # no event is in two places: jet-1 pT values are continuous, so they identify events
    allm = np.concatenate([s.jet1.jets[:, 0] for s in (sp.data, sp.background, sp.signal)])
    assert len(np.unique(allm)) == len(ev)
    summary = sp.summary(A.MassWindows())
    assert summary["sr_signal"] == int((A.MassWindows().in_sr(sp.data.mjj) & (sp.data.labels == 1)).sum())
    with pytest.raises(ValueError, match="n_signal=500 but the events hold 120"):
        A.inject_signal(ev, 500)


def test_load_dijets_orders_by_mass_and_converts_to_tev(tmp_path):
    from jetlab.data.schema import write_jetsets

    ev = fake_events(20, 5)
    j1, j2 = ev.jet2, ev.jet1  # lighter first: load_dijets must swap back
    for js in (j1, j2):
        js.extra["mjj"] = ev.mjj * 1000.0
    path = write_jetsets(tmp_path / "d.h5", {"jet1": j1, "jet2": j2}, dataset="lhco-mini", label_names=("background", "signal"))
    got = A.load_dijets(path, max_particles=4)
    np.testing.assert_allclose(got.mjj, ev.mjj, rtol=1e-6)
    assert (got.jet1.jets[:, 3] >= got.jet2.jets[:, 3]).all()
    assert got.jet1.max_particles == 4
    np.testing.assert_array_equal(got.jet1.jets[:, 4], ev.jet1.jets[:, 4])  # full multiplicity kept
    with pytest.raises(FileNotFoundError, match="missing.h5 does not exist"):
        A.load_dijets(tmp_path / "missing.h5")


# ------------------------------------------------------------------- k-fold
def test_kfold_indices_cover_every_event_once():
    f = A.kfold_indices(103, 4, seed=1)
    assert f.shape == (103,) and set(np.unique(f)) == {0, 1, 2, 3}
    counts = np.bincount(f)
    assert counts.max() - counts.min() <= 1
    with pytest.raises(ValueError, match="k must be >= 2"):
        A.kfold_indices(10, 1)


class _Recording(A.DijetClassifier):
    """Remembers the event ids (stored in jets1[:, 0]) it saw while training."""

    def __init__(self, pet):
        super().__init__(pet)
        self.seen: set[int] = set()

    def forward(self, batch):
        if self.training:
            self.seen.update(batch["jets1"][:, 0].round().long().tolist())
        return super().forward(batch)


def _inputs(n, offset, rng):
    x = rng.normal(0, 1, (n, P, 13)).astype(np.float32)
    mask = np.ones((n, P), bool)
    jets = rng.normal(0, 1, (n, 4)).astype(np.float32)
    jets[:, 0] = np.arange(offset, offset + n)  # event id
    return {"x1": x, "mask1": mask, "jets1": jets, "x2": x.copy(), "mask2": mask, "jets2": jets.copy()}


def test_kfold_scores_every_event_scored_once_by_a_model_that_did_not_see_it():
    from jetlab.model import PET, PETConfig

    rng = np.random.default_rng(0)
    data, template = _inputs(30, 0, rng), _inputs(40, 1000, rng)
    models = []

    def make():
        models.append(_Recording(PET(PETConfig.tiny(num_classes=1, projection_dim=16, num_transformer=1, k=0, num_local=0))))
        return models[-1]

    res = A.kfold_scores(data, template, make, k=3, seed=0, epochs=1, batch_size=16, device="cpu", val_fraction=0.0)
    assert len(models) == 3
    assert np.isfinite(res.scores).all() and ((res.scores > 0) & (res.scores < 1)).all()
    for i in range(30):
        own = models[res.fold[i]]
        assert i not in own.seen  # scored by a model that never trained on it
        assert sum(i in m.seen for m in models) == 2  # ...and trained on by the other two
    assert all(len([j for j in m.seen if j >= 1000]) > 0 for m in models)


# ------------------------------------------------------------------- metrics
def test_anomaly_metrics_minimum_background_floor():
    labels = np.r_[np.zeros(100, int), np.ones(20, int)]
    scores = np.r_[np.linspace(0, 0.5, 100), np.linspace(0.6, 1.0, 20)]  # perfect separation
    m = A.anomaly_metrics(labels, scores, min_background_events=10)
    assert m["min_fpr"] == pytest.approx(0.1)
    assert m["auc"] == pytest.approx(1.0)
    assert 1 / np.sqrt(0.2) < m["max_sic"] <= 1 / np.sqrt(0.1) + 1e-9
    assert (m["eps_s"] <= 1).all() and np.isfinite(m["sic"]).all()


def test_sculpting_check_flags_mass_correlated_scores():
    rng = np.random.default_rng(1)
    w = A.MassWindows()
    mjj = rng.uniform(2.3, 5.0, 4000)
    labels = np.zeros(4000, int)
    flat = A.sculpting_check(mjj, rng.uniform(size=4000), labels, w, (0.2,))[0.2]
    sculpt = A.sculpting_check(mjj, mjj, labels, w, (0.2,))[0.2]
    assert flat["n_background"] == pytest.approx(800, abs=2)
    assert flat["w1"] < 3 * flat["w1_random"] + 0.05
    # keeping the top 20% in mjj shifts the mean from 3.65 to ~4.73 TeV: W1 ~ 1.08 TeV
    assert sculpt["w1"] == pytest.approx(1.08, abs=0.05)


def test_closeness_metrics_zero_for_identical_and_detects_shift():
    std = _standardizer()
    ev = fake_events(200, 0, seed=4)
    ref = A.dijet_inputs(ev, std)
    same = A.closeness_metrics(ref, ref, std, seed=0)
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in same["w1_jet"].values())
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in same["w1_particle"].values())
    shifted = {k: v.copy() for k, v in ref.items()}
    shifted["jets1"][:, 2] += 50.0 / std.jet_std[2]  # +50 GeV on jet-1 mass
    res = A.closeness_metrics(ref, shifted, std, seed=0)
    assert res["w1_jet"]["m1"] == pytest.approx(50.0, rel=1e-3)
    assert res["w1_jet"]["pt1"] == pytest.approx(0.0, abs=1e-6)
    assert res["auc"] > 0.9  # a 50 GeV mass shift is easy to tell apart
    assert set(res["w1_particle"]) == {f"{f}_j{k}" for k in (1, 2) for f in A.PARTICLE_FEATURE_NAMES}
    # The classifier AUC's other known answer: two independent draws of the same background cannot be told
    # apart, AUC 0.5 within 4 Mann-Whitney standard deviations, sd^2 = (n1 + n2 + 1) / (12 n1 n2) (0.0167 for
    # 600 + 600; over 20 seed pairs the out-of-fold AUC gave 0.464-0.533, sd 0.020). Not the sample against
    # itself: out of fold, each event's twin with the other label sits in the training folds, which pulls
    # the AUC to about 0.02, and that (like a shifted sample) fails this bound.
    n = 600
    draw_a = A.dijet_inputs(fake_events(n, 0, seed=1001), std)
    draw_b = A.dijet_inputs(fake_events(n, 0, seed=2001), std)
    null = A.closeness_metrics(draw_a, draw_b, std, seed=1)
    assert null["n_reference"] == null["n_generated"] == n
    assert abs(null["auc"] - 0.5) < 4 * np.sqrt((2 * n + 1) / (12 * n * n))


def _standardizer():
    from jetlab.data.preprocess import Standardizer

    ev = fake_events(200, 50, seed=9)
    return Standardizer.fit_jetset(JetSet.concatenate([ev.jet1, ev.jet2]))


# ------------------------------------------------------------------- generator
def test_background_generator_sampling_shapes_mask_finite():
    from jetlab.model import PETConfig

    w = A.MassWindows()
    ev = fake_events(200, 0, seed=2)
    sb = ev.subset(w.in_sb(ev.mjj))
    cfg = PETConfig.tiny(projection_dim=16, num_transformer=1, k=0, num_local=0)
    gen = A.fit_background_generator(sb, w, config=cfg, epochs=1, jet_epochs=2, batch_size=64, seed=0, device="cpu")
    assert len(gen.history["jet_loss"]) == 2 and np.isfinite(gen.history["particle_loss"]).all()
    mjj = np.full(12, 3.5)
    inputs, feats = gen.sample(mjj, seed=5, steps=2, jet_steps=4, device="cpu")
    assert feats.shape == (12, 8) and np.isfinite(feats).all()
    assert (feats[:, [0, 2, 4, 6]] > 0).all()  # pT and mass positive by construction
    for k in (1, 2):
        x, m, j = inputs[f"x{k}"], inputs[f"mask{k}"], inputs[f"jets{k}"]
        assert x.shape == (12, P, 13) and m.shape == (12, P) and j.shape == (12, 4)
        assert np.isfinite(x).all() and np.isfinite(j).all()
        assert (x[~m] == 0).all()
        n = np.clip(np.round(feats[:, 4 * (k - 1) + 3]), 1, P)
        np.testing.assert_array_equal(m.sum(1), n)  # multiplicity from the jet-level generator
        assert (m[:, :1]).all() and (np.diff(m.astype(int), axis=1) <= 0).all()  # front-packed
    again, _ = gen.sample(mjj, seed=5, steps=2, jet_steps=4, device="cpu")
    np.testing.assert_array_equal(again["x1"], inputs["x1"])  # same seed -> same sample
    # same seed -> same fit, whatever torch's global random state (as in a fresh process)
    torch.manual_seed(12345)
    refit = A.fit_background_generator(sb, w, config=cfg, epochs=1, jet_epochs=2, batch_size=64, seed=0, device="cpu")
    assert refit.history == gen.history
    with pytest.raises(ValueError, match="outside the sidebands"):
        A.fit_background_generator(ev, w, config=cfg, epochs=1, jet_epochs=1, device="cpu")


def test_background_generator_models_the_pt_coordinate_asked_for_whatever_its_start():
    from jetlab.model import PETConfig

    w = A.MassWindows()
    ev = fake_events(200, 0, seed=2)
    sb = ev.subset(w.in_sb(ev.mjj))
    cfg = PETConfig.tiny(projection_dim=16, num_transformer=1, k=0, num_local=0, gen_pt_input="log_pt")
    kw = dict(config=cfg, epochs=1, jet_epochs=1, batch_size=64, seed=0, device="cpu")
    default = A.fit_background_generator(sb, w, **kw).particle_model.pet  # a log-pT start, refitted
    own = A.fit_background_generator(sb, w, gen_pt_input=None, **kw).particle_model.pet
    # log(1 - pT/pT_jet) is input 2, log pT input 3: the diffusion target is the slot asked for
    assert A.CATHODE_GEN_PT_INPUT == "log_1m_ptrel" and default.config.gen_feature_indices == (0, 1, 2)
    assert own.config.gen_feature_indices == (0, 1, 3)
    x = torch.arange(13.0).expand(1, 2, 13)
    np.testing.assert_array_equal(default.generated_features(x)[0, 0].numpy(), [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="gen_pt_input must be one of"):
        A.fit_background_generator(sb, w, gen_pt_input="pt", **kw)


def test_mjj_condition_starts_as_identity_and_is_trainable():
    from jetlab.model import PET, PETConfig

    g = A.MjjConditionedGenerator(PET(PETConfig.tiny(num_classes=1)))
    jets = torch.randn(5, 4)
    torch.testing.assert_close(g.condition(jets, torch.linspace(-1, 1, 5)), jets)
    names = {n for grp in g.param_groups(1e-3, 5.0) for n in [grp["name"]]}
    assert names == {"body", "heads"}
    assert any(p is g.mjj_proj.weight for grp in g.param_groups(1e-3) for p in grp["params"])


def test_training_keywords_reach_the_generator_and_an_unknown_one_is_named():
    from jetlab.model import PETConfig

    w = A.MassWindows()
    ev = fake_events(200, 0, seed=2)
    sb = ev.subset(w.in_sb(ev.mjj))
    cfg = PETConfig.tiny(projection_dim=16, num_transformer=1, k=0, num_local=0)
    gen = A.fit_background_generator(sb, w, config=cfg, epochs=3, jet_epochs=1, batch_size=64, device="cpu")
    assert len(gen.history["particle_loss"]) == 3 and len(gen.history["jet_loss"]) == 1
    sp = A.inject_signal(fake_events(300, 120), 40, seed=0)
    calls = {
        "fit_background_generator": lambda **kw: A.fit_background_generator(sb, w, config=cfg, **kw),
        "run_cathode": lambda **kw: A.run_cathode(sp, w, config=cfg, **kw),
        "run_idealised": lambda **kw: A.run_idealised(sp, w, config=cfg, **kw),
        "run_supervised": lambda **kw: A.run_supervised(sp, w, config=cfg, **kw),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=rf"^{name}: unexpected keyword argument 'epoch' \(did you mean 'epochs'\?\)"):
            call(epoch=1, device="cpu")
        with pytest.raises(TypeError, match=rf"^{name}: unexpected keyword argument 'n_epochs'.*lr_factor"):
            call(n_epochs=1)


# ------------------------------------------------------------------- end to end
def test_tiny_end_to_end_produces_finite_sic_curves():
    from sklearn.metrics import roc_auc_score

    from jetlab.model import PETConfig

    w = A.MassWindows()
    ev = fake_events(400, 160, seed=7)
    sp = A.inject_signal(ev, 60, seed=0)
    cfg = PETConfig.tiny(projection_dim=16, num_transformer=1, k=0, num_local=0)
    common = dict(config=cfg, seed=0, epochs=1, batch_size=64, device="cpu", min_background_events=5)
    cat = A.run_cathode(sp, w, oversample=2, kfolds=2, gen_epochs=1, jet_epochs=2, gen_steps=2, **common)
    ideal = A.run_idealised(sp, w, kfolds=2, **common)
    sup = A.run_supervised(sp, w, **common)
    n_sr = int(w.in_sr(sp.data.mjj).sum())
    n_sb = int(w.in_sb(sp.data.mjj).sum())
    for run in (cat, ideal, sup):
        assert run.scores.shape == (n_sr,) and np.isfinite(run.scores).all()
        assert run.sb_scores.shape == (n_sb,) and np.isfinite(run.sb_scores).all()
        m = run.metrics
        truth = sp.data.labels[w.in_sr(sp.data.mjj)]
        assert m["auc"] == pytest.approx(roc_auc_score(truth, run.scores), abs=1e-9)  # independent AUC
        # every method beats chance with a margin: over 12 seeds of this set-up (fake events, injection
        # and training seeded alike) CATHODE gave AUC 0.633-0.892, idealised 0.675-0.963, supervised 0.90-1.0
        assert m["auc"] > 0.6, run.method
        # the bound fails on scores that carry no information (labels shuffled, mean of 20 shuffles)
        rng = np.random.default_rng(0)
        assert np.mean([roc_auc_score(rng.permutation(truth), run.scores) for _ in range(20)]) < 0.6
        assert np.isfinite(m["max_sic"]) and len(m["sic"]) > 0 and np.isfinite(m["sic"]).all()
    assert len(cat.extras["synthetic"]["x1"]) == 2 * n_sr
    c = cat.extras["closeness"]
    # The closeness compares the synthetic SR events with the TRUE SR background: the labelled background
    # kept out of the pseudo-data (split.background), selected here by hand and scored again. Comparing
    # with the SR data (signal included), the SB or another synthetic sample gives other values. (Its
    # value itself has no bound at this size: 0.457-0.998 over 12 seeds of this set-up, near 0.5 when the
    # tiny generator works, near 1 when not; test_closeness_metrics_zero_for_identical_and_detects_shift
    # checks the metric's known answers.)
    std = cat.extras["generator"].standardizer
    true_sr_background = sp.background.subset(w.in_sr(sp.background.mjj))
    n_true = int(((ev.labels == 0) & w.in_sr(ev.mjj)).sum()) - int(((sp.data.labels == 0) & w.in_sr(sp.data.mjj)).sum())
    assert c["n_reference"] == len(true_sr_background.mjj) == n_true > 0
    again = A.closeness_metrics(A.dijet_inputs(true_sr_background, std), cat.extras["synthetic"], std, seed=0)
    assert c["auc"] == again["auc"] and c["auc_jets"] == again["auc_jets"] and c["w1_jet"] == again["w1_jet"]
    assert set(c["w1_jet"]) == set(A.JET_FEATURE_NAMES)
    # the supervised classifier learns the (very visible) fake signal even in one epoch
    assert sup.metrics["auc"] > 0.8


def test_real_lhco_dataset_name_points_to_fetch_and_convert(tmp_path, monkeypatch):
    from jetlab.tasks.anomaly import load_dijets

    monkeypatch.setenv("JETLAB_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"(?s)jetlab data fetch lhco_rnd.*jetlab data convert lhco_rnd"):
        load_dijets("lhco_rnd")
