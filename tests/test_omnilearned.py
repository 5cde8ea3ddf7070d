"""OmniLearned checkpoints in jetlab: conversion, parity with omnilearned's own forward, fine-tuning.

Random-weight OmniLearned models are written with omnilearned's own ``save_checkpoint`` (the
format of the published files); expected inputs and logits come from numpy (the README recipe
for PID integers) and from omnilearned's ``PET2`` restored by its own ``restore_checkpoint``.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch

omnilearned = pytest.importorskip("omnilearned", reason="needs the optional extra: pip install 'jetlab[omnilearned]'")
from omnilearned.network import PET2  # noqa: E402
from omnilearned.utils import (  # noqa: E402
    get_checkpoint_name,
    get_model_parameters,
    restore_checkpoint,
    save_checkpoint,
    shadow_copy,
)

import jetlab.model as jm  # noqa: E402
from jetlab.data.preprocess import model_inputs  # noqa: E402
from jetlab.data.schema import JetSet, jet_features_from_particles, sort_and_truncate  # noqa: E402
from jetlab.model import CheckpointError, ConfigMismatchError  # noqa: E402
from jetlab.model.omnilearned_convert import PUBLISHED, convert_omnilearned, resolve_omnilearned  # noqa: E402

FEATURES = ("pt", "eta", "phi", "energy", "charge", "is_charged_hadron", "is_neutral_hadron", "is_photon",
            "is_electron", "is_muon")
PDG = np.array([211, -211, 130, 22, 11, -11, 13, -13])
TINY = dict(base_dim=32, num_transformers=2, num_transformers_head=1, num_tokens=2, num_heads=4, mlp_ratio=2)


def make_jets(n: int, seed: int = 0, p: int = 24, min_mult: int = 2, max_bkg: int = 12) -> tuple[JetSet, np.ndarray]:
    """Signal (label 1: wide, many particles) vs background; every particle has a PDG id. Returns (jets, pdg)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    mult = np.where(labels == 1, rng.integers(12, p + 1, n), rng.integers(min_mult, max_bkg, n))
    mask = np.arange(p)[None, :] < mult[:, None]
    width = np.where(labels == 1, 0.35, 0.1)[:, None]
    pt = rng.exponential(30.0, (n, p)) + 1.5
    eta = rng.normal(0, 1, (n, p)) * width + rng.choice([-1.2, 0.7], n)[:, None]  # jets at negative and positive eta
    phi = rng.normal(0, 1, (n, p)) * width + 3.0  # near the phi wrap
    pdg = rng.choice(PDG, (n, p))
    charge = np.select([np.isin(pdg, [211, -11, -13]), np.isin(pdg, [-211, 11, 13])], [1.0, -1.0], 0.0)
    flags = np.stack([np.abs(pdg) == 211, pdg == 130, pdg == 22, np.abs(pdg) == 11, np.abs(pdg) == 13], -1)
    parts = np.concatenate([np.stack([pt, eta, phi, pt * np.cosh(eta), charge], -1), flags], -1) * mask[..., None]
    order_key = np.where(mask, pt, -1.0)
    order = np.argsort(-order_key, axis=1)
    parts = np.take_along_axis(parts, order[..., None], 1)
    pdg = np.take_along_axis(pdg, order, 1) * mask
    parts, mask = sort_and_truncate(parts, mask, p)
    js = JetSet(parts, mask, jet_features_from_particles(parts, mask), labels, particle_features=FEATURES)
    return js, pdg


def expected_inputs(js: JetSet, pdg: np.ndarray, deta_flip: bool = False):
    """OmniLearned's inputs by hand: README order and delta-eta (eta - eta_jet; ``deta_flip``: OmniLearn
    v1's sign flip for jets at eta < 0), README PID recipe."""
    p = js.particles.astype(np.float64)
    jet_eta, jet_phi = js.jets[:, 1:2].astype(np.float64), js.jets[:, 2:3].astype(np.float64)
    deta = (p[..., 1] - jet_eta) * (np.where(jet_eta < 0, -1.0, 1.0) if deta_flip else 1.0)
    dphi = (p[..., 2] - jet_phi + np.pi) % (2 * np.pi) - np.pi
    m = js.mask
    log_pt, log_e = (np.log(np.where(m, p[..., i], 1.0)) for i in (0, 3))
    X = np.where(m[..., None], np.stack([deta, dphi, log_pt, log_e], -1), 0.0)
    pid = np.searchsorted(np.unique([-211, -13, -11, 0, 11, 13, 22, 130, 211]), pdg) * js.mask
    return torch.tensor(X, dtype=torch.float32), torch.tensor(pid, dtype=torch.long)


def write_pet2(path: Path, net: torch.nn.Module) -> Path:
    """Save with omnilearned's own save_checkpoint (DDP-style ``.module``, EMA copy, optimizer, scheduler)."""
    opt = torch.optim.AdamW(net.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save_checkpoint(types.SimpleNamespace(module=net), shadow_copy(net), 1, opt, torch.tensor(0.25), sched,
                    str(path.parent), path.name)
    return path


def pet2(mode="pretrain", num_classes=12, seed=0, **size):
    torch.manual_seed(seed)
    return PET2(input_dim=4, use_int=True, local_int=False, pid=True, pid_dim=9, add_info=True, add_dim=4, mode=mode,
                num_classes=num_classes, K=10, num_coord=2, mlp_drop=0.0, attn_drop=0.0, **size)


def reference(pt_file: Path, mode="pretrain", num_classes=12, **size) -> torch.nn.Module:
    """A fresh PET2 restored by omnilearned's restore_checkpoint (its own loading path)."""
    net = pet2(mode, num_classes, seed=123, **size)
    restore_checkpoint(net, str(pt_file.parent), pt_file.name, 0)
    return net.eval()


@pytest.fixture(scope="module")
def small_pt(tmp_path_factory) -> Path:
    return write_pet2(tmp_path_factory.mktemp("ol") / PUBLISHED["small"], pet2(**get_model_parameters("small")))


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory) -> Path:
    return write_pet2(tmp_path_factory.mktemp("ol") / "tiny.pt", pet2(num_classes=5, **TINY))


@pytest.fixture(scope="module")
def tiny_dir(tiny_pt, tmp_path_factory) -> Path:
    return convert_omnilearned(tiny_pt, tmp_path_factory.mktemp("conv") / "tiny")


@pytest.fixture(scope="module")
def jets():
    return make_jets(40, seed=3)


def jetlab_batch(model, js):
    x, mask, j, _ = model_inputs(js, model.standardizer)
    return torch.tensor(x), torch.tensor(mask), torch.tensor(j)


# ------------------------------------------------------------------------------- parity
def test_small_checkpoint_converts_and_matches_omnilearned_logits(small_pt, tmp_path, jets):
    js, pdg = jets
    model = jm.load(convert_omnilearned(small_pt, tmp_path / "small", size="small"))
    s = model.settings
    assert (s.base_dim, s.num_transformers, s.num_heads, s.mode, s.num_classes) == (128, 8, 8, "pretrain", 12)
    assert model.card.architecture == "omnilearned-pet2" and model.num_parameters()["total"] == sum(
        p.numel() for p in pet2(**get_model_parameters("small")).parameters())
    X, pid = expected_inputs(js, pdg)
    with torch.no_grad():
        ours = model.classify(*jetlab_batch(model, js))[0]
        ref = reference(small_pt, **get_model_parameters("small"))(X, None, pid=pid, add_info=torch.zeros(X.shape[:2] + (4,)))
    assert ours.shape == (len(js), 12)
    torch.testing.assert_close(ours, ref["y_pred"], atol=1e-5, rtol=1e-5)
    # the PID input matters: without it the logits differ (the parity above is not vacuous)
    with torch.no_grad():
        no_pid = model.classify(*jetlab_batch(model, js), groups=("kinematics",))[0]
    assert (no_pid - ours).abs().max() > 1e-3


def test_absent_pid_is_exactly_the_model_without_pid(tiny_dir, tiny_pt, jets):
    js, pdg = jets
    model = jm.load(tiny_dir)
    X, _ = expected_inputs(js, pdg)
    with torch.no_grad():
        ours = model.classify(*jetlab_batch(model, js), groups=("kinematics",))[0]
        ref = reference(tiny_pt, num_classes=5, **TINY)(X, None, pid=None, add_info=None)["y_pred"]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_few_particle_batches_are_padded_to_k_plus_one(tiny_dir, tiny_pt):
    js, pdg = make_jets(8, seed=5, min_mult=2, max_bkg=6)
    sel = np.flatnonzero(js.labels == 0)  # 2-5 particles
    js, pdg = js.subset(sel), pdg[sel]
    model = jm.load(tiny_dir)
    x, mask, j = jetlab_batch(model, js)
    n = int(mask.sum(1).max())
    assert n < 11
    X, pid = expected_inputs(js, pdg)
    ref_net = reference(tiny_pt, num_classes=5, **TINY)
    with torch.no_grad():
        with pytest.raises(RuntimeError):  # omnilearned's kNN cannot take fewer than K+1 slots
            ref_net(X[:, :n], None, pid=pid[:, :n], add_info=torch.zeros(len(js), n, 4))
        ours = model.classify(x[:, :n], mask[:, :n], j)[0]  # trimmed as jetlab's TrimmedDataset does
        ref = ref_net(X, None, pid=pid, add_info=torch.zeros(X.shape[:2] + (4,)))["y_pred"]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_particle_with_log_pt_zero_still_counts(tiny_dir):
    """OmniLearned treats log pT == 0 as padding; a real 1 GeV particle must not vanish."""
    js, _ = make_jets(4, seed=7)
    model = jm.load(tiny_dir)
    variants = {}
    for name, pt in (("one", 1.0), ("near", 1.001)):
        p = js.particles.copy()
        k = int(js.mask[0].sum()) - 1  # softest particle of jet 0
        p[0, k, 0], p[0, k, 3] = pt, pt * np.cosh(p[0, k, 1])
        variants[name] = JetSet(p, js.mask, js.jets, js.labels, particle_features=FEATURES)
    dropped_mask = js.mask.copy()
    dropped_mask[0, int(js.mask[0].sum()) - 1] = False
    variants["dropped"] = JetSet(variants["one"].particles, dropped_mask, js.jets, js.labels, particle_features=FEATURES)
    with torch.no_grad():
        out = {k: model.classify(*jetlab_batch(model, v))[0][0] for k, v in variants.items()}
    assert (out["one"] - out["near"]).abs().max() < 0.1 * (out["one"] - out["dropped"]).abs().max()


def test_velocity_matches_omnilearned_network_wrapper(tiny_dir, tiny_pt, jets):
    from omnilearned.diffusion import network_wrapper

    js, pdg = jets
    model = jm.load(tiny_dir)
    X, pid = expected_inputs(js, pdg)
    g = torch.Generator().manual_seed(1)
    t = torch.rand(len(js), generator=g)
    z = (X + torch.randn(X.shape, generator=g)) * torch.tensor(js.mask)[..., None]
    y = torch.tensor(js.labels)
    add = torch.zeros(X.shape[:2] + (4,))
    with torch.no_grad():
        ours = model.velocity(z, torch.tensor(js.mask), t, y, pid=pid)
        ref = network_wrapper(reference(tiny_pt, num_classes=5, **TINY), z, None, pid, add, y, t)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------- conventions
def one_jet_at_negative_eta(p: int = 16):
    """Three charged pions at eta -1.30, -1.45, -1.60 (pT 50, 30, 20 GeV), padded to ``p`` slots."""
    pt, eta, phi = np.array([50.0, 30.0, 20.0]), np.array([-1.30, -1.45, -1.60]), np.array([0.10, -0.05, 0.02])
    parts = np.zeros((1, p, len(FEATURES)))
    parts[0, :3, :5] = np.stack([pt, eta, phi, pt * np.cosh(eta), np.ones(3)], -1)
    parts[0, :3, 5] = 1.0  # is_charged_hadron
    mask = np.arange(p)[None, :] < 3
    js = JetSet(parts, mask, jet_features_from_particles(parts, mask), np.array([1]), particle_features=FEATURES)
    # the jet axis by hand: pseudorapidity of the summed (massless) momenta
    px, py, pz = (pt * np.cos(phi)).sum(), (pt * np.sin(phi)).sum(), (pt * np.sinh(eta)).sum()
    jet_eta = float(np.arcsinh(pz / np.hypot(px, py)))
    return js, np.where(mask, 211, 0), eta - jet_eta, jet_eta


def test_default_delta_eta_is_omnilearneds_and_the_switch_flips_it(tiny_pt, tiny_dir, tmp_path, caplog):
    """At eta < 0 the default feeds eta - eta_jet (README), exactly what omnilearned's own dataloader
    reads from a README-prepared file; deta_flip=True feeds OmniLearn v1's flipped sign."""
    import h5py
    from omnilearned.dataloader import HEPDataset

    js, pdg, deta_by_hand, jet_eta = one_jet_at_negative_eta()
    assert jet_eta < -1.3 and deta_by_hand[0] > 0.05  # the leading particle is more central than the jet axis
    # a file prepared as omnilearned's README says: data = (deta, dphi, log pT, log E, PID integer, 4 add)
    X_hand, pid_hand = expected_inputs(js, pdg)
    np.testing.assert_allclose(X_hand[0, :3, 0].numpy(), deta_by_hand, atol=1e-6)
    data = np.concatenate([X_hand.numpy(), pid_hand.numpy()[..., None], np.zeros(X_hand.shape[:2] + (4,))], -1)
    with h5py.File(tmp_path / "readme.h5", "w") as f:
        f.create_dataset("data", data=data.astype(np.float32))
        f.create_dataset("pid", data=np.array([1]))
    sample = HEPDataset([str(tmp_path / "readme.h5")], [(0, 0)], use_pid=True, use_add=True, num_add=4)[0]
    caplog.set_level(logging.INFO, logger="jetlab")
    flipped_dir = convert_omnilearned(tiny_pt, tmp_path / "flipped", deta_flip=True)
    default, flipped = jm.load(tiny_dir), jm.load(flipped_dir)
    batch = jetlab_batch(default, js)
    X_default, pid_default, _ = default.omnilearned_inputs(*batch)
    X_flipped = flipped.omnilearned_inputs(*batch)[0]
    torch.testing.assert_close(X_default[0], sample["X"], atol=1e-5, rtol=0)
    assert torch.equal(pid_default[0], sample["pid"].long())
    np.testing.assert_allclose(X_default[0, :3, 0].numpy(), deta_by_hand, atol=1e-5)
    np.testing.assert_allclose(X_flipped[0, :3, 0].numpy(), -deta_by_hand, atol=1e-5)
    assert X_default[0, 0, 0] > 0 > X_flipped[0, 0, 0]
    # omnilearned's PET2 on its dataloader's sample gives the default model's logits, not the flipped one's
    ref = reference(tiny_pt, num_classes=5, **TINY)
    with torch.no_grad():
        want = ref(sample["X"][None], None, pid=sample["pid"][None].long(), add_info=sample["add_info"][None])
        ours, theirs = default.classify(*batch)[0], flipped.classify(*batch)[0]
    torch.testing.assert_close(ours, want["y_pred"], atol=1e-5, rtol=1e-5)
    assert (theirs - want["y_pred"]).abs().max() > 1e-4  # 10x the parity tolerance: the sign reaches the logits
    # which convention ran is stated: in describe() and once when a checkpoint loads (notebooks show INFO)
    assert "inputs: delta-eta = eta - eta_jet, no sign flip (OmniLearned README) [deta_flip=False]" in default.describe()
    assert "sign-flipped for jets at eta_jet < 0 (OmniLearn v1" in flipped.describe()
    said = [r.getMessage() for r in caplog.records if "OmniLearned checkpoint" in r.getMessage()]
    assert any(str(flipped_dir) in m and "[deta_flip=True]" in m for m in said)
    assert "deta_flip=True" in jm.read_card(flipped_dir).notes


def test_deta_flip_is_validated_and_the_cli_switches_it(tiny_pt, tmp_path):
    from jetlab.cli.main import main
    from jetlab.model.omnilearned import OmniLearnedSettings

    with pytest.raises(ValueError, match=r"deta_flip must be True or False, got 'false' \(str\): False = delta-eta"):
        convert_omnilearned(tiny_pt, tmp_path / "x", deta_flip="false")  # bool("false") would be True
    with pytest.raises(ValueError, match=r"deta_flip must be True or False, got 1 \(int\)"):
        OmniLearnedSettings(**TINY, deta_flip=1)
    assert not (tmp_path / "x").exists()
    for flag, want in (([], False), (["--deta-flip"], True), (["--no-deta-flip"], False)):
        out = tmp_path / f"cli{len(flag)}{want}"
        assert main(["model", "convert-omnilearned", str(tiny_pt), "--out", str(out), *flag]) == 0
        assert jm.read_card(out).config["deta_flip"] is want


def test_file_without_classifier_head_says_so_and_finetunes_a_new_head(tiny_pt, tmp_path, jets):
    from jetlab.tasks.common import build_finetune_model

    gen_only = _modified(tiny_pt, tmp_path, lambda c: c.pop("classifier_head"))
    model = jm.load(convert_omnilearned(gen_only, tmp_path / "gen"))
    text = model.describe()
    assert model.settings.mode == "generator" and model.settings.num_classes == 0
    assert "classes=" not in text and "generator labels=5" in text  # no invented classifier outputs
    assert f"no classifier head in modified.pt (converted: {tmp_path / 'gen'})" in text
    batch = jetlab_batch(model, jets[0])
    with pytest.raises(RuntimeError, match=r"no classifier head; call reset_classifier"):
        model.classify(*batch)
    # fine-tuning a classifier from it is fine: the head is new (zero output layer, trained by fine-tuning)
    ft = build_finetune_model(tmp_path / "gen", 3, seed=0).model
    with torch.no_grad():
        logits = ft.classify(*batch)[0]
    assert logits.shape == (len(jets[0]), 3) and torch.count_nonzero(logits) == 0
    assert ft.settings.mode == "pretrain" and "classes=3" in ft.describe() and "no classifier head" not in ft.describe()
    # a file under a published pretrain name must hold both heads: a missing one is named, not silently dropped
    published = tmp_path / "pub" / PUBLISHED["small"]
    published.parent.mkdir()
    published.write_bytes(gen_only.read_bytes())
    with pytest.raises(CheckpointError, match=r"no \['classifier_head'\].*jetlab data fetch omnilearned_checkpoints "
                                              r"--subset small"):
        convert_omnilearned(published, tmp_path / "pub_out")
    assert not (tmp_path / "pub_out").exists()


# ------------------------------------------------------------------------------- reproducibility
def test_global_rng_streams_are_untouched(tiny_dir, tiny_pt, jets):
    from jetlab.tasks.common import build_finetune_model, build_scratch_model

    js, pdg = jets
    torch.manual_seed(42)
    expected = torch.rand(4)
    torch.manual_seed(42)
    model = jm.load(tiny_dir)
    batch = jetlab_batch(model, js)
    model.train()
    a = model.classify(*batch)[0]
    b = model.classify(*batch)[0]
    build_scratch_model(tiny_dir, 1, seed=3)
    assert torch.equal(torch.rand(4), expected)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    # omnilearned's own forward draws from the global stream even when only classifying
    X, pid = expected_inputs(js, pdg)
    net = reference(tiny_pt, num_classes=5, **TINY)
    torch.manual_seed(42)
    net(X, None, pid=pid, add_info=torch.zeros(X.shape[:2] + (4,)))
    assert not torch.equal(torch.rand(4), expected)
    # scratch initialisation is a function of the seed alone
    w = [build_scratch_model(tiny_dir, 1, seed=s).model.net.body.token.detach().clone() for s in (3, 3, 4)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    ft = build_finetune_model(tiny_dir, 1, seed=0)
    assert ft.model.net.classifier.out.weight.abs().sum() == 0 and ft.model.settings.num_classes == 1


# ------------------------------------------------------------------------------- refusals
def _modified(tiny_pt: Path, tmp_path: Path, fn) -> Path:
    ckpt = torch.load(tiny_pt, weights_only=True)
    fn(ckpt)
    out = tmp_path / "modified.pt"
    torch.save(ckpt, out)
    return out


def test_mismatched_size_and_heads_are_refused_by_name(small_pt, tiny_pt, tmp_path):
    with pytest.raises(ConfigMismatchError, match=r"base_dim: checkpoint=128 expected=512") as e:
        convert_omnilearned(small_pt, tmp_path / "x", size="medium")
    assert set(e.value.diffs) == {"base_dim", "num_transformers", "num_heads"}
    with pytest.raises(ConfigMismatchError, match=r"num_heads: checkpoint=4 expected=2"):
        convert_omnilearned(tiny_pt, tmp_path / "y", num_heads=2)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_tensors_that_do_not_fit_are_named(tiny_pt, tmp_path):
    def drop(c):
        del c["body"]["norm.weight"]

    def extra(c):
        c["body"]["surplus.weight"] = torch.zeros(3)

    def reshape(c):
        c["generator_head"]["fc.0.fc1.weight"] = torch.zeros(7, 32)

    for fn, pattern in ((drop, r"body.*lacks \['norm.weight'\]"), (extra, r"left unloaded \['surplus.weight'\]"),
                        (reshape, r"generator_head.*fc.0.fc1.weight: file \(7, 32\) vs model \(64, 32\)")):
        with pytest.raises(CheckpointError, match=pattern):
            convert_omnilearned(_modified(tiny_pt, tmp_path, fn), tmp_path / "out")


def test_pickled_code_is_refused_without_torchs_unsafe_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"body": {}, "payload": types.SimpleNamespace(a=1)}, path)
    with pytest.raises(CheckpointError) as e:
        convert_omnilearned(path, tmp_path / "out")
    msg = str(e.value)
    assert msg.startswith(f"{path}: refused") and "types.SimpleNamespace" in msg
    assert "'body', 'classifier_head' and/or 'generator_head'" in msg  # what was expected
    # torch's own message says "Re-running `torch.load` with `weights_only` set to `False` will likely
    # succeed": advice to run a downloaded file's code, which must not reach the user (nor its chain)
    assert "weights_only" not in msg and "Re-running" not in msg
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert not (tmp_path / "out").exists()
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"damaged\.pt: not a readable torch checkpoint") as e:
        convert_omnilearned(damaged, tmp_path / "out")
    assert "weights_only" not in str(e.value) and e.value.__cause__ is None


def test_standardised_inputs_are_refused(tiny_dir, jets):
    from jetlab.data.preprocess import Standardizer

    js, _ = jets
    model = jm.load(tiny_dir)
    x, mask, j, _ = model_inputs(js, Standardizer.fit_jetset(js))
    with pytest.raises(ValueError, match="standardised particle inputs"):
        model.classify(torch.tensor(x), torch.tensor(mask), torch.tensor(j))


# ------------------------------------------------------------------------------- fine-tuning API
def test_param_groups_freeze_and_save_roundtrip(tiny_dir, tmp_path, jets):
    model = jm.load(tiny_dir).reset_classifier(1)
    groups = {g["name"]: g for g in model.param_groups(1e-3, lr_factor=4.0, weight_decay=0.1)}
    assert math.isclose(groups["body"]["lr"], 2.5e-4) and groups["heads"]["lr"] == 1e-3
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(groups["body"]["params"]) == ids(model.net.body.parameters())
    assert ids(groups["heads"]["params"]) | ids(groups["body"]["params"]) == ids(model.parameters())
    model.freeze("body")
    assert [g["name"] for g in model.param_groups(1e-3)] == ["heads"]
    model.unfreeze()
    with torch.no_grad():
        model.net.classifier.out.weight.normal_()
    batch = jetlab_batch(model, jets[0])
    again = jm.load(jm.save(model, tmp_path / "ft"))
    assert again.settings.num_classes == 1 and again.card.architecture == "omnilearned-pet2"
    with torch.no_grad():
        torch.testing.assert_close(again.classify(*batch)[0], model.eval().classify(*batch)[0], atol=0, rtol=0)
    assert "OmniLearned PET2" in model.describe()


def test_run_tagging_finetunes_an_omnilearned_checkpoint(tiny_dir):
    from jetlab.tasks.common import TaskData
    from jetlab.tasks.tagging import run_tagging

    js, _ = make_jets(300, seed=11)
    res = run_tagging(TaskData("synthetic", js), checkpoint=str(tiny_dir), models=("finetuned", "scratch"),
                      fractions=(1.0,), seeds=(0,), epochs=2, batch_size=32, lr=3e-3, device="cpu", progress=False)
    by = {r.model: r for r in res.runs}
    assert set(by) == {"finetuned", "scratch"} and res.settings["checkpoint"] == str(tiny_dir)
    for r in by.values():
        assert all(np.isfinite(r.history["train_loss"])) and np.std(r.scores) > 0
        assert r.metrics["auc"] > 0.6  # multiplicity separates the classes: both learned from raw inputs
    assert not np.allclose(by["finetuned"].scores, by["scratch"].scores)


# ------------------------------------------------------------------------------- names, manifest, CLI
def test_omnilearned_names_resolve_to_the_fetched_and_converted_file(small_pt, tmp_path, monkeypatch):
    from jetlab.tasks.checkpoint_resolver import resolve_checkpoint

    monkeypatch.setenv("JETLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("JETLAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="jetlab data fetch omnilearned_checkpoints --subset small"):
        resolve_checkpoint("omnilearned:small")
    with pytest.raises(ValueError, match="unknown OmniLearned size 'huge'"):
        resolve_omnilearned("omnilearned:huge")
    from jetlab import runner

    nb02 = Path(__file__).resolve().parents[1] / "notebooks" / "02_top_tagging.ipynb"
    with pytest.raises(runner.ParameterError, match="(?s)'checkpoint'.*jetlab data fetch omnilearned_checkpoints"):
        runner.validate_parameters(nb02, {"checkpoint": "omnilearned:small"})  # before any work starts
    fetched = tmp_path / "data" / "omnilearned_checkpoints" / "best_model_pretrain_s.pt"
    fetched.parent.mkdir(parents=True)
    fetched.write_bytes(small_pt.read_bytes())
    assert runner.validate_parameters(nb02, {"checkpoint": "omnilearned:small"})["checkpoint"] == "omnilearned:small"
    assert not (tmp_path / "cache" / "checkpoints" / "omnilearned-small").exists()  # validation does not convert
    path = resolve_checkpoint("omnilearned:small")
    assert path == tmp_path / "cache" / "checkpoints" / "omnilearned-small"
    model = jm.load("omnilearned:small")
    import hashlib

    assert model.card.metrics["source_sha256"] == hashlib.sha256(small_pt.read_bytes()).hexdigest()
    assert model.settings.size == "small" and "omnilearned-small" in jm.available_checkpoints()
    fetched.unlink()  # converted once: no longer needed
    assert resolve_checkpoint("omnilearned:small") == path


def test_manifest_lists_the_published_files():
    from omnilearned import utils

    from jetlab.data.manifests import load_manifest

    m = load_manifest("omnilearned_checkpoints")
    base = re.search(r'f"(https://[^"{]+)\{checkpoint_name\}"', inspect.getsource(utils.restore_checkpoint)).group(1)
    for size, tag in (("small", "pretrain_s"), ("medium", "pretrain_m"), ("large", "pretrain_l")):
        (f,) = m.files_for(size)
        assert f.name == get_checkpoint_name(tag) == PUBLISHED[size] and f.url == base + f.name
        assert f.checksum is None and f.size is None  # the publisher gives neither (notes say so)
    assert [f.name for f in m.files_for(None)] == ["best_model_pretrain_s.pt"]


def test_cli_convert(tiny_pt, small_pt, tmp_path, capsys):
    from jetlab.cli.main import main

    assert main(["model", "convert-omnilearned", str(tiny_pt), "--out", str(tmp_path / "c")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "c" / "model.safetensors").is_file()
    assert main(["model", "convert-omnilearned", str(small_pt), "--size", "large", "--out", str(tmp_path / "d")]) == 2
    assert "base_dim: checkpoint=128 expected=1024" in capsys.readouterr().err


def test_notebook_02_runs_with_an_omnilearned_checkpoint(tiny_dir, tmp_path, monkeypatch):
    import json

    from jetlab import runner

    monkeypatch.setenv("JETLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("JETLAB_HEADLESS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "02_top_tagging.ipynb"
    runner.run_notebook(notebook, {"checkpoint": str(tiny_dir)}, profile="ci-tiny", out=tmp_path / "02")
    metrics = json.loads((tmp_path / "02" / "metrics.json").read_text())
    assert metrics["checkpoint"] == str(tiny_dir)
    assert {r["model"] for r in metrics["runs"]} == {"finetuned", "scratch", "pfn"}
    # every reported AUC is sklearn's on that run's stored test scores and labels (tagging_results.json),
    # and the models separate top from QCD beyond a chance-level classifier's AUC, in units of its standard
    # deviation on these 60 test jets (Mann-Whitney null: sd^2 = (n1 + n2 + 1) / (12 n1 n2), 0.076):
    # the PFN by 3 sd (measured 0.750-0.754), the fine-tuned PET (a random tiny OmniLearned start, ci-tiny
    # epochs) on average by 1.5 sd (measured 0.639-0.659)
    from sklearn.metrics import roc_auc_score

    stored = json.loads((tmp_path / "02" / "tagging_results.json").read_text())
    labels, weights = np.asarray(stored["test_labels"]), np.asarray(stored["test_weights"])
    scores = {(r["model"], r["fraction"], r["seed"]): np.asarray(r["scores"]) for r in stored["runs"]}
    assert len(scores) == len(metrics["runs"])
    for r in metrics["runs"]:
        s = scores[(r["model"], r["fraction"], r["seed"])]
        assert s.shape == labels.shape
        assert r["metrics"]["auc"] == pytest.approx(roc_auc_score(labels, s, sample_weight=weights), abs=1e-9)
    n1, n0 = int((labels == 1).sum()), int((labels == 0).sum())
    chance_sd = np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))
    auc = {m: [r["metrics"]["auc"] for r in metrics["runs"] if r["model"] == m] for m in ("pfn", "finetuned")}
    assert min(auc["pfn"]) > 0.5 + 3 * chance_sd
    assert np.mean(auc["finetuned"]) > 0.5 + 1.5 * chance_sd


def test_notebook_03_runs_with_an_omnilearned_checkpoint(tiny_dir, tmp_path, monkeypatch):
    import json

    from jetlab import runner

    monkeypatch.setenv("JETLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("JETLAB_HEADLESS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "03_omnifold_unfolding.ipynb"
    runner.run_notebook(notebook, {"checkpoint": str(tiny_dir)}, profile="ci-tiny", out=tmp_path / "03")
    metrics = json.loads((tmp_path / "03" / "metrics.json").read_text())
    assert metrics["settings"]["checkpoint"] == str(tiny_dir)
    assert set(metrics["runs"]) == {"pretrained", "scratch", "pfn", "mlp"}
    for name in ("pretrained", "scratch"):
        losses = [v for it in metrics["runs"][name]["best_val_loss"] for v in it.values()]
        assert len(losses) == 4 and all(np.isfinite(losses))
        assert all(np.isfinite(v["value"]) for v in metrics["triangular_discriminator"][f"OmniFold-{name}"].values())


# ------------------------------------------------------------------------------- OmniFold (notebook 03)
def _spy(spec):
    """Record every network a classifier spec builds, with a copy of its initial weights."""
    built = []
    build = spec.build

    def recording(level):
        model = build(level)
        built.append((model, {k: v.detach().clone() for k, v in model.state_dict().items()}))
        return model

    spec.build = recording
    return built


def _omnifold_sets(n: int = 240):
    """sim (gen, reco: the same events with pT smeared by 10%) and data (another sample) as JetSets."""
    sim, _ = make_jets(n, seed=21)
    data, _ = make_jets(n, seed=22, max_bkg=20)
    rng = np.random.default_rng(5)
    parts = sim.particles.copy()
    scale = rng.normal(1.0, 0.1, parts.shape[:2]).clip(0.5, 1.5) * sim.mask
    parts[..., 0] *= scale
    parts[..., 3] *= scale
    reco = JetSet(parts, sim.mask, jet_features_from_particles(parts, sim.mask), sim.labels, particle_features=FEATURES)
    return sim, reco, data


def test_omnifold_finetunes_an_omnilearned_small_checkpoint(small_pt, tmp_path):
    from safetensors.torch import load_file

    from jetlab.tasks.omnifold import PETClassifier, omnifold

    ckpt = convert_omnilearned(small_pt, tmp_path / "small", size="small")
    pretrained = load_file(str(ckpt / "model.safetensors"))
    sim, reco, data = _omnifold_sets()
    spec = PETClassifier(checkpoint=str(ckpt), pretrained=True, lr=1e-3, max_particles=16)
    built = _spy(spec)
    # step2_init="previous": step 2 builds its own model too (by default it starts from step 1's, checked below)
    res = omnifold(sim, reco, data, classifier_factory=spec, n_iterations=1, epochs=1, batch_size=64, device="cpu",
                   seed=0, progress=False, step2_init="previous")
    assert len(built) == 2  # step 1 and step 2
    for model, start in built:
        assert type(model).__name__ == "OmniLearnedModel" and model.settings.size == "small"
        # starts from the converted checkpoint's body, with a fresh zero output layer
        body = [k for k in start if k.startswith("net.body.")]
        assert len(body) > 100 and all(torch.equal(start[k], pretrained[k]) for k in body)
        assert start["net.classifier.out.weight"].abs().sum() == 0
        groups = {g["name"]: g["lr"] for g in spec.param_groups(model, 1e-3)}
        assert groups == {"body": pytest.approx(2e-4), "heads": 1e-3}
        # fine-tuning moved the body and the head
        moved = max(float((p.detach() - start[k]).abs().max()) for k, p in model.state_dict().items() if k in body)
        assert moved > 1e-5 and float(model.net.classifier.out.weight.detach().abs().max()) > 1e-5
    w = res.weights()
    assert w.shape == (len(sim),) and np.all(np.isfinite(w)) and np.std(w) > 0  # no longer the prior (all ones)
    assert np.isfinite(res.histories[0]["step1"]["best_val_loss"])
    built.clear()
    omnifold(sim, reco, data, classifier_factory=spec, n_iterations=1, epochs=1, batch_size=64, device="cpu", seed=0,
             progress=False)
    assert len(built) == 1  # the default: step 2 fine-tunes a copy of step 1's model, nothing else is built


def test_omnifold_scratch_copies_the_omnilearned_architecture_with_seeded_weights(tiny_dir):
    from jetlab.tasks.omnifold import PETClassifier, omnifold

    pretrained = jm.load(tiny_dir)
    sim, reco, data = _omnifold_sets(120)
    spec = PETClassifier(checkpoint=str(tiny_dir), pretrained=False, lr=1e-3)
    built = _spy(spec)
    kw = dict(n_iterations=1, epochs=1, batch_size=64, device="cpu", seed=0, progress=False, step2_init="previous")
    omnifold(sim, reco, data, classifier_factory=spec, **kw)  # each step builds its own model
    starts = [s for _, s in built]
    assert all(m.settings.replace(num_classes=5) == pretrained.settings for m, _ in built)
    token = "net.body.token"
    assert not torch.equal(starts[0][token], pretrained.net.body.token)  # random, not the checkpoint's
    assert not torch.equal(starts[0][token], starts[1][token])  # step 1 and 2 drew their own seeds
    again = _spy(spec := PETClassifier(checkpoint=str(tiny_dir), pretrained=False, lr=1e-3))
    omnifold(sim, reco, data, classifier_factory=spec, **kw)
    assert torch.equal(again[0][1][token], starts[0][token])  # ... reproducibly from omnifold's seed


# ------------------------------------------------------------------------------- anomaly detection (notebook 04)
def test_jet_embedding_is_omnilearned_classifier_head_before_its_output(tiny_dir, jets):
    from jetlab.tasks.anomaly import DijetClassifier

    model = jm.load(tiny_dir)
    batch = jetlab_batch(model, jets[0])
    with torch.no_grad():
        emb = model.jet_embedding(*batch)
        logits = model.classify(*batch)[0]
        torch.testing.assert_close(model.net.classifier.out(emb), logits, atol=1e-5, rtol=1e-5)
    assert emb.shape == (len(jets[0]), 2 * 32) == (len(jets[0]), model.embedding_dim)
    dijet = DijetClassifier(model)
    assert dijet.combine[0].in_features == 2 * model.embedding_dim
    assert {id(p) for p in dijet.param_groups(1e-3)[0]["params"]} == {id(p) for p in model.net.body.parameters()}


def test_restandardize_rebuilds_inputs_as_dijet_inputs_would(jets):
    from test_anomaly import fake_events

    from jetlab.data.preprocess import Standardizer
    from jetlab.model.omnilearned import identity_standardizer
    from jetlab.tasks.anomaly import dijet_inputs
    from jetlab.tasks.anomaly.training import restandardize

    ev = fake_events(40, 10)
    fitted = Standardizer.fit_jetset(JetSet.concatenate([ev.jet1, ev.jet2]))
    raw = identity_standardizer()
    got = restandardize(dijet_inputs(ev, fitted), fitted, raw)
    want = dijet_inputs(ev, raw)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4, err_msg=k)
    assert not np.allclose(dijet_inputs(ev, fitted)["x1"], want["x1"], atol=1e-2)  # the scalings differ


def test_cathode_with_an_omnilearned_checkpoint_uses_jetlab_generator_and_says_so(tiny_dir, tmp_path, caplog):
    from test_anomaly import fake_events

    from jetlab.model import PET, PETConfig
    from jetlab.tasks import anomaly as A
    from jetlab.tasks.anomaly.detectors import background_generator_source

    jetlab_ckpt = jm.save(PET(PETConfig.tiny(num_classes=1)), tmp_path / "jetlab")
    assert background_generator_source(str(jetlab_ckpt)) == (str(jetlab_ckpt), "")
    gen, notice = background_generator_source(str(tiny_dir), config="tiny")
    assert gen is None and "OmniLearned" in notice and "class label only" in notice and "from scratch" in notice
    assert background_generator_source(str(tiny_dir), str(jetlab_ckpt))[0] == str(jetlab_ckpt)
    windows = A.MassWindows()
    split = A.inject_signal(fake_events(360, 120, seed=1), 40, seed=0)
    sb = split.data.subset(windows.in_sb(split.data.mjj))
    with pytest.raises(ValueError, match=r"OmniLearned checkpoint; OmniLearned's generator head is conditioned on a "
                                         r"class label only.*checkpoint=None"):
        A.fit_background_generator(sb, windows, checkpoint=str(tiny_dir), epochs=1, jet_epochs=1, device="cpu")
    caplog.set_level(logging.INFO, logger="jetlab")
    caplog.clear()
    run = A.run_cathode(split, windows, checkpoint=str(tiny_dir), seed=0, oversample=1, kfolds=2, epochs=1,
                        gen_epochs=1, jet_epochs=2, gen_steps=2, batch_size=64, min_background_events=3, device="cpu")
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("jetlab")]
    assert logged.count(notice) == 1 and run.extras["background_generator"] == notice
    assert type(run.extras["generator"].particle_model.pet).__name__ == "PET"  # jetlab's generator
    n_sr = int(windows.in_sr(split.data.mjj).sum())
    assert run.scores.shape == (n_sr,) and np.all((run.scores >= 0) & (run.scores <= 1)) and np.std(run.scores) > 0
    # the AUC is sklearn's on the same SR scores and truth labels, computed here independently
    from sklearn.metrics import roc_auc_score

    truth = split.data.labels[windows.in_sr(split.data.mjj)]
    assert run.metrics["auc"] == pytest.approx(roc_auc_score(truth, run.scores), abs=1e-9)
    ideal = A.run_idealised(split, windows, checkpoint=str(tiny_dir), seed=0, kfolds=2, epochs=1, batch_size=64,
                            min_background_events=3, device="cpu")
    assert ideal.scores.shape == (n_sr,) and np.std(ideal.scores) > 0
