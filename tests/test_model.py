"""PET model: shapes, symmetries, padding, feature groups, losses, training sanity, diffusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jetlab.data.preprocess import Standardizer, model_inputs
from jetlab.data.schema import JetSet, jet_features_from_particles
from jetlab.model import (
    PET,
    LossWeights,
    PETConfig,
    classification_loss,
    complete_particle_inputs,
    pretraining_loss,
    sample,
    v_loss,
)
from jetlab.model.diffusion import alpha_sigma, logsnr_schedule

torch.set_num_threads(2)


def make_batch(n_per_jet, p=None, seed=0, num_classes=2):
    """Random continuous inputs (no kNN ties), front-packed mask."""
    g = torch.Generator().manual_seed(seed)
    b = len(n_per_jet)
    p = p or max(max(n_per_jet), 1)
    mask = torch.arange(p).unsqueeze(0) < torch.tensor(n_per_jet).unsqueeze(1)
    x = torch.randn(b, p, 13, generator=g) * mask.unsqueeze(-1)
    return {
        "x": x,
        "mask": mask,
        "jets": torch.randn(b, 4, generator=g),
        "label": torch.randint(0, num_classes, (b,), generator=g),
        "weight": torch.rand(b, generator=g) + 0.5,
    }


def pad(batch, extra):
    out = dict(batch)
    b, p, f = batch["x"].shape
    out["x"] = torch.cat([batch["x"], torch.zeros(b, extra, f)], 1)
    out["mask"] = torch.cat([batch["mask"], torch.zeros(b, extra, dtype=torch.bool)], 1)
    return out


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = PETConfig.tiny(num_classes=3, layer_scale_init=0.5)  # non-trivial attention contributions
    return PET(cfg).eval()


# ---------------------------------------------------------------------------- config / shapes
def test_presets_shapes_and_paper_size():
    for cfg in (PETConfig.tiny(), PETConfig.paper()):
        model = PET(cfg).eval()
        b = make_batch([5, 12, 1], p=12)
        logits, reg = model.classify(b["x"], b["mask"], b["jets"])
        assert logits.shape == (3, cfg.num_classes) and reg.shape == (3, 4)
        assert model.body(b["x"], b["mask"]).shape == (3, 12, cfg.projection_dim)
        v = model.denoise(b["x"][..., :3], b["mask"], b["jets"], torch.rand(3))
        assert v.shape == (3, 12, 3)
    counts = PET(PETConfig.paper()).num_parameters()
    assert 1.5e6 <= counts["total"] <= 2.5e6
    assert 1.0e6 <= counts["body"] <= 1.6e6
    assert counts["total"] == counts["body"] + counts["classifier"] + counts["generator"]


def test_config_roundtrip_and_validation():
    cfg = PETConfig.small(num_classes=4)
    assert PETConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.diff(cfg.replace(k=3)) == {"k": (10, 3)}
    with pytest.raises(ValueError, match="unknown field.*bogus"):
        PETConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="divisible by num_heads"):
        PETConfig(projection_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="feature_drop"):
        PETConfig(feature_drop=1.0)


def test_describe_prints_counts(capsys):
    model = PET(PETConfig.tiny())
    text = model.describe()
    out = capsys.readouterr().out
    assert text in out
    for part, n in model.num_parameters().items():
        assert part in text and f"{n:,d}" in text


# ---------------------------------------------------------------------------- symmetries
def test_padding_does_not_change_outputs(tiny):
    b = make_batch([7, 12, 3, 1], p=12, seed=1)
    bp = pad(b, 9)
    t = torch.tensor([0.1, 0.5, 0.9, 0.3])
    with torch.no_grad():
        l1, r1 = tiny.classify(b["x"], b["mask"], b["jets"])
        l2, r2 = tiny.classify(bp["x"], bp["mask"], bp["jets"])
        v1 = tiny.denoise(b["x"], b["mask"], b["jets"], t, b["label"])
        v2 = tiny.denoise(bp["x"], bp["mask"], bp["jets"], t, b["label"])
        h2 = tiny.body(bp["x"], bp["mask"])
    torch.testing.assert_close(l1, l2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(r1, r2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v1, v2[:, :12], atol=1e-5, rtol=1e-5)
    assert (v2[:, 12:] == 0).all() and (h2[~bp["mask"]] == 0).all()
    # garbage in padded slots is ignored too
    bg = dict(bp)
    bg["x"] = bp["x"] + 100.0 * (~bp["mask"]).unsqueeze(-1)
    with torch.no_grad():
        torch.testing.assert_close(tiny(bg["x"], bg["mask"], bg["jets"]), l1, atol=1e-5, rtol=1e-5)


def test_permutation_invariance_and_equivariance(tiny):
    b = make_batch([10, 10, 6], p=10, seed=2)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    t = torch.full((3,), 0.4)
    with torch.no_grad():
        l1 = tiny(b["x"], b["mask"], b["jets"])
        l2 = tiny(b["x"][:, perm], b["mask"][:, perm], b["jets"])  # also un-packs the padding of jet 2
        v1 = tiny.denoise(b["x"], b["mask"], b["jets"], t)
        v2 = tiny.denoise(b["x"][:, perm], b["mask"][:, perm], b["jets"], t)
    torch.testing.assert_close(l1, l2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v1[:, perm], v2, atol=1e-5, rtol=1e-5)
    assert l1.std(0).max() > 1e-3  # outputs really depend on the jet


def test_one_particle_and_empty_jets_are_finite():
    torch.manual_seed(0)
    model = PET(PETConfig.tiny(num_classes=2, feature_drop=0.5, drop_path=0.2))
    b = make_batch([1, 0, 4, 0, 1], p=6, seed=4)
    b["label"] = torch.tensor([0, 1, 1, 0, 1])
    model.train()
    loss, parts = pretraining_loss(model, b, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in parts.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(b["x"], b["mask"], b["jets"])).all()
        z = sample(model, b["mask"], b["jets"], steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(z).all() and (z[~b["mask"]] == 0).all()


def test_bf16_autocast_runs_close_to_fp32(tiny):
    b = make_batch([8, 5], p=8, seed=5)
    with torch.no_grad():
        ref = tiny(b["x"], b["mask"], b["jets"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = tiny(b["x"], b["mask"], b["jets"])
    assert torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), ref, atol=0.1, rtol=0.1)


# ---------------------------------------------------------------------------- feature groups
def test_groups_force_pid_off(tiny):
    b = make_batch([9, 4], p=9, seed=6)
    x0 = b["x"].clone()
    x0[..., 7:] = 0
    with torch.no_grad():
        forced = tiny(b["x"], b["mask"], b["jets"], groups=("kinematics",))
        zeroed = tiny(x0, b["mask"], b["jets"])
        full = tiny(b["x"], b["mask"], b["jets"], groups=("kinematics", "pid"))
        default = tiny(b["x"], b["mask"], b["jets"])
    torch.testing.assert_close(forced, zeroed, atol=0, rtol=0)
    torch.testing.assert_close(full, default, atol=0, rtol=0)
    assert not torch.allclose(forced, full)
    with pytest.raises(ValueError, match="unknown feature group"):
        tiny(b["x"], b["mask"], b["jets"], groups=("kinematics", "tracks"))
    with pytest.raises(ValueError, match="kinematics"):
        tiny(b["x"], b["mask"], b["jets"], groups=("pid",))


def test_training_feature_drop_zeros_pid_inputs_per_jet():
    torch.manual_seed(0)
    model = PET(PETConfig.tiny(feature_drop=0.5)).train()
    seen = []
    model.body.embed.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    b = make_batch([6] * 64, p=6, seed=7)
    model.body(b["x"], b["mask"])
    x_in = seen[0]
    torch.testing.assert_close(x_in[..., :7], b["x"][..., :7], atol=0, rtol=0)
    dropped = (x_in[..., 7:] == 0).all(dim=(1, 2))
    kept = torch.isclose(x_in[..., 7:], b["x"][..., 7:]).all(dim=(1, 2))
    assert (dropped ^ kept).all()  # whole group per jet, nothing in between
    assert 10 < dropped.sum() < 54
    model.eval()
    seen.clear()
    model.body(b["x"], b["mask"])
    torch.testing.assert_close(seen[0], b["x"], atol=0, rtol=0)  # no dropping at eval


# ---------------------------------------------------------------------------- fine-tuning API
def test_param_groups_freeze_and_reset():
    model = PET(PETConfig.tiny())
    groups = model.param_groups(1e-3, lr_factor=5)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == pytest.approx({"body": 2e-4, "heads": 1e-3})
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == model.num_parameters()["total"]
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(groups[0]["params"]) == ids(model.body.parameters())
    assert ids(groups[1]["params"]) == ids(model.classifier.parameters()) | ids(model.generator.parameters())
    assert "weight_decay" not in groups[0] and model.param_groups(1e-3, weight_decay=0.2)[1]["weight_decay"] == 0.2
    with pytest.raises(ValueError, match="lr_factor must be > 0"):
        model.param_groups(1e-3, lr_factor=0)
    model.freeze("body")
    assert [g["name"] for g in model.param_groups(1e-3)] == ["heads"]
    assert not any(p.requires_grad for p in model.body.parameters())
    model.unfreeze()
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="unknown part"):
        model.freeze("head")
    model.reset_classifier(1)
    b = make_batch([4, 3], p=4)
    out = model(b["x"], b["mask"], b["jets"])
    assert out.shape == (2, 1) and torch.equal(out, torch.zeros(2, 1))  # starts at ln 2, not at random
    assert model.config.num_classes == 1
    # a zero head still learns: one step moves the logits toward the labels (eval: no random feature drop)
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    target = torch.tensor([1.0, 0.0])
    torch.nn.functional.binary_cross_entropy_with_logits(model(b["x"], b["mask"], b["jets"])[:, 0], target).backward()
    opt.step()
    with torch.no_grad():
        after = model(b["x"], b["mask"], b["jets"])[:, 0]
    assert after[0] > after[1]


# ---------------------------------------------------------------------------- losses and training
def test_noised_classifier_term_is_active():
    torch.manual_seed(0)
    model = PET(PETConfig.tiny(num_classes=3)).train()
    b = make_batch([5, 8, 3, 8], p=8, seed=8, num_classes=3)
    only_ce = dict(mse=0.0, diffusion=0.0)
    with_noise, _ = pretraining_loss(model, b, LossWeights(noised=True, **only_ce), torch.Generator().manual_seed(1))
    without, parts = pretraining_loss(model, b, LossWeights(noised=False, **only_ce), torch.Generator().manual_seed(1))
    assert with_noise > without + 1e-3
    assert set(parts) == {"ce", "mse", "diff"} and parts["diff"] == 0
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(classification_loss(model, b), parts["ce"], rtol=1e-5, atol=1e-6)


def test_tiny_model_learns_two_easy_classes():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n, p = 256, 16
    label = torch.randint(0, 2, (n,), generator=g)
    mask = torch.arange(p).unsqueeze(0) < torch.randint(4, p + 1, (n, 1), generator=g)
    x = torch.randn(n, p, 13, generator=g)
    x[..., 0] += 1.5 * (2 * label.view(-1, 1) - 1)  # class 1 shifted in deta
    x = x * mask.unsqueeze(-1)
    data = {"x": x, "mask": mask, "jets": torch.randn(n, 4, generator=g), "label": label, "weight": torch.ones(n)}
    model = PET(PETConfig.tiny(num_classes=2, feature_drop=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _step in range(30):
        idx = torch.randint(0, n, (64,), generator=g)
        loss = classification_loss(model, {k: v[idx] for k, v in data.items()})
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x, mask, data["jets"]).argmax(1) == label).float().mean()
    assert acc > 0.9


# ---------------------------------------------------------------------------- diffusion
def test_schedule_endpoints():
    t = torch.tensor([0.0, 0.5, 1.0])
    ls = logsnr_schedule(t)
    assert ls[0] == pytest.approx(20.0, abs=1e-3) and ls[2] == pytest.approx(-20.0, abs=1e-3)
    assert ls[1] == pytest.approx(0.0, abs=1e-4)
    a, s = alpha_sigma(torch.rand(100))
    torch.testing.assert_close(a**2 + s**2, torch.ones(100))


def test_v_loss_decreases_and_sampler_respects_mask():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = PET(PETConfig.tiny(num_classes=2))
    b = make_batch([8, 5, 8, 2] * 4, p=8, seed=9)
    b["x"][..., :3] = 0.3 * b["x"][..., :3] + torch.tensor([1.0, -1.0, 0.5]) * b["mask"].unsqueeze(-1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    model.train()
    for _ in range(40):
        loss = v_loss(model, b, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    model.eval()
    z1 = sample(model, b["mask"], b["jets"], b["label"], steps=4, generator=torch.Generator().manual_seed(5))
    z2 = sample(model, b["mask"], b["jets"], b["label"], steps=4, generator=torch.Generator().manual_seed(5))
    zg = sample(model, b["mask"], b["jets"], b["label"], steps=4, generator=torch.Generator().manual_seed(5), guidance=1.0)
    assert z1.shape == (16, 8, 3) and torch.isfinite(z1).all() and torch.isfinite(zg).all()
    assert torch.equal(z1, z2)
    assert (z1[~b["mask"]] == 0).all() and (z1[b["mask"]] != 0).all()
    # learned the location of the training particles (mean ~ (1, -1, 0.5))
    assert torch.allclose(z1[b["mask"]].mean(0), torch.tensor([1.0, -1.0, 0.5]), atol=0.5)
    with pytest.raises(ValueError, match="guidance"):
        sample(model, b["mask"], b["jets"], None, steps=2, guidance=1.0)


def test_sampler_inpaints_the_slots_it_is_told_to_keep():
    torch.manual_seed(0)
    model = PET(PETConfig.tiny(num_classes=2)).eval()
    b = make_batch([8, 5, 8, 2] * 2, p=8, seed=3)
    mask = b["mask"]
    known = torch.randn(8, 8, 3) * mask.unsqueeze(-1)
    keep = mask & (torch.arange(8) % 2 == 0)  # every other particle is known
    gen = torch.Generator().manual_seed(5)
    out = sample(model, mask, b["jets"], b["label"], steps=4, generator=gen, known=known, keep=keep)
    assert torch.equal(out[keep], known[keep])  # kept slots end exactly at their values
    assert (out[~mask] == 0).all()
    free = sample(model, mask, b["jets"], b["label"], steps=4, generator=torch.Generator().manual_seed(5))
    drawn = mask & ~keep
    assert not torch.allclose(free[keep], known[keep])  # a plain draw does not land there: the check can fail
    # the others are drawn given the kept ones: they differ from a draw that was given nothing
    assert (out[drawn] - free[drawn]).abs().max() > 1e-3
    # or single coordinates: the angles of every particle known, its third coordinate drawn
    coords = mask.unsqueeze(-1) & torch.tensor([True, True, False])
    out3 = sample(model, mask, b["jets"], b["label"], steps=4, generator=torch.Generator().manual_seed(5),
                  known=known, keep=coords)
    assert torch.equal(out3[..., :2][mask], known[..., :2][mask]) and not torch.allclose(out3[..., 2][mask], known[..., 2][mask])
    with pytest.raises(ValueError, match=r"inpainting needs known \(8, 8, 3\)"):
        sample(model, mask, b["jets"], steps=2, known=known[:, :4], keep=keep)


def test_complete_particle_inputs_matches_preprocessing():
    rng = np.random.default_rng(0)
    n, p = 20, 10
    mask = np.arange(p)[None] < rng.integers(2, p + 1, (n, 1))
    pt = np.sort(rng.exponential(20.0, (n, p)) + 1.0, axis=1)[:, ::-1]
    jet_eta = rng.uniform(-2, 2, (n, 1))
    eta = jet_eta + rng.normal(0, 0.3, (n, p))
    phi = rng.normal(0, 0.3, (n, p))
    parts = np.stack([pt, eta, phi, pt * np.cosh(eta)], -1) * mask[..., None]
    jets = jet_features_from_particles(parts, mask)
    js = JetSet(parts, mask, jets, np.zeros(n, dtype=np.int64))
    x, m, j, std = model_inputs(js)
    out = complete_particle_inputs(x[..., :3], m, j, std)
    assert isinstance(out, np.ndarray) and out.shape == (n, p, 13)
    np.testing.assert_allclose(out[..., :7][m], x[..., :7][m], atol=2e-3)
    assert (out[~m] == 0).all() and (out[..., 7:] == 0).all()
    tout = complete_particle_inputs(torch.from_numpy(x[..., :3]), torch.from_numpy(m), torch.from_numpy(j), std)
    assert isinstance(tout, torch.Tensor)
    np.testing.assert_allclose(tout.numpy(), out, atol=1e-6)
    assert isinstance(std, Standardizer)
    # the log-pT coordinate rebuilds the same inputs from (deta, dphi, log pT)
    out_pt = complete_particle_inputs(x[..., [0, 1, 3]], m, j, std, pt_input="log_pt")
    np.testing.assert_allclose(out_pt[..., :7][m], x[..., :7][m], atol=2e-3)
    # ... and reading log pT as log(1 - pT/pT_jet) does not (a wrong coordinate must fail)
    wrong = complete_particle_inputs(x[..., [0, 1, 3]], m, j, std)
    assert np.abs(wrong[..., 3][m] - x[..., 3][m]).max() > 0.5
    with pytest.raises(ValueError, match="pt_input must be one of"):
        complete_particle_inputs(x[..., :3], m, j, std, pt_input="pt")


def test_balance_ptrel_makes_the_particles_add_up_to_the_jet_pt():
    from jetlab.model.diffusion import balance_ptrel

    rng = np.random.default_rng(1)
    n, p = 6, 9
    mask = np.arange(p)[None] < rng.integers(2, p + 1, (n, 1))
    dphi = rng.normal(0, 0.2, (n, p))
    ptrel = rng.dirichlet(np.ones(p), n) * rng.uniform(0.5, 1.6, (n, 1))  # jets 0.5-1.6x too soft / hard
    out = balance_ptrel(torch.from_numpy(ptrel), torch.from_numpy(dphi), torch.from_numpy(mask)).numpy()
    sx, sy = ((out * np.cos(dphi)) * mask).sum(1), ((out * np.sin(dphi)) * mask).sum(1)
    np.testing.assert_allclose(np.hypot(sx, sy), 1.0, rtol=1e-12)
    before = np.hypot(((ptrel * np.cos(dphi)) * mask).sum(1), ((ptrel * np.sin(dphi)) * mask).sum(1))
    assert np.abs(before - 1.0).max() > 0.1  # the input was not balanced: the check can fail
    np.testing.assert_allclose(out / ptrel, np.broadcast_to((1.0 / before)[:, None], (n, p)))  # one scale per jet


def test_log_pt_generator_models_inputs_0_1_3_and_denoises_from_those_slots_only():
    cfg = PETConfig.tiny(gen_pt_input="log_pt")
    assert cfg.gen_feature_indices == (0, 1, 3) and PETConfig.tiny().gen_feature_indices == (0, 1, 2)
    model = PET(cfg)
    x = torch.randn(2, 5, cfg.num_feat)
    np.testing.assert_array_equal(model.generated_features(x).numpy(), x[..., [0, 1, 3]].numpy())
    body_in = model.generator_inputs(x[..., [0, 1, 3]])
    np.testing.assert_array_equal(body_in[..., [0, 1, 3]].numpy(), x[..., [0, 1, 3]].numpy())
    others = [i for i in range(cfg.num_feat) if i not in (0, 1, 3)]
    assert (body_in[..., others] == 0).all()
    # the default keeps the first three slots (checkpoints without the field load unchanged)
    default = PET(PETConfig.tiny())
    np.testing.assert_array_equal(default.generator_inputs(x[..., :3])[..., :3].numpy(), x[..., :3].numpy())
    assert PETConfig.from_dict({k: v for k, v in PETConfig.tiny().to_dict().items() if k != "gen_pt_input"}) == PETConfig.tiny()
    with pytest.raises(ValueError, match="gen_pt_input must be one of"):
        PETConfig.tiny(gen_pt_input="pt")
    with pytest.raises(ValueError, match="needs num_gen_features=3"):
        PETConfig.tiny(gen_pt_input="log_pt", num_gen_features=2)


def test_cuda_attention_preference_enables_exactly_the_listed_kernels_and_leaves_cpu_alone():
    """PET's masked attention on CUDA allows memory-efficient, flash and math but not cuDNN (slower
    for PET paper training on an H200); on CPU, and with the preference off, PyTorch's flags stay."""
    from torch.nn.attention import SDPBackend

    from jetlab.model import layers

    def enabled():
        b = torch.backends.cuda
        return {"efficient": b.mem_efficient_sdp_enabled(), "flash": b.flash_sdp_enabled(),
                "math": b.math_sdp_enabled(), "cudnn": b.cudnn_sdp_enabled()}

    outside = enabled()
    assert outside["cudnn"]  # PyTorch's default allows cuDNN: the preference must change something
    with layers._attention_kernels(True):
        assert enabled() == {"efficient": True, "flash": True, "math": True, "cudnn": False}
    assert enabled() == outside
    with layers._attention_kernels(False):
        assert enabled() == outside
    saved = layers.CUDA_ATTENTION_BACKENDS
    try:
        layers.CUDA_ATTENTION_BACKENDS = None
        with layers._attention_kernels(True):
            assert enabled() == outside
        layers.CUDA_ATTENTION_BACKENDS = (SDPBackend.MATH,)
        with layers._attention_kernels(True):
            assert enabled() == {"efficient": False, "flash": False, "math": True, "cudnn": False}
    finally:
        layers.CUDA_ATTENTION_BACKENDS = saved


# ---------------------------------------------------------------------------- fast paths vs references
def _reference_edgeconv(block, points, features, mask, farthest=False):
    """EdgeConv written out per jet and particle, independent of jetlab's kNN and gather code:
    for each real particle i, its k nearest other real particles j by brute-force sorting of
    squared (deta, dphi)-distances, then mean_j gelu(fc2(gelu(fc1([x_j - x_i, x_i])))); zero for
    padded particles and for particles without neighbours."""
    import torch.nn.functional as F

    b, p, c = features.shape
    k = min(block.k, p - 1)
    out = features.new_zeros(b, p, block.dim)
    for jet in range(b):
        real = [i for i in range(p) if bool(mask[jet, i])]
        for i in real:
            others = [j for j in real if j != i]
            dist = [float(((points[jet, j] - points[jet, i]) ** 2).sum()) for j in others]
            order = np.argsort(dist, kind="stable")
            nearest = [others[n] for n in (order[::-1] if farthest else order)[:k]]
            if not nearest:
                continue
            x_i = features[jet, i].expand(len(nearest), c)
            x_j = features[jet, nearest]
            edge = F.gelu(block.fc2(F.gelu(block.fc1(torch.cat([x_j - x_i, x_i], dim=-1)))))
            out[jet, i] = edge.mean(0)
    return out


def test_edge_block_matches_a_per_particle_edgeconv_reference_with_gradients():
    from jetlab.model.layers import EdgeBlock

    torch.manual_seed(0)
    block = EdgeBlock(6, 8, k=4)
    n_real = [9, 3, 1, 0, 12]  # more, fewer and no neighbours than k; an empty jet; a full jet
    p = 12
    g = torch.Generator().manual_seed(5)
    mask = torch.arange(p).unsqueeze(0) < torch.tensor(n_real).unsqueeze(1)
    points = torch.randn(len(n_real), p, 2, generator=g) * mask.unsqueeze(-1)
    features = (torch.randn(len(n_real), p, 6, generator=g) * mask.unsqueeze(-1)).requires_grad_(True)
    weights = torch.randn(len(n_real), p, 8, generator=g)

    fast = block(points, features, mask)
    ref = _reference_edgeconv(block, points, features, mask)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    assert fast[1, 0].abs().sum() > 0 and (fast[3] == 0).all() and (fast[2, 0] == 0).all()
    params = [features, *block.parameters()]
    g_fast = torch.autograd.grad((fast * weights).sum(), params)
    g_ref = torch.autograd.grad((ref * weights).sum(), params)
    for a, r in zip(g_fast, g_ref):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5)
    # a wrong neighbour choice (the farthest instead of the nearest) is caught by this comparison
    far = _reference_edgeconv(block, points, features, mask, farthest=True)
    assert (far - fast).abs().max() > 1e-3


def test_occupied_width_counts_slots_up_to_the_last_real_particle():
    from jetlab.model.layers import occupied_width

    mask = torch.zeros(3, 10, dtype=torch.bool)
    assert occupied_width(mask) == 1  # no real particle: one slot keeps the shapes valid
    mask[0, :4] = True
    mask[2, 6] = True  # not front-packed: slot 6 is the last real one
    assert occupied_width(mask) == 7
    mask[1, 9] = True
    assert occupied_width(mask) == 10


def test_pretraining_step_on_the_occupied_width_equals_the_full_padded_step(monkeypatch):
    """Same weights, inputs and seeds: the loss, its parts and every gradient are those of the
    old code path, in which every layer ran over all padded slots (occupied_width = full width)."""
    import jetlab.model.diffusion as diffusion_module
    import jetlab.model.pet as pet_module

    torch.manual_seed(0)
    model = PET(PETConfig.tiny(num_classes=3, layer_scale_init=0.5)).train()
    batch = make_batch([20, 5, 13, 2], p=48, seed=7, num_classes=3)  # 28 padding slots no jet uses

    def step():
        torch.manual_seed(11)  # feature and label drop, drop path
        model.zero_grad(set_to_none=True)
        loss, parts = pretraining_loss(model, batch, LossWeights(diffusion=3.0), torch.Generator().manual_seed(3))
        loss.backward()
        return loss.detach(), parts, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    loss_new, parts_new, grads_new = step()
    with monkeypatch.context() as m:
        full = lambda mask: mask.shape[1]  # noqa: E731
        m.setattr(pet_module, "occupied_width", full)
        m.setattr(diffusion_module, "occupied_width", full)
        loss_old, parts_old, grads_old = step()
    assert parts_new["diff"] > 0 and parts_new["ce"] > 0
    torch.testing.assert_close(loss_new, loss_old, atol=1e-6, rtol=1e-5)
    for k in parts_old:
        torch.testing.assert_close(parts_new[k], parts_old[k], atol=1e-6, rtol=1e-5)
    assert len(grads_new) == len(grads_old)
    for a, r in zip(grads_new, grads_old):
        torch.testing.assert_close(a, r, atol=1e-6, rtol=1e-4)


def test_oversubscription_warning_names_the_thread_count_that_fits(caplog):
    from jetlab.train.pretrain import warn_if_oversubscribed

    with caplog.at_level("WARNING", logger="jetlab.train.pretrain"):
        assert warn_if_oversubscribed(threads=2, load=2.0, cores=2)
        assert "torch.set_num_threads(1)" in caplog.text
        caplog.clear()
        assert not warn_if_oversubscribed(threads=2, load=0.1, cores=2)
        assert not warn_if_oversubscribed(threads=1, load=5.0, cores=2)
        assert not warn_if_oversubscribed(threads=8, load=4.0, cores=16)
    assert caplog.text == ""
