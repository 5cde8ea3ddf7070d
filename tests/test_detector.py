"""Unit tests of the parametric detector models (no Pythia needed)."""

import numpy as np
import pytest

from jetlab.simulator.detector import ATLAS_LIKE, JETCLASS_LIKE, DetectorModel, pid_flags_from_pdg


def _particles(n, pt, eta, pdg, charge, mass=0.0, seed=0):
    rng = np.random.default_rng(seed)
    phi = rng.uniform(-np.pi, np.pi, n)
    pt = np.full(n, pt, float)
    eta = np.full(n, eta, float)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    return px, py, pz, e, np.full(n, pdg), np.full(n, float(charge)), np.arange(n)


def test_tracking_efficiency_and_resolution():
    n = 40_000
    det = JETCLASS_LIKE.replace(track_efficiency=0.8, track_res_const=0.02, track_res_slope=0.0)
    px, py, pz, e, pdg, q, ev = _particles(n, 50.0, 0.3, 211, 1, mass=0.1396)
    reco = det.apply(px, py, pz, e, pdg, q, ev, n, np.random.default_rng(1))
    tracks = reco.flags[:, 0]
    assert abs(tracks.sum() / n - 0.8) < 0.01  # efficiency
    assert np.all(reco.charge[tracks] == 1)
    rel = reco.pt[tracks] / 50.0 - 1
    assert abs(rel.std() - 0.02) < 0.002  # pT resolution
    # lost tracks become neutral hadrons in the calorimeter, with the (wide) HCAL resolution
    neut = reco.flags[:, 1]
    assert abs(neut.sum() / n - 0.2) < 0.01
    assert reco.energy[neut].std() / reco.energy[neut].mean() > 0.1


def test_calorimeter_resolution_and_thresholds():
    n = 20_000
    det = JETCLASS_LIKE.replace(ecal_stochastic=0.0, ecal_constant=0.03)
    px, py, pz, e, pdg, q, ev = _particles(n, 20.0, 0.0, 22, 0)
    reco = det.apply(px, py, pz, e, pdg, q, ev, n, np.random.default_rng(2))
    assert reco.flags[:, 2].all() and len(reco.pt) == n
    assert abs(reco.energy.std() / 20.0 - 0.03) < 0.003
    # below the photon threshold nothing survives
    px, py, pz, e, pdg, q, ev = _particles(100, 0.3, 0.0, 22, 0)
    assert len(det.apply(px, py, pz, e, pdg, q, ev, 100, np.random.default_rng(3)).pt) == 0


def test_neutrinos_invisible_and_acceptance():
    px, py, pz, e, pdg, q, ev = _particles(100, 10.0, 0.0, 12, 0)
    assert len(JETCLASS_LIKE.apply(px, py, pz, e, pdg, q, ev, 100, np.random.default_rng(0)).pt) == 0
    # charged particles beyond the tracker and calorimeter acceptance vanish
    px, py, pz, e, pdg, q, ev = _particles(100, 10.0, 3.5, 211, 1)
    assert len(JETCLASS_LIKE.apply(px, py, pz, e, pdg, q, ev, 100, np.random.default_rng(0)).pt) == 0


def test_atlas_like_clusters_merge_and_pileup():
    # two photons in the same 0.1x0.1 cell of one event merge into one massless cluster
    px = np.array([10.0, 10.0])
    py = np.array([0.0, 0.2])
    pz = np.zeros(2)
    e = np.hypot(px, py)
    det = ATLAS_LIKE.replace(pileup_density=0.0)
    reco = det.apply(px, py, pz, e, np.array([22, 22]), np.zeros(2), np.zeros(2, int), 1, np.random.default_rng(0))
    assert len(reco.pt) == 1
    assert reco.energy[0] == pytest.approx(20.0, rel=0.15)
    assert not reco.flags[:, 0].any()  # no tracks in the cluster model
    # pileup: on average density * area soft deposits per event, all above the cluster threshold
    n_ev = 200
    reco = ATLAS_LIKE.apply(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, int), np.zeros(0),
                            np.zeros(0, int), n_ev, np.random.default_rng(5))
    expect = ATLAS_LIKE.pileup_density * 2 * ATLAS_LIKE.pileup_eta_max * 2 * np.pi
    assert abs(len(reco.pt) / n_ev - expect) < 0.05 * expect
    assert reco.pt.min() >= ATLAS_LIKE.cluster_pt_min
    assert np.all(np.diff(reco.event) >= 0)


def test_seeded_and_validated():
    px, py, pz, e, pdg, q, ev = _particles(500, 5.0, 0.5, 211, -1)
    a = JETCLASS_LIKE.apply(px, py, pz, e, pdg, q, ev, 500, np.random.default_rng(7))
    b = JETCLASS_LIKE.apply(px, py, pz, e, pdg, q, ev, 500, np.random.default_rng(7))
    c = JETCLASS_LIKE.apply(px, py, pz, e, pdg, q, ev, 500, np.random.default_rng(8))
    assert np.array_equal(a.pt, b.pt) and not np.array_equal(a.pt, c.pt)
    with pytest.raises(ValueError, match="track_efficiency"):
        DetectorModel(name="bad", track_efficiency=1.5)
    with pytest.raises(ValueError, match="charge has 3 entries"):
        JETCLASS_LIKE.apply(px, py, pz, e, pdg, q[:3], ev, 500, np.random.default_rng(0))


def test_pid_flags_from_pdg():
    pdg = np.array([211, -211, 130, 2112, 22, 11, -13, 12])
    q = np.array([1, -1, 0, 0, 0, -1, 1, 0], float)
    f = pid_flags_from_pdg(pdg, q)
    assert f.tolist() == [
        [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 1, 0, 0, 0],
        [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0],
    ]


def _soft_spray(n, seed):
    """Soft generator-level particles of every kind over |eta| < 4, in 50 events."""
    rng = np.random.default_rng(seed)
    kinds = np.array([211, -211, 22, 130, 11, 13, 2112])
    charges = {211: 1, -211: -1, 22: 0, 130: 0, 11: -1, 13: -1, 2112: 0}
    pdg = rng.choice(kinds, n)
    q = np.array([charges[int(k)] for k in pdg], float)
    pt = rng.exponential(0.6, n) + 0.02
    eta, phi = rng.uniform(-4.0, 4.0, n), rng.uniform(-np.pi, np.pi, n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + 0.0195), pdg, q, np.sort(rng.integers(0, 50, n)), 50


@pytest.mark.parametrize("det", [JETCLASS_LIKE, ATLAS_LIKE], ids=lambda d: d.name)
def test_min_visible_pt_bounds_what_the_detector_reports_and_is_tight(det):
    reco = det.apply(*_soft_spray(200_000, 5), np.random.default_rng(6))
    bound = det.min_visible_pt(reco.eta)
    assert np.all(reco.pt >= bound)  # nothing the detector reports lies below it
    # ... and it is not loose: central particles come within 5% of it (a bound of 0 fails here)
    central = np.abs(reco.eta) < 1.5
    assert central.sum() > 1000 and (reco.pt[central] / bound[central]).min() < 1.05
    # by hand at the centre: a track at its 0.1 GeV threshold less five 0.6% resolutions; clusters 0.4 GeV
    expected = 0.1 * (1 - 5 * np.hypot(0.006, 1e-5)) if det.use_tracks else 0.4
    assert det.min_visible_pt(np.array([0.0]))[0] == pytest.approx(expected, rel=1e-6)
    assert np.isinf(det.min_visible_pt(np.array([4.0]))[0])  # beyond every subsystem


def test_min_visible_pt_follows_the_calorimeter_energy_threshold_forward():
    # beyond the tracker (|eta| > 2.5) a photon needs E > 0.5 GeV: pT > 0.5 / cosh(eta), by hand
    eta = np.array([2.6, 2.8, 3.0])
    np.testing.assert_allclose(JETCLASS_LIKE.min_visible_pt(eta), 0.5 / np.cosh(eta))
    assert JETCLASS_LIKE.min_visible_pt(np.array([2.0]))[0] == pytest.approx(0.097, rel=1e-3)  # tracks win centrally


def test_get_detector_by_name():
    from jetlab.simulator.detector import get_detector

    assert get_detector("atlas-like") is ATLAS_LIKE and get_detector(JETCLASS_LIKE) is JETCLASS_LIKE
    with pytest.raises(ValueError, match=r"unknown detector 'cms'.*\['atlas-like', 'jetclass-like'\]"):
        get_detector("cms")
