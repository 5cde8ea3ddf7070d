"""Readers for the public dataset formats -> common schema, convert() and ``jetlab data convert``."""

from __future__ import annotations

import argparse

import h5py
import numpy as np
import pytest

from fixtures_formats import (
    PID_CODE,
    dijet_event,
    make_aspen_h5,
    make_atlas_h5,
    make_jetclass_root,
    make_lhco_h5,
    make_omnifold_npz,
    random_jet_particles,
    write_aspen_h5,
    write_atlas_h5,
    write_jetclass_root,
    write_lhco_features_h5,
    write_lhco_h5,
    write_omnifold_npz,
)
from jetlab.data.readers import (
    DATASETS,
    JETCLASS_LABELS,
    DroppedEventsWarning,
    PandasFrame,
    convert,
    read_aspen,
    read_atlas_toptag,
    read_jetclass,
    read_lhco,
    read_lhco_features,
    read_omnifold,
    write_jetsets_chunked,
)
from jetlab.data.schema import ALL_PARTICLE_FEATURES, JetSet, SchemaError, inspect_file, read_jetset, read_jetsets


def massless(pt, eta, phi):
    """(px, py, pz, E) of a massless particle."""
    return [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)]


def inv_mass(p4s):
    s = np.sum(p4s, axis=0)
    return float(np.sqrt(max(s[3] ** 2 - s[0] ** 2 - s[1] ** 2 - s[2] ** 2, 0.0)))


def col(js: JetSet, name: str) -> np.ndarray:
    return js.feature(name)


@pytest.mark.parametrize("p,keep", [(12, 5), (4, 7), (9, 9)])
def test_finish_particles_equals_schema_sort_and_truncate(p, keep):
    from jetlab.data.readers._common import finish_particles
    from jetlab.data.schema import sort_and_truncate

    rng = np.random.default_rng(p)
    cols = [rng.exponential(10, (50, p))] + [rng.normal(size=(50, p)) for _ in range(3)]
    cols[0][:, ::3] = np.round(cols[0][:, ::3])  # ties, incl. pT = 0 (padding) in the middle
    mask = cols[0] > 0
    got_p, got_m = finish_particles(cols, mask, keep)
    ref_p, ref_m = sort_and_truncate(np.stack(cols, -1), mask, keep)
    np.testing.assert_array_equal(got_m, ref_m)
    np.testing.assert_array_equal(got_p, ref_p)
    assert got_p.shape == (50, keep, 4) and got_p.dtype == np.float32


# =============================================================== JetClass (ROOT)
def test_jetclass_kinematics_sorting_truncation_and_labels(tmp_path):
    # jet 0: pT 1, 5 (px=3, py=4), 3 -> sorted 5, 3, 1; jet 1: a single particle
    jet0 = np.array([massless(1.0, 0.5, 0.1), [3.0, 4.0, 0.0, 5.0], massless(3.0, -1.0, 2.0)])
    jet1 = np.array([massless(10.0, 1.2, -2.5)])
    charge = [np.array([0.0, 1.0, -1.0]), np.array([1.0])]
    d0 = [np.array([0.1, 0.2, 0.3]), np.array([0.4])]
    path = write_jetclass_root(tmp_path / "TTBarLep_000.root", [jet0, jet1], "Tbl", charge=charge, d0=d0)

    js = read_jetclass(path, max_particles=2)
    assert js.particle_features == ALL_PARTICLE_FEATURES
    assert js.particles.shape == (2, 2, len(ALL_PARTICLE_FEATURES))
    np.testing.assert_allclose(col(js, "pt")[0], [5.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(col(js, "eta")[0], [0.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(col(js, "phi")[0], [np.arctan2(4, 3), 2.0], atol=1e-6)
    np.testing.assert_allclose(col(js, "energy")[0], [5.0, 3.0 * np.cosh(-1.0)], rtol=1e-6)
    # per-particle columns follow the sort
    np.testing.assert_array_equal(col(js, "charge")[0], [1.0, -1.0])
    np.testing.assert_allclose(col(js, "d0")[0], [0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(col(js, "dz")[0], [0.4, 0.6], rtol=1e-6)
    np.testing.assert_array_equal(col(js, "is_charged_hadron")[0], [1.0, 1.0])
    np.testing.assert_array_equal(js.mask, [[True, True], [True, False]])
    assert (js.particles[1, 1] == 0).all()
    assert js.labels.tolist() == [JETCLASS_LABELS.index("Tbl")] * 2 == [9, 9]
    # jet features: n_particles counts all constituents (jet_nparticles), mass of the jet 4-vector
    assert js.jets[:, 4].tolist() == [3.0, 1.0]
    np.testing.assert_allclose(js.jets[0, 3], inv_mass(jet0), rtol=1e-3)
    np.testing.assert_allclose(js.jets[1, 3], 0.0, atol=0.05)
    np.testing.assert_allclose(js.jets[1, :3], [10.0, 1.2, -2.5], rtol=1e-5)
    assert set(js.extra) == {"sdmass", "tau1", "tau2", "tau3", "tau4"}
    np.testing.assert_allclose(js.extra["sdmass"][0], 0.8 * inv_mass(jet0), rtol=1e-3)


def test_jetclass_several_files_global_start_stop_and_directory(tmp_path):
    make_jetclass_root(tmp_path / "HToBB_000.root", 5, "Hbb", seed=1)
    make_jetclass_root(tmp_path / "ZJetsToNuNu_000.root", 4, "QCD", seed=2)
    files = [tmp_path / "HToBB_000.root", tmp_path / "ZJetsToNuNu_000.root"]
    full = read_jetclass(files)
    assert len(full) == 9 and full.labels.tolist() == [1] * 5 + [0] * 4
    part = read_jetclass(files, start=3, stop=7)
    np.testing.assert_array_equal(part.particles, full.particles[3:7])
    assert part.labels.tolist() == [1, 1, 0, 0]
    by_dir = read_jetclass(tmp_path)  # file index, then class order: ZJetsToNuNu (QCD) before HToBB
    np.testing.assert_array_equal(by_dir.jets, np.concatenate([full.jets[5:], full.jets[:5]]))
    # pT ordering holds for every jet
    pt = np.where(full.mask, col(full, "pt"), -1)
    assert (np.diff(pt, axis=1)[full.mask[:, 1:]] <= 0).all()


def test_jetclass_missing_branch_names_file_and_branch(tmp_path):
    path = make_jetclass_root(tmp_path / "bad.root", 3, omit=("part_isMuon",))
    with pytest.raises(SchemaError, match=r"bad\.root.*part_isMuon.*missing"):
        read_jetclass(path)


def test_jetclass_nan_and_bad_labels(tmp_path):
    parts = random_jet_particles(3, np.random.default_rng(0))
    parts[1][2, 0] = np.nan
    path = write_jetclass_root(tmp_path / "nan.root", parts, "QCD")
    with pytest.raises(SchemaError, match=r"nan\.root.*'part_px'.*NaN/inf.*\[1\]"):
        read_jetclass(path)
    path = write_jetclass_root(tmp_path / "nolabel.root", random_jet_particles(2, np.random.default_rng(0)), "NotAClass")
    with pytest.raises(SchemaError, match=r"nolabel\.root.*label_\*.*one-hot"):
        read_jetclass(path)


def test_jetclass_not_root_and_no_tree(tmp_path):
    import uproot

    junk = tmp_path / "junk.root"
    junk.write_bytes(b"not a root file")
    with pytest.raises(SchemaError, match="junk.root: not a readable ROOT file"):
        read_jetclass(junk)
    with uproot.recreate(tmp_path / "other.root") as f:
        f["events"] = {"x": np.arange(3.0)}
    with pytest.raises(SchemaError, match=r"other\.root.*'tree'"):
        read_jetclass(tmp_path / "other.root")


# ============================================================ ATLAS top tagging
def _atlas_known(tmp_path, **kw):
    clus = np.zeros((3, 5, 4))
    # unsorted constituents in MeV: pT 50 GeV, 200 GeV, 0 (padding), 100 GeV
    clus[0, [0, 1, 3]] = [[50e3, 0.1, 0.2, 60e3], [200e3, -0.3, 0.4, 220e3], [100e3, 0.5, -0.6, 130e3]]
    clus[1, 0] = [300e3, 1.0, 1.0, 500e3]
    clus[2, :5] = [[k * 10e3, 0.0, 0.0, k * 10e3] for k in (5, 4, 3, 2, 1)]
    jets = np.array([[340e3, 0.1, 0.1, 80e3], [300e3, 1.0, 1.0, 0.0], [150e3, 0.0, 0.0, 1e3]])
    return write_atlas_h5(tmp_path / "atlas.h5", clus, jets, np.array([1, 0, 1]), **kw)


def test_atlas_mev_to_gev_sorting_weights(tmp_path):
    path = _atlas_known(tmp_path, weights=np.array([0.5, 2.0, 1.5]))
    js = read_atlas_toptag(path, max_particles=2)
    np.testing.assert_allclose(col(js, "pt")[0], [200.0, 100.0])
    np.testing.assert_allclose(col(js, "energy")[0], [220.0, 130.0])
    np.testing.assert_allclose(col(js, "eta")[0], [-0.3, 0.5], rtol=1e-6)
    np.testing.assert_array_equal(js.mask, [[True, True], [True, False], [True, True]])
    np.testing.assert_allclose(js.jets[0], [340.0, 0.1, 0.1, 80.0, 3.0], rtol=1e-6)
    assert js.jets[:, 4].tolist() == [3.0, 1.0, 5.0]  # all stored constituents, before truncation
    assert js.labels.tolist() == [1, 0, 1]
    np.testing.assert_allclose(js.weights, [0.5, 2.0, 1.5])
    sub = read_atlas_toptag(path, max_particles=2, start=1, stop=10)
    np.testing.assert_array_equal(sub.particles, js.particles[1:])


@pytest.mark.parametrize("key,expected", [("weights", [3.0, 1.0, 2.0]), (None, [1.0, 1.0, 1.0])])
def test_atlas_weight_key_fallback(tmp_path, key, expected):
    w = np.array([3.0, 1.0, 2.0]) if key else None
    path = _atlas_known(tmp_path, weights=w, weight_key=key or "training_weights")
    np.testing.assert_allclose(read_atlas_toptag(path).weights, expected)


def test_atlas_malformed(tmp_path):
    path = _atlas_known(tmp_path, omit=("fjet_m",))
    with pytest.raises(SchemaError, match=r"atlas\.h5.*'fjet_m'.*missing"):
        read_atlas_toptag(path)
    path = make_atlas_h5(tmp_path / "shape.h5", 4, max_clus=10)
    with h5py.File(path, "r+") as f:
        del f["fjet_clus_eta"]
        f["fjet_clus_eta"] = np.zeros((4, 9))
    with pytest.raises(SchemaError, match=r"shape\.h5.*'fjet_clus_eta'.*expected shape \(4, 10\).*got \(4, 9\)"):
        read_atlas_toptag(path)
    path = make_atlas_h5(tmp_path / "nan.h5", 4, max_clus=10)
    with h5py.File(path, "r+") as f:
        f["fjet_clus_pt"][2, 0] = np.inf
    with pytest.raises(SchemaError, match=r"nan\.h5.*'fjet_clus_pt'.*NaN/inf.*\[2\]"):
        read_atlas_toptag(path)
    with pytest.raises(SchemaError, match=r"nan\.h5.*'fjet_clus_pt'.*NaN/inf.*\[2\]"):
        read_atlas_toptag(path, start=1)  # rows are reported in file numbering, not chunk numbering
    path = _atlas_known(tmp_path)
    with h5py.File(path, "r+") as f:
        f["labels"][1] = 2
    with pytest.raises(SchemaError, match=r"'labels'.*0 \(QCD\) or 1 \(top\)"):
        read_atlas_toptag(path)
    gz = tmp_path / "test_nominal_000.h5.gz"
    gz.write_bytes(b"\x1f\x8b")
    with pytest.raises(SchemaError, match=r"test_nominal_000\.h5\.gz: gzip stream truncated or corrupt"):
        read_atlas_toptag(gz)
    assert not (tmp_path / "test_nominal_000.h5").exists()  # nothing half-decompressed under the final name
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        read_atlas_toptag(tmp_path / "nothere.h5")


# ============================================================ OmniFold Z+jets
def test_omnifold_known_particles_pid_and_observables(tmp_path):
    jets = np.array([[300.0, 0.5, 6.0, 20.0], [250.0, -1.0, 1.0, 10.0]])
    parts = np.zeros((2, 4, 4))
    parts[0, :3] = [[0.5, 0.1, -0.2, PID_CODE[22]], [1.5, 0.0, 0.1, PID_CODE[211]], [0.2, -0.1, 0.3, PID_CODE[11]]]
    parts[1, :1] = [[2.0, 0.05, 0.0, PID_CODE[2112]]]
    path = write_omnifold_npz(tmp_path / "Pythia21_Zjet_pTZ-200GeV_0.npz", {"gen": (jets, parts), "sim": (jets * [0.9, 1, 1, 1.1], parts)})
    out = read_omnifold(path, max_particles=3)
    assert set(out) == {"gen", "reco"}
    gen = out["gen"]
    assert gen.particle_features[:4] == ("pt", "eta", "phi", "energy") and gen.has("is_photon") and not gen.has("d0")
    # sorted: pi+ (150), photon (50), electron (20)
    np.testing.assert_allclose(col(gen, "pt")[0], [150.0, 50.0, 20.0], rtol=1e-6)
    wrap = lambda x: (x + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
    np.testing.assert_allclose(col(gen, "phi")[0], wrap(np.array([6.1, 5.8, 6.3])), atol=1e-5)
    # photon: massless, eta = y; pion: E from the PDG mass, eta slightly above y = 0.5
    np.testing.assert_allclose(col(gen, "eta")[0, 1], 0.6, atol=1e-6)
    np.testing.assert_allclose(col(gen, "energy")[0, 1], 50.0 * np.cosh(0.6), rtol=1e-6)
    mpi = 0.13957039
    mt = np.hypot(150.0, mpi)
    np.testing.assert_allclose(col(gen, "energy")[0, 0], mt * np.cosh(0.5), rtol=1e-6)
    np.testing.assert_allclose(col(gen, "eta")[0, 0], np.arcsinh(mt * np.sinh(0.5) / 150.0), rtol=1e-6)
    assert col(gen, "eta")[0, 0] > 0.5
    np.testing.assert_array_equal(col(gen, "charge")[0], [1.0, 0.0, -1.0])  # pi+, photon, e- (PDG 11 is e-)
    np.testing.assert_array_equal(col(gen, "is_charged_hadron")[0], [1, 0, 0])
    np.testing.assert_array_equal(col(gen, "is_photon")[0], [0, 1, 0])
    np.testing.assert_array_equal(col(gen, "is_electron")[0], [0, 0, 1])
    assert col(gen, "is_neutral_hadron")[1, 0] == 1 and col(gen, "charge")[1, 0] == 0  # neutron
    # jets: pT, eta from (pT, y, m), phi wrapped, m, multiplicity
    jeta = np.arcsinh(np.hypot(300.0, 20.0) * np.sinh(0.5) / 300.0)
    np.testing.assert_allclose(gen.jets[0], [300.0, jeta, wrap(6.0), 20.0, 3.0], rtol=1e-5)
    assert gen.jets[1, 4] == 1
    np.testing.assert_allclose(out["reco"].jets[:, 0], [270.0, 225.0], rtol=1e-6)
    assert set(gen.extra) == {"mults", "lhas", "widths", "ang2s", "tau2s", "sdms", "zgs", "Zs"}
    assert "Zs" not in out["reco"].extra and gen.extra["Zs"].shape == (2, 3)
    np.testing.assert_array_equal(gen.extra["mults"], [3, 1])


def test_omnifold_start_stop_and_row_alignment(tmp_path):
    path = make_omnifold_npz(tmp_path / "Herwig_Zjet_pTZ-200GeV_3.npz", 12, seed=4)
    full = read_omnifold(path)
    part = read_omnifold(path, start=4, stop=9)
    for c in ("gen", "reco"):
        assert len(part[c]) == 5
        np.testing.assert_array_equal(part[c].particles, full[c].particles[4:9])
    assert full["gen"].particles.shape[1] == 101


def test_omnifold_malformed(tmp_path):
    jets = np.array([[300.0, 0.0, 1.0, 20.0]])
    parts = np.zeros((1, 2, 4))
    parts[0, 0] = [1.0, 0.0, 0.0, 0.35]
    path = write_omnifold_npz(tmp_path / "a.npz", {"gen": (jets, parts), "sim": (jets, np.abs(parts))})
    with pytest.raises(SchemaError, match=r"a\.npz.*'gen_particles'.*unknown PID float code.*0\.35"):
        read_omnifold(path)
    path = make_omnifold_npz(tmp_path / "b.npz", 3, omit=("sim_particles",))
    with pytest.raises(SchemaError, match=r"b\.npz.*'sim_particles'.*missing"):
        read_omnifold(path)
    ok = np.zeros((2, 3, 4))
    ok[:, 0] = [1.0, 0.0, 0.0, 0.1]
    path = write_omnifold_npz(tmp_path / "c.npz", {"gen": (np.ones((2, 4)), ok), "sim": (np.ones((3, 4)), ok)})
    with pytest.raises(SchemaError, match=r"c\.npz.*'sim_jets'.*expected shape \(2, 4\).*got \(3, 4\)"):
        read_omnifold(path)
    bad = ok.copy()
    bad[1, 0, 1] = np.nan
    path = write_omnifold_npz(tmp_path / "d.npz", {"gen": (np.ones((2, 4)), ok), "sim": (np.ones((2, 4)), bad)})
    with pytest.raises(SchemaError, match=r"d\.npz.*'sim_particles'.*NaN"):
        read_omnifold(path)


# ================================================================ LHC Olympics
def _three_jet_event():
    """Two hard back-to-back jets (masses ~ 300 and ~ 100 GeV) plus a soft forward jet."""
    a = [(600.0, 0.0, 0.0), (500.0, 0.25, 0.2), (300.0, -0.2, -0.15)]  # heavy, phi ~ 0
    b = [(900.0, 0.1, np.pi - 0.05), (450.0, 0.12, -np.pi + 0.05)]  # light, phi ~ pi (wraps)
    c = [(30.0, 3.5, 1.5)]  # third jet, far away
    return np.array(b + c + a)  # deliberately not pT-ordered


def test_lhco_two_leading_jets_mass_ordered_and_mjj(tmp_path):
    ev = _three_jet_event()
    path = write_lhco_h5(tmp_path / "events.h5", ev[None], np.array([1]))
    out = read_lhco(path, max_particles=2)
    j1, j2 = out["jet1"], out["jet2"]
    p4 = lambda rows: np.array([massless(*r) for r in rows])  # noqa: E731
    a, b = p4(ev[3:]), p4(ev[:2])
    assert inv_mass(a) > inv_mass(b)
    np.testing.assert_allclose(j1.jets[0, 3], inv_mass(a), rtol=1e-4)  # jet1 is the heavier
    np.testing.assert_allclose(j2.jets[0, 3], inv_mass(b), rtol=1e-4)
    assert j1.jets[0, 4] == 3 and j2.jets[0, 4] == 2  # constituent counts before truncation
    np.testing.assert_allclose(col(j1, "pt")[0], [600.0, 500.0], rtol=1e-6)  # truncated to 2, pT-ordered
    np.testing.assert_allclose(col(j2, "phi")[0], [np.pi - 0.05, -np.pi + 0.05], rtol=1e-6)
    np.testing.assert_allclose(col(j1, "energy")[0, 1], 500.0 * np.cosh(0.25), rtol=1e-6)
    # mjj: the two leading jets only (the soft forward jet is left out)
    mjj = inv_mass(np.concatenate([a, b]))
    np.testing.assert_allclose(j1.extra["mjj"], [mjj], rtol=1e-4)
    np.testing.assert_array_equal(j1.extra["mjj"], j2.extra["mjj"])
    assert j1.labels.tolist() == [1] and j1.extra["event_index"].tolist() == [0]


def test_lhco_back_to_back_dijet_mjj(tmp_path):
    rng = np.random.default_rng(3)
    evs = np.stack([dijet_event(rng, 1500.0, 300.0, 80.0, n_each=40) for _ in range(6)])
    path = write_lhco_h5(tmp_path / "dijets.h5", evs, np.zeros(6))
    out = read_lhco(path)
    # every particle is in one of the two jets: mjj is the mass of the whole event, ~ 2 x 1500 GeV
    expected = [inv_mass(np.array([massless(*p) for p in ev])) for ev in evs]
    np.testing.assert_allclose(out["jet1"].extra["mjj"], expected, rtol=1e-4)
    assert (np.abs(out["jet1"].extra["mjj"] - 3000.0) < 300).all()
    assert (out["jet1"].jets[:, 3] >= out["jet2"].jets[:, 3]).all()
    assert (out["jet1"].jets[:, 4] + out["jet2"].jets[:, 4] == 80).all()
    np.testing.assert_allclose(np.abs(np.cos(out["jet1"].jets[:, 2] - out["jet2"].jets[:, 2])), 1.0, atol=0.05)
    assert out["jet1"].particles.shape == (6, 279, 4)


def test_lhco_drops_events_with_fewer_than_two_jets(tmp_path):
    rng = np.random.default_rng(0)
    good = dijet_event(rng, 1400.0, 100.0, 100.0, n_each=5)
    lonely = np.zeros_like(good)
    lonely[:3] = [(700.0, 0.0, 0.0), (600.0, 0.1, 0.1), (50.0, -0.1, 0.0)]  # one jet only
    path = write_lhco_h5(tmp_path / "drop.h5", np.stack([good, lonely, good]), np.array([0, 1, 0]))
    with pytest.warns(DroppedEventsWarning, match=r"drop\.h5: dropped 1 of 3") as rec:
        out = read_lhco(path)
    assert rec[0].message.n_dropped == 1
    assert len(out["jet1"]) == 2 and out["jet1"].extra["event_index"].tolist() == [0, 2]
    assert out["jet2"].labels.tolist() == [0, 0]


def test_lhco_pandas_fixed_layout_matches_pandas(tmp_path):
    import pandas as pd

    path = make_lhco_h5(tmp_path / "ev.h5", 7, seed=2)
    with h5py.File(path, "r") as f:  # the real layout, as pandas writes it
        assert f["df/block0_values"].shape == (7, 2101)
    frame = PandasFrame(path)
    ref = pd.read_hdf(path, key="df").to_numpy()
    np.testing.assert_array_equal(frame.read(), ref)
    np.testing.assert_array_equal(frame.read(2, 5), ref[2:5])
    # a chunk read equals the same rows of a full read
    full, part = read_lhco(path), read_lhco(path, start=3, stop=6)
    np.testing.assert_array_equal(part["jet2"].particles, full["jet2"].particles[3:6])
    assert part["jet1"].extra["event_index"].tolist() == [3, 4, 5]


def test_pandas_table_format_is_read_too(tmp_path):
    import pandas as pd

    df = pd.DataFrame(np.arange(24, dtype=float).reshape(6, 4), columns=["pxj1", "a", "b", "label"])
    df.to_hdf(tmp_path / "t.h5", key="df", format="table", mode="w")
    frame = PandasFrame(tmp_path / "t.h5")
    assert frame.table and frame.n_rows == 6 and frame.columns == ["pxj1", "a", "b", "label"]
    np.testing.assert_array_equal(frame.read(1, 3), df.to_numpy()[1:3])


def test_lhco_malformed(tmp_path):
    import pandas as pd

    p = tmp_path / "narrow.h5"
    pd.DataFrame(np.zeros((2, 30))).to_hdf(p, key="df", format="fixed", mode="w")
    with pytest.raises(SchemaError, match=r"narrow\.h5.*'df'.*2100 particle columns.*got 30"):
        read_lhco(p)
    p = tmp_path / "otherkey.h5"
    pd.DataFrame(np.zeros((2, 2101))).to_hdf(p, key="events", format="fixed", mode="w")
    with pytest.raises(SchemaError, match=r"otherkey\.h5.*'df'.*missing"):
        read_lhco(p)
    evs = np.stack([dijet_event(np.random.default_rng(1), 1500.0, 100.0, 100.0, 5)] * 2)
    evs[1, 3, 1] = np.nan
    p = write_lhco_h5(tmp_path / "nan.h5", evs, np.zeros(2))
    with pytest.raises(SchemaError, match=r"nan\.h5.*'df'.*NaN/inf.*\[1\]"):
        read_lhco(p)


def test_lhco_features_file(tmp_path):
    j1 = np.array([[1000.0, 0.0, 0.0, 500.0, 0.5, 0.3, 0.2]])
    j2 = np.array([[-1000.0, 0.0, 0.0, 100.0, 0.4, 0.2, 0.1]])
    path = write_lhco_features_h5(tmp_path / "events.features.h5", j1, j2, np.array([1]))
    feats = read_lhco_features(path)
    assert feats["label"].tolist() == [1] and feats["mj1"].tolist() == [500.0]
    expected = np.hypot(1000.0, 500.0) + np.hypot(1000.0, 100.0)  # back to back: mjj = E1 + E2
    np.testing.assert_allclose(feats["mjj"], [expected])


# ============================================================= Aspen Open Jets
def test_aspen_known_values(tmp_path):
    pf = np.zeros((2, 150, 11))
    #             px   py   pz   E     d0    d0e    dz    dze   q     pdg  puppi
    pf[0, 0] = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 22, 0.2]
    pf[0, 1] = [3.0, 4.0, 0.0, 5.01, 0.01, 0.002, 0.03, 0.004, -1.0, -211, 0.9]
    pf[0, 2] = [0.0, 2.0, 2.0, np.sqrt(8.0), 0.0, 0.0, 0.0, 0.0, 1.0, -13, 1.0]
    pf[1, 0] = [10.0, 0.0, 0.0, 10.0, 0, 0, 0, 0, 0.0, 130, 0.5]
    kin = np.array([[7.0, 0.1, 0.8, 4.0], [10.0, 0.0, 0.0, 1.0]])
    path = write_aspen_h5(tmp_path / "RunG_batch0.h5", pf, kin)
    js = read_aspen(path, max_particles=2)
    assert js.particle_features == ALL_PARTICLE_FEATURES
    np.testing.assert_allclose(col(js, "pt")[0], [5.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(col(js, "eta")[0, 1], np.arcsinh(1.0), rtol=1e-6)
    np.testing.assert_allclose(col(js, "phi")[0], [np.arctan2(4, 3), np.pi / 2], rtol=1e-6)
    np.testing.assert_array_equal(col(js, "charge")[0], [-1.0, 1.0])
    np.testing.assert_array_equal(col(js, "is_charged_hadron")[0], [1, 0])
    np.testing.assert_array_equal(col(js, "is_muon")[0], [0, 1])
    assert col(js, "is_neutral_hadron")[1, 0] == 1
    np.testing.assert_allclose([col(js, k)[0, 0] for k in ("d0", "d0err", "dz", "dzerr")], [0.1, 0.02, 0.3, 0.04], rtol=1e-5)
    np.testing.assert_allclose(js.extra["puppi_weight"][0], [0.9, 1.0], rtol=1e-6)  # follows the sort
    np.testing.assert_allclose(js.extra["sdmass"], [4.0, 1.0])
    np.testing.assert_allclose(js.jets[:, :3], kin[:, :3], rtol=1e-6)
    assert js.jets[:, 4].tolist() == [3.0, 1.0]
    np.testing.assert_allclose(js.jets[0, 3], inv_mass(pf[0, :3, :4]), rtol=1e-4)  # all candidates
    assert js.labels.tolist() == [0, 0]


def test_aspen_no_track_sentinel_follows_the_schema_convention(tmp_path):
    """The producer writes -1 (cm) in d0, d0Err, dz, dzErr for a candidate without a track; the
    schema's "no track" is all four 0 (JetClass). Real tracks: cm -> mm, signs kept."""
    pf = np.zeros((2, 150, 11))
    #             px   py   pz   E    d0     d0e    dz     dze    q     pdg  puppi
    pf[0, 0] = [1.0, 0.0, 0.0, 1.0, -1.0, -1.0, -1.0, -1.0, 0.0, 22, 0.3]  # photon: no track
    pf[0, 1] = [3.0, 4.0, 0.0, 5.0, 0.01, 0.002, -0.03, 0.004, -1.0, -211, 1.0]  # track
    pf[0, 2] = [0.0, 3.0, 0.0, 3.0, 0.02, -1.0, 0.05, 0.006, 1.0, 211, 1.0]  # sentinel in d0Err only
    pf[0, 3] = [2.0, 0.0, 0.0, 2.0, -0.05, 0.001, 0.02, 0.003, 1.0, 211, 1.0]  # track, negative d0
    pf[1, 0] = [10.0, 0.0, 0.0, 10.0, -1.0, -1.0, -1.0, -1.0, 0.0, 130, 0.5]  # neutral hadron: no track
    path = write_aspen_h5(tmp_path / "RunG_batch0.h5", pf, np.array([[11.0, 0.0, 0.0, 1.0], [10.0, 0.0, 0.0, 1.0]]))
    js = read_aspen(path, max_particles=4)
    np.testing.assert_allclose(col(js, "pt")[0], [5.0, 3.0, 2.0, 1.0], rtol=1e-6)  # pT order: tracks, then photon
    # by hand: 0.01 cm = 0.1 mm, 0.002 cm = 0.02 mm, -0.03 cm = -0.3 mm, ... (float32 on disk)
    np.testing.assert_allclose(col(js, "d0")[0], [0.1, 0.0, -0.5, 0.0], rtol=1e-5)
    np.testing.assert_allclose(col(js, "d0err")[0], [0.02, 0.0, 0.01, 0.0], rtol=1e-5)
    np.testing.assert_allclose(col(js, "dz")[0], [-0.3, 0.0, 0.2, 0.0], rtol=1e-5)
    np.testing.assert_allclose(col(js, "dzerr")[0], [0.04, 0.0, 0.03, 0.0], rtol=1e-5)
    assert [col(js, k)[1, 0] for k in ("d0", "d0err", "dz", "dzerr")] == [0.0, 0.0, 0.0, 0.0]
    for k in ("d0err", "dzerr"):
        assert (col(js, k) >= 0).all(), k  # no negative errors


def test_aspen_malformed(tmp_path):
    pf = np.zeros((2, 150, 10))
    path = write_aspen_h5(tmp_path / "narrow.h5", pf, np.zeros((2, 4)))
    with pytest.raises(SchemaError, match=r"narrow\.h5.*'PFCands'.*expected shape \(2, any, 11\).*got \(2, 150, 10\)"):
        read_aspen(path)
    path = make_aspen_h5(tmp_path / "pdg.h5", 3)
    with h5py.File(path, "r+") as f:
        f["PFCands"][1, 0, 9] = 999
    with pytest.raises(SchemaError, match=r"pdg\.h5.*'PFCands'.*unknown pdgId.*999"):
        read_aspen(path)
    path = write_aspen_h5(tmp_path / "nokin.h5", np.zeros((2, 150, 11)), np.zeros((2, 4)), omit=("jet_kinematics",))
    with pytest.raises(SchemaError, match=r"nokin\.h5.*'jet_kinematics'.*missing"):
        read_aspen(path)


# ================================================================== convert()
def _same(a: JetSet, b: JetSet):
    np.testing.assert_array_equal(a.particles, b.particles)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.jets, b.jets)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert set(a.extra) == set(b.extra)
    for k in a.extra:
        np.testing.assert_array_equal(a.extra[k], b.extra[k])


def test_convert_single_collection_datasets_in_chunks(tmp_path):
    cases = {
        "jetclass": ([make_jetclass_root(tmp_path / "WToQQ_000.root", 9, "Wqq"), make_jetclass_root(tmp_path / "TTBar_000.root", 4, "Tbqq", seed=5)], read_jetclass),
        "atlas_toptag": ([make_atlas_h5(tmp_path / "train.h5", 13, max_clus=60)], read_atlas_toptag),
        "aspen_open_jets": ([make_aspen_h5(tmp_path / "RunG_batch1.h5", 11)], read_aspen),
    }
    for name, (sources, reader) in cases.items():
        out = convert(name, sources, tmp_path / f"{name}.h5", max_particles=32, chunk_size=4)
        meta = inspect_file(out)
        assert meta.dataset == name and meta.collections == ("jets",) and meta.max_particles["jets"] == 32
        assert meta.info["sources"] == [p.name for p in sources] and meta.info["max_particles"] == 32
        got = read_jetset(out)
        ref = JetSet.concatenate([reader(s, max_particles=32) for s in sources]) if len(sources) > 1 else reader(sources[0], max_particles=32)
        _same(got, ref)
    assert inspect_file(tmp_path / "jetclass.h5").label_names == JETCLASS_LABELS
    assert read_jetset(tmp_path / "jetclass.h5").labels.tolist() == [7] * 9 + [8] * 4
    assert inspect_file(tmp_path / "atlas_toptag.h5").label_names == ("QCD", "top")
    # default max_particles is the published one
    assert inspect_file(convert("atlas_toptag", cases["atlas_toptag"][0], tmp_path / "d.h5")).max_particles["jets"] == 120


def test_convert_omnifold_generators_become_labels(tmp_path):
    her = make_omnifold_npz(tmp_path / "Herwig_Zjet_pTZ-200GeV_0.npz", 5, seed=1)
    py0 = make_omnifold_npz(tmp_path / "Pythia21_Zjet_pTZ-200GeV_0.npz", 4, seed=2)
    py1 = make_omnifold_npz(tmp_path / "Pythia21_Zjet_pTZ-200GeV_1.npz", 3, seed=3, pad_to=50)
    out = convert("omnifold_zjets", [her, py0, py1], tmp_path / "zjets.h5", chunk_size=2)
    meta = inspect_file(out)
    assert meta.collections == ("gen", "reco") and meta.label_names == ("Herwig", "Pythia21")
    sets = read_jetsets(out)
    assert sets["gen"].labels.tolist() == [0] * 5 + [1] * 7 == sets["reco"].labels.tolist()
    _same(sets["reco"].subset(slice(5, 9)), read_omnifold(py0, label=1)["reco"])
    assert sets["gen"].max_particles == 101 and "Zs" in sets["gen"].extra


def test_convert_lhco_records_dropped_events(tmp_path):
    rng = np.random.default_rng(0)
    good = dijet_event(rng, 1400.0, 100.0, 100.0, n_each=5)
    lonely = np.zeros_like(good)
    lonely[0] = (700.0, 0.0, 0.0)
    evs = np.stack([good, lonely, good, good, lonely])
    src = write_lhco_h5(tmp_path / "events_anomalydetection_v2.h5", evs, np.array([0, 1, 1, 0, 0]))
    with pytest.warns(DroppedEventsWarning, match="dropped 2 event"):
        out = convert("lhco_rnd", src, tmp_path / "lhco.h5", chunk_size=2, R=1.0)
    meta = inspect_file(out)
    assert meta.collections == ("jet1", "jet2") and meta.label_names == ("QCD", "signal")
    assert meta.info["n_dropped_events"] == 2 and meta.info["R"] == 1.0
    sets = read_jetsets(out)
    assert sets["jet1"].extra["event_index"].tolist() == [0, 2, 3]
    assert sets["jet2"].labels.tolist() == [0, 1, 0]
    np.testing.assert_allclose(sets["jet1"].extra["mjj"], sets["jet2"].extra["mjj"])


def test_convert_errors_and_atomicity(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'cms'.*aspen_open_jets"):
        convert("cms", [], tmp_path / "x.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        convert("atlas_toptag", [tmp_path / "missing.h5"], tmp_path / "x.h5")
    good = make_atlas_h5(tmp_path / "good.h5", 6, max_clus=20)
    bad = make_atlas_h5(tmp_path / "bad.h5", 6, max_clus=20)
    with h5py.File(bad, "r+") as f:
        f["fjet_eta"][4] = np.nan
    out = tmp_path / "out" / "atlas.h5"
    with pytest.raises(SchemaError, match=r"bad\.h5.*'fjet_eta'.*\[4\]"):
        convert("atlas_toptag", [good, bad], out, chunk_size=4)
    assert not out.exists() and list(out.parent.iterdir()) == []  # no partial file, no temp file


def test_write_jetsets_chunked_checks_layout(tmp_path):
    def js(n, p=3, extra=None):
        parts = np.zeros((n, p, 4), np.float32)
        parts[:, 0] = [10.0, 0.0, 0.0, 10.0]
        mask = np.zeros((n, p), bool)
        mask[:, 0] = True
        return JetSet(parts, mask, np.tile([10.0, 0, 0, 0, 1], (n, 1)), np.zeros(n), extra=extra or {})

    path = write_jetsets_chunked(tmp_path / "ok.h5", [{"jets": js(2)}, {"jets": js(0)}, {"jets": js(3)}], dataset="t", label_names=["a"], info={"k": 1})
    got = read_jetset(path)
    assert len(got) == 5 and inspect_file(path).info == {"k": 1}
    with pytest.raises(SchemaError, match="different layout"):
        write_jetsets_chunked(tmp_path / "bad.h5", [{"jets": js(2)}, {"jets": js(2, p=4)}], dataset="t", label_names=["a"])
    with pytest.raises(SchemaError, match="row-aligned"):
        write_jetsets_chunked(tmp_path / "bad.h5", [{"a": js(2), "b": js(3)}], dataset="t", label_names=["a"])
    with pytest.raises(SchemaError, match="nothing to write"):
        write_jetsets_chunked(tmp_path / "bad.h5", [], dataset="t", label_names=["a"])
    assert not (tmp_path / "bad.h5").exists()
    assert sorted(DATASETS) == ["aspen_open_jets", "atlas_toptag", "jetclass", "lhco_rnd", "omnifold_zjets"]
    from jetlab.cli.convert_cmd import CONVERTIBLE  # the CLI's list (kept import-free) must match

    assert sorted(CONVERTIBLE) == sorted(DATASETS)


# ======================================================================= CLI
def _cli(argv):
    from jetlab.cli import convert_cmd

    parser = argparse.ArgumentParser(prog="jetlab")
    sub = parser.add_subparsers(dest="command")
    data = sub.add_parser("data").add_subparsers(dest="data_command")
    convert_cmd.register(data)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_convert(tmp_path, capsys):
    src = make_atlas_h5(tmp_path / "test.h5", 5, max_clus=30)
    out = tmp_path / "atlas_schema.h5"
    assert _cli(["data", "convert", "atlas_toptag", str(src), "--out", str(out), "--max-particles", "16"]) == 0
    assert "wrote" in capsys.readouterr().out
    js = read_jetset(out)
    assert js.particles.shape == (5, 16, 4)
    _same(js, read_atlas_toptag(src, max_particles=16))


def test_cli_convert_through_jetlab_main(tmp_path, capsys):
    from jetlab.cli.main import main

    src = make_omnifold_npz(tmp_path / "Herwig_Zjet_pTZ-200GeV_0.npz", 4)
    out = tmp_path / "zjets.h5"
    assert main(["data", "convert", "omnifold_zjets", str(src), "--out", str(out)]) == 0
    assert inspect_file(out).collections == ("gen", "reco")
    assert main(["data", "convert", "omnifold_zjets", str(tmp_path / "none.npz"), "--out", str(out)]) == 2
    assert "none.npz" in capsys.readouterr().err


def test_cli_convert_errors(tmp_path):
    from jetlab.cli.main import CLIError

    with pytest.raises(CLIError, match="nothere.npz"):
        _cli(["data", "convert", "omnifold_zjets", str(tmp_path / "nothere.npz"), "--out", str(tmp_path / "o.h5")])
    bad = make_aspen_h5(tmp_path / "a.h5", 2)
    with h5py.File(bad, "r+") as f:
        del f["PFCands"]
    with pytest.raises(CLIError, match=r"a\.h5.*'PFCands'"):
        _cli(["data", "convert", "aspen_open_jets", str(bad), "--out", str(tmp_path / "o.h5")])
    with pytest.raises(CLIError, match="--max-particles must be >= 1"):
        _cli(["data", "convert", "aspen_open_jets", str(bad), "--out", str(tmp_path / "o.h5"), "--max-particles", "0"])
    with pytest.raises(SystemExit):  # argparse rejects unknown dataset names
        _cli(["data", "convert", "nope", str(bad), "--out", str(tmp_path / "o.h5")])
