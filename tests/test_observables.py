"""Observables against hand-computed values on small constructed jets."""

from __future__ import annotations

import numpy as np
import pytest

from jetlab.data.schema import JetSet, jet_features_from_particles
from jetlab.physics import (
    DEFAULT_OBSERVABLES,
    compute_observables,
    jet_mass,
    jet_pt,
    jet_width,
    log_rho,
    multiplicity,
    nsubjettiness,
    observable_bins,
    soft_drop,
    tau21,
    tau32,
    zg,
)


def make_jets(rows, pmax=None):
    """rows: list of lists of massless (pt, eta, phi) -> (pt, eta, phi, E) tuple + mask."""
    pmax = pmax or max(len(r) for r in rows)
    n = len(rows)
    pt, eta, phi = (np.zeros((n, pmax)) for _ in range(3))
    mask = np.zeros((n, pmax), dtype=bool)
    for i, r in enumerate(rows):
        for j, (a, b, c) in enumerate(r):
            pt[i, j], eta[i, j], phi[i, j], mask[i, j] = a, b, c, True
    e = pt * np.cosh(eta)
    return (pt, eta, phi, e), mask


def test_two_particle_mass_pt_multiplicity():
    pt1, pt2, deta, dphi = 120.0, 40.0, 0.15, 0.2
    (p, mask) = make_jets([[(pt1, 0.3, 1.0), (pt2, 0.3 + deta, 1.0 + dphi)], [(50.0, 0.0, 0.0)], []])
    m = jet_mass(p, mask)
    assert m[0] == pytest.approx(np.sqrt(2 * pt1 * pt2 * (np.cosh(deta) - np.cos(dphi))), rel=1e-9)
    assert m[1] == 0.0 and m[2] == 0.0
    expected_pt = np.hypot(pt1 + pt2 * np.cos(dphi), pt2 * np.sin(dphi))
    assert jet_pt(p, mask)[0] == pytest.approx(expected_pt, rel=1e-12)
    assert multiplicity(p, mask).tolist() == [2, 1, 0]


def test_jetset_and_array_inputs_agree_and_mask_defaults():
    (pt, eta, phi, e), mask = make_jets([[(100, 0.1, 0.2), (30, -0.1, 0.25), (5, 0.0, 0.0)], [(60, 1.0, -3.1), (20, 1.05, 3.1)]])
    particles = np.stack([pt, eta, phi, e], -1)
    js = JetSet(particles=particles, mask=mask, jets=jet_features_from_particles(particles, mask), labels=np.zeros(2))
    a = compute_observables(js)
    b = compute_observables(particles)  # mask inferred from pT > 0
    for name in DEFAULT_OBSERVABLES:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-6)
    # float32 storage in the JetSet vs the jet row computed by the schema helper
    np.testing.assert_allclose(a["mass"], js.jet_feature("mass"), rtol=1e-3)
    # the second jet straddles phi = +-pi: width must use the wrapped distance (small)
    assert a["width"][1] < 0.1


def test_width_symmetric_and_asymmetric():
    # two equal-pT particles at eta = +-a: axis at 0, width = a
    (p, mask) = make_jets([[(50, 0.1, 0.0), (50, -0.1, 0.0)]])
    assert jet_width(p, mask)[0] == pytest.approx(0.1, rel=1e-9)
    # unequal pT along phi at eta = 0: axis phi_J = atan2(sum py, sum px)
    pt1, pt2, dphi = 90.0, 10.0, 0.3
    (p, mask) = make_jets([[(pt1, 0.0, 0.0), (pt2, 0.0, dphi)]])
    phij = np.arctan2(pt2 * np.sin(dphi), pt1 + pt2 * np.cos(dphi))
    expected = (pt1 * phij + pt2 * (dphi - phij)) / (pt1 + pt2)
    assert jet_width(p, mask)[0] == pytest.approx(expected, rel=1e-9)


def test_nsubjettiness_two_prong_vs_one_prong():
    two_prong = [(100, 0.0, 0.0), (95, 0.3, 0.1), (3, 0.02, 0.01), (2, 0.31, 0.12)]
    one_prong = [(100, 0.0, 0.0), (20, 0.05, 0.04), (15, -0.04, 0.06), (10, 0.08, -0.05)]
    (p, mask) = make_jets([two_prong, one_prong, [(80, 0.0, 0.0)], []])
    t21 = tau21(p, mask)
    assert t21[0] < 0.1 < 0.4 < t21[1]
    assert t21[2] == 0.0 and t21[3] == 0.0  # single-particle and empty jets
    taus = nsubjettiness(p, mask)
    assert taus.shape == (4, 3)
    assert np.all(taus[:2, 0] >= taus[:2, 1]) and np.all(taus[:2, 1] >= taus[:2, 2])
    # tau_N = 0 when the jet has at most N particles
    assert taus[2].tolist() == [0.0, 0.0, 0.0]


def test_tau1_hand_value_and_tau32():
    # symmetric pair at eta = +-a: tau_1 = a / R0; tau_2 = 0 (two particles)
    (p, mask) = make_jets([[(40, 0.12, 0.0), (40, -0.12, 0.0)]])
    taus = nsubjettiness(p, mask, n=(1, 2), R0=0.4)
    assert taus[0, 0] == pytest.approx(0.12 / 0.4, rel=1e-9)
    assert taus[0, 1] == 0.0
    three = [(100, 0.0, 0.0), (90, 0.4, 0.0), (80, 0.0, 0.4), (1, 0.01, 0.01)]
    two = [(100, 0.0, 0.0), (90, 0.4, 0.0), (5, 0.2, 0.2), (4, 0.1, 0.3)]
    (p, mask) = make_jets([three, two])
    t32 = tau32(p, mask)
    assert t32[0] < 0.05 < t32[1]


def test_nsubjettiness_matches_fastjet_contrib():
    """Our exclusive-kT-axes tau_N equals FastJet contrib Nsubjettiness (KT_Axes, normalised)."""
    import awkward as ak
    import fastjet

    rng = np.random.default_rng(1)
    n_jets, pmax = 200, 25
    counts = rng.integers(1, pmax + 1, n_jets)
    mask = np.arange(pmax)[None] < counts[:, None]
    pt = np.where(mask, rng.exponential(10, (n_jets, pmax)), 0)
    eta = np.where(mask, rng.normal(0, 0.2, (n_jets, pmax)), 0)
    phi = np.where(mask, rng.normal(0, 0.2, (n_jets, pmax)), 0)
    e = pt * np.cosh(eta)
    ours = nsubjettiness((pt, eta, phi, e), mask, n=(1, 2, 3), R0=0.4, chunk_size=64)
    arr = ak.unflatten(
        ak.zip({"px": (pt * np.cos(phi))[mask], "py": (pt * np.sin(phi))[mask], "pz": (pt * np.sinh(eta))[mask], "E": e[mask]}, with_name="Momentum4D"),
        counts,
    )
    cs = fastjet.ClusterSequence(arr, fastjet.JetDefinition(fastjet.kt_algorithm, 1000.0))
    ref = np.asarray(cs.njettiness(measure_definition="NormalizedMeasure", axes_definition="KT_Axes", njets=[1, 2, 3], beta=1.0, R0=0.4)).reshape(n_jets, 3)
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_soft_drop_two_particles_pass_and_fail():
    # z = 30 / 130 > 0.1 passes: z_g = min/(sum), R_g = dR, groomed mass = full mass
    (p, mask) = make_jets([[(100, 0.0, 0.0), (30, 0.0, 0.2)], [(100, 0.0, 0.0), (8, 0.0, 0.2)]])
    sd = soft_drop(p, mask, beta=0.0, z_cut=0.1)
    assert sd["zg"][0] == pytest.approx(30 / 130, rel=1e-9)
    assert sd["rg"][0] == pytest.approx(0.2, rel=1e-9)
    assert sd["mass"][0] == pytest.approx(jet_mass(p, mask)[0], rel=1e-9)
    # z = 8 / 108 < 0.1 fails: the softer particle is dropped, nothing passes
    assert sd["zg"][1] == 0.0 and sd["rg"][1] == 0.0 and sd["mass"][1] == pytest.approx(0.0, abs=1e-6)
    assert sd["pt"][1] == pytest.approx(100.0)
    # log rho: defined for the groomed 2-prong jet, fill value for the groomed-away one
    lr = log_rho(p, mask, fill_value=-99.0)
    assert lr[0] == pytest.approx(np.log(sd["mass"][0] ** 2 / jet_pt(p, mask)[0] ** 2), rel=1e-9)
    assert lr[1] == -99.0


def test_soft_drop_three_particles_and_beta():
    # C/A merges A+B (dR 0.05) first; C (z = 5/155) is groomed away; then A/B passes.
    rows = [[(100, 0.0, 0.0), (50, 0.0, 0.05), (5, 0.3, 0.0)]]
    (p, mask) = make_jets(rows)
    sd = soft_drop(p, mask)
    assert sd["zg"][0] == pytest.approx(50 / 150, rel=1e-9)
    assert sd["rg"][0] == pytest.approx(0.05, rel=1e-9)
    assert sd["mass"][0] == pytest.approx(np.sqrt(2 * 100 * 50 * (1 - np.cos(0.05))), rel=1e-9)
    assert zg(p, mask)[0] == pytest.approx(50 / 150)
    # beta > 0 loosens the cut at small angle: z = 8/108 at dR = 0.1 passes 0.1 * (0.1/0.4)^1
    (p, mask) = make_jets([[(100, 0.0, 0.0), (8, 0.0, 0.1)]])
    assert zg(p, mask, beta=0.0)[0] == 0.0
    assert zg(p, mask, beta=1.0, R0=0.4)[0] == pytest.approx(8 / 108, rel=1e-9)


def test_compute_observables_defaults_and_errors():
    (p, mask) = make_jets([[(100, 0.0, 0.0), (30, 0.0, 0.2), (10, 0.1, 0.1)], [(50, 0.0, 0.0)], []])
    obs = compute_observables(p, mask=mask)
    assert list(obs) == list(DEFAULT_OBSERVABLES)
    for name, v in obs.items():
        assert v.shape == (3,) and np.all(np.isfinite(v)), name
    assert obs["multiplicity"].tolist() == [3, 1, 0]
    np.testing.assert_allclose(obs["tau21"], tau21(p, mask))
    np.testing.assert_allclose(obs["zg"], zg(p, mask))
    extra = compute_observables(p, names=["pt", "tau32", "rg", "sd_mass"], mask=mask)
    assert set(extra) == {"pt", "tau32", "rg", "sd_mass"}
    with pytest.raises(KeyError, match="unknown observable.*'nope'"):
        compute_observables(p, names=["mass", "nope"], mask=mask)
    with pytest.raises(ValueError, match=r"\(N, P, F>=4\)"):
        jet_mass(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="mask shape"):
        jet_mass(p, mask[:, :2])


def test_observable_bins():
    b = observable_bins("mass", 30)
    assert b.shape == (31,) and b[0] == 0 and b[-1] == 75
    m = observable_bins("multiplicity")
    assert m[0] == -0.5 and np.all(np.diff(m) == 1.0)
    with pytest.raises(KeyError, match="unknown observable"):
        observable_bins("foo")


def test_reclustering_observables_print_no_fastjet_banner():
    """z_g and tau21 recluster with FastJet, whose first clustering in a process prints a banner box on
    the C-level stdout: in a fresh process (a notebook kernel) the output must stay clean. The same
    clustering without jetlab prints it (the check can fail)."""
    import subprocess
    import sys

    make = "import numpy as np\nrng = np.random.default_rng(0)\nP = np.zeros((3, 6, 4)); P[..., 0] = rng.uniform(5, 50, (3, 6)); P[..., 1] = rng.normal(0, .2, (3, 6)); P[..., 2] = rng.normal(0, .2, (3, 6)); P[..., 3] = P[..., 0] * np.cosh(P[..., 1])\n"
    ours = make + "from jetlab.physics import compute_observables\nprint(sorted(compute_observables(P, ['zg', 'tau21'])))\n"
    out = subprocess.run([sys.executable, "-c", ours], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['tau21', 'zg']", out
    bare = "import fastjet\nfastjet.ClusterSequence([fastjet.PseudoJet(1., 0., 0., 1.)], fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4)).inclusive_jets()\n"
    assert "FastJet release" in subprocess.run([sys.executable, "-c", bare], capture_output=True, text=True).stdout
