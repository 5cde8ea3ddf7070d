"""OmniFold's original classifier, the Particle Flow Network (jetlab.model.pfn), as an OmniFold
classifier: its symmetries checked against a NumPy forward pass, a step-1 reweighting with a known
answer learned (and not learned when the reweighting is decoupled from the jets), and its row in
the notebook-03 study."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jetlab.data.schema import JetSet
from jetlab.model import ParticleFlowNetwork
from jetlab.tasks.omnifold import make_classifier, omnifold
from jetlab.tasks.omnifold.classifiers import PFNClassifier

SMALL = dict(phi_sizes=(24, 24, 32), f_sizes=(24, 24))


def _numpy_pfn(net: ParticleFlowNetwork, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The PFN by hand: F(sum over real particles of Phi(x_i)), ReLU after every hidden layer,
    the weights read from the state dict (independent of the module's forward code)."""
    sd = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}

    def dense(h: np.ndarray, prefix: str) -> np.ndarray:
        i = 0
        while f"{prefix}.{i}.weight" in sd:
            h = np.maximum(h @ sd[f"{prefix}.{i}.weight"].T + sd[f"{prefix}.{i}.bias"], 0.0)
            i += 2  # Linear, ReLU
        return h

    out = []
    for xj, mj in zip(x.astype(np.float64), mask):
        latent = sum(dense(xj[p], "phi") for p in np.nonzero(mj)[0])
        out.append(dense(latent, "f") @ sd["out.weight"].T + sd["out.bias"])
    return np.array(out)


def test_pfn_matches_numpy_sum_ignores_order_and_padding():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net = ParticleFlowNetwork(num_feat=5, num_classes=1, **SMALL).eval()
    n_jets, slots = 6, 9
    x = rng.normal(size=(n_jets, slots, 5)).astype(np.float32)
    mask = np.arange(slots)[None, :] < np.array([9, 1, 4, 7, 2, 5])[:, None]
    mask[3] = mask[3][rng.permutation(slots)]  # holes in the middle of a jet, too
    expected = _numpy_pfn(net, x, mask)
    with torch.no_grad():
        got = net(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

    # the same particles in another order (slots and mask permuted together): same output
    perm = rng.permutation(slots)
    with torch.no_grad():
        permuted = net(torch.from_numpy(x[:, perm]), torch.from_numpy(mask[:, perm])).numpy()
    np.testing.assert_allclose(permuted, expected, rtol=1e-5, atol=1e-6)

    # garbage (large values, inf, NaN) in the padded slots: same output
    junk = x.copy()
    junk[~mask] = rng.normal(scale=1e3, size=((~mask).sum(), 5))
    junk[1, 5] = np.inf
    junk[4, 8] = np.nan
    with torch.no_grad():
        padded = net(torch.from_numpy(junk), torch.from_numpy(mask)).numpy()
    np.testing.assert_array_equal(padded, got)

    # a real particle does count: changing one moves the output (the test can fail)
    moved = x.copy()
    moved[1, 0] += 3.0
    with torch.no_grad():
        assert not np.allclose(net(torch.from_numpy(moved), torch.from_numpy(mask)).numpy()[1], got[1], atol=1e-4)


def _jets(n: int, rng: np.random.Generator, slots: int = 32) -> JetSet:
    """Toy jets: Poisson multiplicities around 14, exponential particle pT, narrow in eta/phi;
    the jet four-vector is the particles' sum."""
    mult = np.clip(rng.poisson(14, size=n), 2, slots)
    mask = np.arange(slots)[None, :] < mult[:, None]
    pt = rng.exponential(8.0, size=(n, slots)) + 0.5
    eta = rng.normal(0, 0.15, size=(n, slots))
    phi = rng.normal(0, 0.15, size=(n, slots))
    e = pt * np.cosh(eta)
    pt, eta, phi, e = (np.where(mask, a, 0.0) for a in (pt, eta, phi, e))
    px, py, pz = (pt * np.cos(phi)).sum(1), (pt * np.sin(phi)).sum(1), (pt * np.sinh(eta)).sum(1)
    je = e.sum(1)
    jpt = np.hypot(px, py)
    jets = np.stack(
        [jpt, np.arcsinh(pz / jpt), np.arctan2(py, px), np.sqrt(np.maximum(je**2 - jpt**2 - pz**2, 0)), mult], 1
    )
    return JetSet(np.stack([pt, eta, phi, e], -1), mask, jets, np.zeros(n))


def _log_true_weight(js: JetSet) -> np.ndarray:
    """The known reweighting: log w = 0.6 x (standardised multiplicity)."""
    m = js.mask.sum(1).astype(float)
    return 0.6 * (m - 14.0) / np.sqrt(14.0)


def _step1_fit(sim: JetSet, data: JetSet, data_weights: np.ndarray, seed: int) -> tuple[float, float]:
    """(slope, Pearson correlation) of the step-1 (pull) log-weights on the simulation regressed on
    the true log-weights: slope 1 is the full reweighting learned, 0 nothing (a correlation alone
    cannot tell: a tiny spurious trend in multiplicity correlates just as well)."""
    spec = PFNClassifier(**SMALL)
    res = omnifold(sim, sim, data, classifier_factory=spec, data_weights=data_weights, n_iterations=1, epochs=15,
                   batch_size=64, early_stopping_patience=None, device="cpu", seed=seed, progress=False)
    learned, truth = np.log(res.pull_weights[0]), _log_true_weight(sim)
    slope = float(np.cov(learned, truth)[0, 1] / truth.var(ddof=1))
    return slope, float(np.corrcoef(learned, truth)[0, 1])


@pytest.fixture
def one_thread():
    """One torch thread: on the shared 2-core machine oversubscribed threads made this test 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_pfn_step1_learns_a_known_multiplicity_reweighting(measured, one_thread):
    """Data = independent toy jets weighted by w(multiplicity): the PFN's step-1 weights follow w
    (slope ~1 against the true log-weights); with the same weights shuffled among the data jets
    (no link to the jets) they stay flat. Measured (15 epochs, 1000 + 1000 jets): slope 0.88, 0.90,
    0.92 for seeds 0-2, control slope 0.08, 0.01, -0.01."""
    rng = np.random.default_rng(1)
    sim, data = _jets(1000, rng, slots=24), _jets(1000, rng, slots=24)
    w = np.exp(_log_true_weight(data))
    shuffled = rng.permutation(w)
    for seed in (0, 1, 2):
        (slope, corr), (c_slope, c_corr) = _step1_fit(sim, data, w, seed), _step1_fit(sim, data, shuffled, seed)
        measured(f"slope_seed{seed}", slope)
        measured(f"control_slope_seed{seed}", c_slope)
        assert 0.7 < slope < 1.2 and corr > 0.9, (seed, slope, corr)
        assert abs(c_slope) < 0.2, (seed, c_slope, c_corr)
        assert slope - c_slope > 0.6


def test_make_classifier_pfn_is_the_omnifold_paper_network():
    spec = make_classifier("pfn", max_particles=16)
    assert isinstance(spec, PFNClassifier) and spec.name == "pfn" and spec.max_particles == 16
    net = spec.build("reco")
    # Phi 100-100-256 and F 100-100-100 (ericmetodiev/OmniFold train.py defaults), 13 particle inputs
    assert [m.out_features for m in net.phi if isinstance(m, torch.nn.Linear)] == [100, 100, 256]
    assert [m.out_features for m in net.f if isinstance(m, torch.nn.Linear)] == [100, 100, 100]
    assert net.phi[0].in_features == 13 and net.out.out_features == 1
    with pytest.raises(TypeError, match="needs JetSets"):
        spec.prepare("reco", [{"mass": np.ones(3)}])


def test_run_omnifold_has_the_pfn_row(tmp_path):
    from jetlab.tasks.omnifold import run_omnifold

    rng = np.random.default_rng(2)
    gen = _jets(160, rng)
    sets = {"sim_gen": gen, "sim_reco": gen, "data_gen": _jets(160, rng), "data_reco": _jets(160, rng)}
    res = run_omnifold(sets, checkpoint=None, classifiers=("pfn", "mlp"), seeds=(0,), n_iterations=1, epochs=1,
                       batch_size=64, max_particles=16, bins=5, n_bootstrap=2, observables=("mass", "multiplicity"),
                       device="cpu", progress=False)
    assert set(res.runs) == {"pfn", "mlp"} and res.study is None  # no PET: no convergence study
    assert res.summary.methods == ["IBU", "OmniFold-pfn", "OmniFold-mlp", "prior"]
    assert res.runs["pfn"].classifier == "pfn"
    assert res.runs["pfn"].weights().shape == (160,)
    assert not np.allclose(res.runs["pfn"].weights(), res.runs["pfn"].sim_weights)  # it did reweight
    assert "OmniFold-pfn" in res.table().columns
    assert {"unfolded_mass.png", "unfolded_multiplicity.png"} <= set(res.plots())
