"""End-to-end tests of the offline Pythia 8 + FastJet generator (small samples)."""

import numpy as np
import pytest

from jetlab.data.generate import GENERATORS, decay_groups, generate
from jetlab.data.schema import PID_FEATURES, inspect_file, read_jetset, read_jetsets


@pytest.fixture(scope="module")
def jetclass(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "jetclass.h5"
    generate("jetclass-mini", 2000, path, workers=2, seed=3, progress=False)
    return path


def test_jetclass_schema_classes_and_window(jetclass):
    meta = inspect_file(jetclass)
    assert meta.dataset == "jetclass-mini" and meta.collections == ("jets",)
    assert meta.label_names == ("QCD", "Tbqq", "Wqq", "Zqq", "Hbb")
    js = read_jetset(jetclass)
    assert len(js) == 2000
    assert np.bincount(js.labels).tolist() == [400] * 5  # equal class fractions
    assert set(PID_FEATURES) <= set(js.particle_features)  # 'pid' group available
    pt, eta = js.jet_feature("pt"), js.jet_feature("eta")
    assert pt.min() > 500 and pt.max() < 1000 and np.abs(eta).max() < 2
    # particles: pT-sorted within the mask, zero padding, multiplicity matches the mask
    ppt = np.where(js.mask, js.feature("pt"), -1.0)
    assert np.all(np.diff(ppt, axis=1) <= 0)
    assert np.all(js.particles[~js.mask] == 0)
    assert np.array_equal(js.mask.sum(1), np.minimum(js.jet_feature("n_particles"), js.max_particles))
    # rows are shuffled, not grouped by class
    assert len(np.unique(js.labels[:50])) > 1
    # PID flags are one-hot for real particles, charge only on tracks
    flags = np.stack([js.feature(f) for f in PID_FEATURES[1:]], axis=-1)
    assert np.all(flags.sum(-1)[js.mask] == 1)
    charged = (js.feature("is_charged_hadron") + js.feature("is_electron") + js.feature("is_muon")) > 0
    assert np.all((js.feature("charge") != 0) == charged)


def test_jetclass_mass_peaks(jetclass):
    js = read_jetset(jetclass)
    m = js.jet_feature("mass")

    def peak(label, lo, hi):
        x = m[(js.labels == label) & (m > lo) & (m < hi)]
        return np.median(x)

    assert abs(peak(1, 120, 230) - 173) < 12  # top
    assert abs(peak(2, 55, 110) - 80) < 8  # W
    assert abs(peak(4, 90, 160) - 125) < 12  # H
    assert np.median(m[js.labels == 0]) < 120  # QCD jets are light


def test_reproducible_and_worker_independent(tmp_path):
    kw = dict(progress=False, classes=("QCD", "Wqq"), chunk_size=25)
    a = generate("jetclass-mini", 60, tmp_path / "a.h5", workers=1, seed=11, **kw)
    b = generate("jetclass-mini", 60, tmp_path / "b.h5", workers=2, seed=11, **kw)
    c = generate("jetclass-mini", 60, tmp_path / "c.h5", workers=1, seed=12, **kw)
    ja, jb, jc = (read_jetset(p) for p in (a, b, c))
    assert np.array_equal(ja.particles, jb.particles) and np.array_equal(ja.labels, jb.labels)
    assert not np.array_equal(ja.jets, jc.jets)
    assert sorted(np.unique(ja.labels).tolist()) == [0, 2]


def test_toptag_domain_shift(tmp_path, jetclass):
    path = generate("toptag-mini", 240, tmp_path / "top.h5", workers=2, seed=1, progress=False)
    js = read_jetset(path)
    assert inspect_file(path).label_names == ("QCD", "Top")
    assert js.particle_features == ("pt", "eta", "phi", "energy")  # clusters: kinematics only
    assert np.bincount(js.labels).tolist() == [120, 120]
    pt = js.jet_feature("pt")
    assert pt.min() > 350 and pt.max() < 1000
    m = js.jet_feature("mass")
    top = m[(js.labels == 1) & (m > 100) & (m < 250)]
    assert 150 < np.median(top) < 190
    # different detector: coarser resolution -> wider top mass peak than the CMS-like sample
    jc = read_jetset(jetclass)
    mc = jc.jet_feature("mass")[jc.labels == 1]
    iqr = lambda x: np.subtract(*np.percentile(x[(x > 100) & (x < 250)], [75, 25]))
    assert iqr(top) > iqr(mc)


def test_zjets_pairs_and_setups(tmp_path):
    path = generate("zjets-mini", 300, tmp_path / "z.h5", workers=2, seed=2, progress=False)
    sets = read_jetsets(path)
    assert set(sets) == {"sim_gen", "sim_reco", "data_gen", "data_reco"}
    assert all(len(s) == 300 for s in sets.values())
    assert set(PID_FEATURES) <= set(sets["sim_gen"].particle_features)
    for level in ("sim", "data"):
        g, r = sets[f"{level}_gen"], sets[f"{level}_reco"]
        deta = g.jet_feature("eta") - r.jet_feature("eta")
        dphi = (g.jet_feature("phi") - r.jet_feature("phi") + np.pi) % (2 * np.pi) - np.pi
        assert np.mean(np.hypot(deta, dphi) < 0.2) > 0.85  # same jet at both levels
        assert np.median(r.jet_feature("pt") / g.jet_feature("pt")) == pytest.approx(1.0, abs=0.1)
    nsim = sets["sim_gen"].jet_feature("n_particles").mean()
    ndat = sets["data_gen"].jet_feature("n_particles").mean()
    assert nsim - ndat > 1.0  # the 'data' shower setup radiates less


def test_lhco_masses_and_mjj(tmp_path):
    path = generate("lhco-mini", 120, tmp_path / "l.h5", workers=2, seed=4, progress=False, signal_fraction=0.5)
    sets = read_jetsets(path)
    j1, j2 = sets["jet1"], sets["jet2"]
    assert np.array_equal(j1.labels, j2.labels) and j1.labels.sum() == 60
    assert j1.jet_feature("pt").min() > 1200
    assert np.all(j1.jet_feature("pt") >= j2.jet_feature("pt"))
    sig = j1.labels == 1
    mjj = j1.extra["mjj"]
    assert abs(np.median(mjj[sig]) - 3500) < 250
    heavy = np.maximum(j1.jet_feature("mass"), j2.jet_feature("mass"))[sig]
    light = np.minimum(j1.jet_feature("mass"), j2.jet_feature("mass"))[sig]
    assert abs(np.median(heavy) - 500) < 60
    assert abs(np.median(light) - 100) < 25
    assert np.median(mjj[~sig]) < np.median(mjj[sig])


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown generator 'nope'.*jetclass-mini"):
        generate("nope", 10, tmp_path / "x.h5")
    with pytest.raises(ValueError, match="n_jets must be a positive integer"):
        generate("jetclass-mini", 0, tmp_path / "x.h5")
    with pytest.raises(TypeError, match="unknown option.*bogus"):
        generate("jetclass-mini", 10, tmp_path / "x.h5", bogus=1)
    with pytest.raises(ValueError, match="unknown classes"):
        generate("jetclass-mini", 10, tmp_path / "x.h5", classes=("Tbl",))
    with pytest.raises(ValueError, match="signal_fraction"):
        generate("lhco-mini", 10, tmp_path / "x.h5", signal_fraction=1.5)
    assert set(GENERATORS) == {"jetclass-mini", "toptag-mini", "zjets-mini", "lhco-mini"}


def test_decay_groups_follows_w_copies_to_top():
    # 0 system, 1 top(last copy), 2 W (from top), 3 b, 4 W recoil copy, 5 q, 6 qbar
    ids = np.array([90, 6, 24, 5, 24, 2, -1])
    status = np.array([-11, -62, -22, -23, -52, -23, -23])
    mother1 = np.array([0, 0, 1, 1, 2, 4, 4])
    groups = decay_groups(ids, status, mother1, 6)
    assert len(groups) == 1 and groups[0][0] == 1 and sorted(groups[0][1].tolist()) == [3, 5, 6]
    assert [g[0] for g in decay_groups(ids, status, mother1, 24)] == [4]


def test_cli(tmp_path, capsys):
    from jetlab.cli.main import main

    assert main(["generate", "nope", "--n-jets", "5", "--out", str(tmp_path / "x.h5")]) == 2
    assert "valid names: jetclass-mini" in capsys.readouterr().err
    assert main(["generate", "jetclass-mini", "--n-jets", "0", "--out", str(tmp_path / "x.h5")]) == 2
    assert "--n-jets must be a positive integer" in capsys.readouterr().err
    assert main(["generate", "jetclass-mini", "--n-jets", "4", "--out", str(tmp_path / "x.h5"),
                 "--signal-fraction", "0.2"]) == 2
    assert "only applies to lhco-mini" in capsys.readouterr().err
    out = tmp_path / "cli.h5"
    assert main(["generate", "jetclass-mini", "--n-jets", "2", "--workers", "1", "--seed", "3",
                 "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "QCD=1" in text and "Tbqq=1" in text and "jet pT" in text
