"""Replicas of the five public datasets, in the publishers' own formats, read end to end.

Expected values come from the arrays the fixtures wrote (numpy four-vector sums in
fixtures_formats.write_replica), never from the readers themselves.
"""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from fixtures_formats import (
    LHCO_EVENTS,
    _atlas_arrays,
    write_atlas_shard,
    write_replica,
)
from jetlab.data.readers import (
    JETCLASS_LABELS,
    convert,
    raw_files,
    read_aspen,
    read_atlas_toptag,
    read_jetclass,
    read_lhco,
    read_lhco_features,
    read_omnifold,
)
from jetlab.data.readers.omnifold import NpzRows, iter_omnifold
from jetlab.data.schema import SchemaError, inspect_file, read_jetset, read_jetsets


def particle_mass(js) -> np.ndarray:
    """Invariant mass of the kept particles, from the reader's (pT, eta, phi, E) columns."""
    pt, eta, phi, e = (np.where(js.mask, js.particles[..., i].astype(np.float64), 0.0) for i in range(4))
    px, py, pz = (pt * np.cos(phi)).sum(1), (pt * np.sin(phi)).sum(1), (pt * np.sinh(eta)).sum(1)
    return np.sqrt(np.clip(e.sum(1) ** 2 - px**2 - py**2 - pz**2, 0, None))


def cli(*argv) -> int:
    from jetlab.cli.main import main

    return main(["data", *map(str, argv)])


# ===================================================================== JetClass
@pytest.fixture(scope="module")
def jetclass(tmp_path_factory):
    return write_replica("jetclass", tmp_path_factory.mktemp("data") / "jetclass", n_jets=120, seed=1)


def test_jetclass_raw_files_extracts_tarballs_once_in_class_interleaved_order(jetclass):
    files = raw_files("jetclass", jetclass.directory)
    assert sorted(files) == ["test", "train", "val"]
    for split in files:
        rel = [str(p.relative_to(jetclass.directory)) for p in files[split]]
        assert rel == list(jetclass.truth[split]["files"])
    assert [p.name for p in files["val"][:3]] == ["ZJetsToNuNu_120.root", "HToBB_120.root", "HToCC_120.root"]
    assert [p.name for p in files["train"][9:12]] == ["TTBarLep_000.root", "ZJetsToNuNu_010.root", "HToBB_010.root"]
    mtimes = [p.stat().st_mtime_ns for p in files["train"]]
    again = raw_files("jetclass", jetclass.directory)  # extraction marker: not unpacked again
    assert [p.stat().st_mtime_ns for p in again["train"]] == mtimes


@pytest.mark.parametrize("split", ["train", "val", "test"])  # val: LZ4 baskets, others ZLIB
def test_jetclass_replica_read_rows_labels_counts_masses(jetclass, split):
    truth = jetclass.truth[split]
    js = read_jetclass(raw_files("jetclass", jetclass.directory)[split])
    assert len(js) == jetclass.n(split) == len(truth["labels"])
    np.testing.assert_array_equal(js.labels, truth["labels"])
    first = np.concatenate([[0], np.cumsum(jetclass.rows[split])[:9]])  # first jet of the first ten files
    assert [JETCLASS_LABELS[i] for i in js.labels[first]] == list(JETCLASS_LABELS)  # one file per class, in label order
    np.testing.assert_array_equal(js.jets[:, 4], truth["n_particles"])
    np.testing.assert_array_equal(js.mask.sum(1), truth["n_particles"])  # all fit in 150
    np.testing.assert_allclose(js.jets[:, 0], truth["pt"], rtol=1e-5)
    np.testing.assert_allclose(js.jets[:, 3], truth["mass"], rtol=2e-3)
    np.testing.assert_allclose(particle_mass(js), truth["mass"], rtol=2e-3)
    np.testing.assert_allclose(js.feature("pt")[:, 0], truth["max_particle_pt"], rtol=1e-5)


def test_jetclass_tarball_path_and_start_stop_across_files(jetclass, tmp_path):
    tar = jetclass.files["val"][0]
    full = read_jetclass(tar, extract_to=tmp_path / "x")  # another extraction target
    assert (tmp_path / "x" / "val_5M" / "HToBB_120.root").is_file()
    np.testing.assert_array_equal(full.labels, jetclass.truth["val"]["labels"])
    rows = np.cumsum(jetclass.rows["val"])
    lo, hi = int(rows[1]) - 3, int(rows[4]) + 2  # spans four files
    part = read_jetclass(tar, start=lo, stop=hi, extract_to=tmp_path / "x")
    np.testing.assert_array_equal(part.particles, full.particles[lo:hi])
    np.testing.assert_array_equal(part.labels, jetclass.truth["val"]["labels"][lo:hi])


def test_jetclass_train_tarball_extracts_where_fetch_unpacks_it(jetclass, tmp_path):
    import shutil

    tar = shutil.copy(jetclass.files["train"][0], tmp_path)  # bare ROOT files, as published
    js = read_jetclass(tar)
    assert (tmp_path / "train_100M" / "HToBB_000.root").is_file()  # the manifest's unpack_to, as fetch does
    assert not list(tmp_path.glob("*.root"))
    n_part0 = sum(jetclass.rows["train"][i] for i, f in enumerate(jetclass.truth["train"]["files"]) if f.endswith("_000.root"))
    assert len(js) == n_part0
    # a file named twice (the tarball and the folder it unpacked to) is read once
    assert len(read_jetclass([tar, tmp_path / "train_100M"])) == n_part0


def test_jetclass_layout_not_as_published_is_refused(tmp_path):
    import tarfile

    from fixtures_formats import make_jetclass_root

    d = tmp_path / "jetclass"
    (d / "build" / "train_100M").mkdir(parents=True)
    make_jetclass_root(d / "build" / "train_100M" / "HToBB_000.root", 3, "Hbb")
    with tarfile.open(d / "JetClass_Pythia_train_100M_part0.tar", "w") as tar:  # a folder inside a train part
        tar.add(d / "build" / "train_100M" / "HToBB_000.root", arcname="train_100M/HToBB_000.root")
    with pytest.raises(SchemaError, match=r"part0.tar: not laid out as the publisher ships it.*train_100M/HToBB_000.root outside train_100M/"):
        raw_files("jetclass", d)


def test_jetclass_copy_from_an_older_double_extraction_is_not_read(tmp_path, caplog):
    import logging

    from jetlab.data.archives import extract_tar

    rep = write_replica("jetclass", tmp_path / "jetclass", n_jets=30, seed=2, files_per_split=1)
    d = rep.directory
    extract_tar(rep.files["train"][0], d)  # what jetlab did before: a second copy at the dataset root
    assert len(list(d.glob("*.root"))) == 10
    with caplog.at_level(logging.WARNING, logger="jetlab.data.readers.files"):
        files = raw_files("jetclass", d)
    assert [p.parent.name for p in files["train"]] == ["train_100M"] * 10
    assert len(read_jetclass(files["train"])) == rep.n("train") == 30
    assert "was also extracted into" in caplog.text and "can be deleted" in caplog.text


def test_jetclass_convert_cli_from_tarballs_streams_in_chunks(jetclass, tmp_path):
    out = tmp_path / "train.h5"
    tars = jetclass.files["train"]
    assert cli("convert", "jetclass", *tars, "--out", out, "--chunk-size", 7) == 0
    got = read_jetset(out)
    truth = jetclass.truth["train"]
    np.testing.assert_array_equal(got.labels, truth["labels"])
    np.testing.assert_allclose(got.jets[:, 3], truth["mass"], rtol=2e-3)
    np.testing.assert_array_equal(got.jets[:, 4], truth["n_particles"])
    assert inspect_file(out).info["sources"][:2] == ["ZJetsToNuNu_000.root", "HToBB_000.root"]


# ============================================================ ATLAS top tagging
@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    return write_replica("atlas_toptag", tmp_path_factory.mktemp("data") / "atlas_toptag", n_jets=90, seed=2)


def test_atlas_raw_files_and_gz_shards_decompressed_once(atlas):
    files = raw_files("atlas_toptag", atlas.directory)
    assert {s: [p.name for p in v] for s, v in files.items()} == {
        "train": ["train_nominal_000.h5.gz", "train_nominal_001.h5.gz", "train_nominal_002.h5.gz"],
        "test": ["test_nominal_000.h5.gz", "test_nominal_001.h5.gz"],
    }
    read_atlas_toptag(files["test"])
    plain = atlas.directory / "test_nominal_000.h5"
    assert plain.is_file() and files["test"][0].is_file()  # decompressed beside; the verified .gz is kept
    mtime = plain.stat().st_mtime_ns
    read_atlas_toptag(files["test"][0])
    assert plain.stat().st_mtime_ns == mtime
    assert [p.name for p in raw_files("atlas_toptag", atlas.directory)["test"]] == [p.name for p in files["test"]]


@pytest.mark.parametrize("split", ["train", "test"])
def test_atlas_replica_read_gev_rows_labels_weights_masses(atlas, split):
    truth = atlas.truth[split]
    js = read_atlas_toptag(raw_files("atlas_toptag", atlas.directory)[split], max_particles=120)
    assert len(js) == atlas.n(split)
    np.testing.assert_array_equal(js.labels, truth["labels"])
    np.testing.assert_allclose(js.weights, truth["weights"], rtol=1e-6)
    np.testing.assert_array_equal(js.jets[:, 4], truth["n_particles"])
    np.testing.assert_allclose(js.jets[:, 0], truth["pt"], rtol=1e-6)  # GeV
    np.testing.assert_allclose(js.jets[:, 3], truth["mass"], rtol=1e-5)
    np.testing.assert_allclose(particle_mass(js), truth["constituent_mass"], rtol=1e-3)
    assert js.jets[:, 0].min() > 350  # GeV scale, divided by 1000 exactly once
    top = truth["labels"] == 1
    assert 150 < np.median(js.jets[top, 3]) < 190


def test_atlas_start_stop_across_shards_and_directory_of_one_split(atlas, tmp_path):
    shards = atlas.files["train"]
    full = read_atlas_toptag(shards)
    b = atlas.rows["train"][0]
    part = read_atlas_toptag(shards, start=b - 2, stop=b + 5)
    np.testing.assert_array_equal(part.particles, full.particles[b - 2 : b + 5])
    with pytest.raises(ValueError, match=r"several ATLAS splits \['test', 'train'\].*\['train'\]"):
        read_atlas_toptag(atlas.directory)
    one = tmp_path / "only_test"
    one.mkdir()
    for p in atlas.files["test"]:
        (one / p.name).write_bytes(p.read_bytes())
    np.testing.assert_array_equal(read_atlas_toptag(one).labels, atlas.truth["test"]["labels"])


def test_atlas_convert_train_shards_and_legacy_release(atlas, tmp_path):
    out = convert("atlas_toptag", raw_files("atlas_toptag", atlas.directory)["train"], tmp_path / "train.h5", chunk_size=16)
    got = read_jetset(out)
    np.testing.assert_array_equal(got.labels, atlas.truth["train"]["labels"])
    np.testing.assert_allclose(got.jets[:, 3], atlas.truth["train"]["mass"], rtol=1e-5)
    legacy = write_replica("atlas_toptag", tmp_path / "legacy", n_jets=30, seed=3, legacy=True)
    files = raw_files("atlas_toptag", legacy.directory)
    assert {s: [p.name for p in v] for s, v in files.items()} == {"train": ["train.h5"], "test": ["test.h5"]}
    js = read_atlas_toptag(files["test"])  # 2022 file, lzf-compressed datasets
    np.testing.assert_allclose(js.jets[:, 3], legacy.truth["test"]["mass"], rtol=1e-5)


def test_atlas_gev_file_and_units_mismatch_are_refused(tmp_path):
    arrays, truth = _atlas_arrays(12, np.random.default_rng(4))
    mev = write_atlas_shard(tmp_path / "train_nominal_000.h5.gz", arrays)
    gev_arrays = dict(arrays)
    for k in ("fjet_clus_pt", "fjet_clus_E", "fjet_pt", "fjet_m"):
        gev_arrays[k] = arrays[k] / np.float32(1000)
    gev = write_atlas_shard(tmp_path / "converted.h5", gev_arrays, gzip_file=False)
    with pytest.raises(SchemaError, match=r"converted\.h5: key 'fjet_pt': median jet pT \d+.* looks like GeV, but units='MeV'.*units='GeV'"):
        read_atlas_toptag(gev)
    as_gev = read_atlas_toptag(gev, units="GeV")
    np.testing.assert_allclose(as_gev.jets[:, 3], truth and [t["mass"] for t in truth], rtol=1e-5)
    np.testing.assert_allclose(as_gev.particles, read_atlas_toptag(mev).particles, rtol=1e-6)
    with pytest.raises(SchemaError, match=r"train_nominal_000\.h5: key 'fjet_pt'.*looks like MeV, but units='GeV'"):
        read_atlas_toptag(mev, units="GeV")
    mixed = dict(arrays)
    mixed["fjet_clus_pt"] = arrays["fjet_clus_pt"] / np.float32(1000)
    path = write_atlas_shard(tmp_path / "mixed.h5", mixed, gzip_file=False)
    with pytest.raises(SchemaError, match=r"mixed\.h5: key 'fjet_clus_pt': units mismatch.*looks like GeV.*'fjet_pt'.*MeV"):
        read_atlas_toptag(path)
    out = tmp_path / "out" / "atlas.h5"
    with pytest.raises(SchemaError, match=r"converted\.h5: key 'fjet_pt'"):
        convert("atlas_toptag", [mev, gev], out, chunk_size=5)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # nothing half-written


# ============================================================ OmniFold Z+jets
@pytest.fixture(scope="module")
def zjets(tmp_path_factory):
    return write_replica("omnifold_zjets", tmp_path_factory.mktemp("data") / "omnifold_zjets", n_jets=70, seed=3)


def test_omnifold_raw_files_all_17_in_numeric_order(zjets):
    files = raw_files("omnifold_zjets", zjets.directory)
    assert list(files) == ["Herwig", "Pythia21"]
    for gen, paths in files.items():
        assert [p.name for p in paths] == [f"{gen}_Zjet_pTZ-200GeV_{i}.npz" for i in range(17)]
        assert paths == zjets.files[gen]


@pytest.mark.parametrize("gen", ["Herwig", "Pythia21"])
def test_omnifold_replica_reads_every_file_with_expected_rows_and_masses(zjets, gen):
    truth = zjets.truth[gen]
    shuffled = list(reversed(zjets.files[gen]))  # a shell glob's order (…_10 before …_2) is put right
    out = read_omnifold(shuffled)
    assert len(out["gen"]) == len(out["reco"]) == zjets.n(gen) == 70
    for coll in ("gen", "reco"):
        js = out[coll]
        np.testing.assert_array_equal(js.jets[:, 4], truth[f"{coll}_n_particles"])
        np.testing.assert_allclose(js.jets[:, 3], truth[f"{coll}_mass"], rtol=1e-6)  # float32 schema
        np.testing.assert_allclose(js.jets[:, 0], truth[f"{coll}_pt"], rtol=1e-6)
        np.testing.assert_allclose(particle_mass(js), truth[f"{coll}_mass"], rtol=1e-3)  # PDG masses (float32 particles)
    rows = np.cumsum(zjets.rows[gen])
    lo, hi = int(rows[1]) - 1, int(rows[11]) + 1  # files _1 .. _12: crosses _9 -> _10
    part = read_omnifold(zjets.files[gen], start=lo, stop=hi)
    np.testing.assert_array_equal(part["reco"].particles, out["reco"].particles[lo:hi])
    np.testing.assert_array_equal(part["gen"].extra["Zs"], out["gen"].extra["Zs"][lo:hi])


def test_omnifold_streams_npz_rows_like_np_load(zjets):
    for path in zjets.files["Herwig"][:2]:  # _0 stored (np.savez), _1 deflated (savez_compressed)
        with np.load(path) as ref, NpzRows(path) as npz:
            assert sorted(npz.files) == sorted(ref.files)
            full = ref["sim_particles"]
            np.testing.assert_array_equal(npz.rows("sim_particles", 1, 3), full[1:3])
            blocks = list(npz.iter_rows("gen_jets", 2))
            assert [len(b) for b in blocks] == [2] * (len(full) // 2) + ([len(full) % 2] if len(full) % 2 else [])
            np.testing.assert_array_equal(np.concatenate(blocks), ref["gen_jets"])
    chunks = list(iter_omnifold(zjets.files["Herwig"], chunk_size=3))
    assert max(len(c["gen"]) for c in chunks) == 3
    np.testing.assert_array_equal(np.concatenate([c["gen"].jets[:, 4] for c in chunks]), zjets.truth["Herwig"]["gen_n_particles"])


def test_omnifold_convert_directory_labels_generators(zjets, tmp_path):
    out = tmp_path / "zjets.h5"
    assert cli("convert", "omnifold_zjets", zjets.directory, "--out", out, "--chunk-size", 4) == 0
    meta = inspect_file(out)
    assert meta.label_names == ("Herwig", "Pythia21") and meta.n_rows == 140
    sets = read_jetsets(out)
    assert sets["gen"].labels.tolist() == [0] * 70 + [1] * 70
    for coll in ("gen", "reco"):
        expected = np.concatenate([zjets.truth[g][f"{coll}_mass"] for g in ("Herwig", "Pythia21")])
        np.testing.assert_allclose(sets[coll].jets[:, 3], expected, rtol=1e-6)
    by_gen = read_omnifold(zjets.directory, label=None)
    assert by_gen["reco"].labels.tolist() == sets["reco"].labels.tolist()


# ================================================================ LHC Olympics
# pandas' complib choices the organisers' PyTables offers (lzf is not one: h5py's lzf is covered by
# the Aspen and 2022 ATLAS replicas; blosc2 reads too but PyTables writes it slowly, ~20 s here)
LHCO_VARIANTS = [(fmt, lib) for fmt in ("fixed", "table") for lib in (None, "blosc", "blosc:lz4", "blosc:zstd", "zlib", "bzip2")]


@pytest.mark.parametrize("fmt,complib", LHCO_VARIANTS)
def test_lhco_replica_every_pandas_layout_and_compression(tmp_path, fmt, complib):
    rep = write_replica("lhco_rnd", tmp_path / "lhco_rnd", n_jets=24, seed=5, lhco_format=fmt, complib=complib)
    files = raw_files("lhco_rnd", rep.directory)
    assert {s: [p.name for p in v] for s, v in files.items()} == {"events": [LHCO_EVENTS], "features": ["events_anomalydetection_v2.features.h5"]}
    with h5py.File(files["events"][0]) as f:  # the layout pandas wrote
        assert ("table" in f["df"]) == (fmt == "table")
    truth = rep.truth["events"]
    out = read_lhco(files["events"][0])
    j1, j2 = out["jet1"], out["jet2"]
    assert len(j1) == 24 and j1.extra["event_index"].tolist() == list(range(24))  # two jets in every event
    np.testing.assert_array_equal(j1.labels, truth["labels"])
    np.testing.assert_array_equal(j1.jets[:, 4], truth["jet1_n_particles"])
    np.testing.assert_array_equal(j2.jets[:, 4], truth["jet2_n_particles"])
    np.testing.assert_allclose(j1.jets[:, 3], truth["jet1_mass"], rtol=1e-6)
    np.testing.assert_allclose(j2.jets[:, 3], truth["jet2_mass"], rtol=1e-6)
    np.testing.assert_allclose(j1.extra["mjj"], truth["mjj"], rtol=1e-5)
    np.testing.assert_allclose(particle_mass(j1), truth["jet1_mass"], rtol=1e-5)
    sig = truth["labels"] == 1
    assert abs(np.median(j1.jets[sig, 3]) - 500) < 60 and abs(np.median(j1.extra["mjj"][sig]) - 3500) < 300
    feats = read_lhco_features(files["features"][0])
    np.testing.assert_allclose(feats["mjj"], truth["mjj"], rtol=1e-6)
    np.testing.assert_array_equal(feats["label"], truth["labels"])
    conv = tmp_path / "lhco.h5"
    assert cli("convert", "lhco_rnd", files["events"][0], "--out", conv, "--chunk-size", 10) == 0
    sets = read_jetsets(conv)
    np.testing.assert_allclose(sets["jet2"].jets[:, 3], truth["jet2_mass"], rtol=1e-6)
    np.testing.assert_allclose(sets["jet1"].extra["mjj"], truth["mjj"], rtol=1e-5)


# ============================================================= Aspen Open Jets
def test_aspen_replica_many_files_gzip_and_lzf(tmp_path):
    rep = write_replica("aspen_open_jets", tmp_path / "aspen_open_jets", n_jets=40, seed=6, files_per_split=3)
    files = raw_files("aspen_open_jets", rep.directory)
    assert [p.name for p in files["jets"]] == ["RunG_batch0.h5", "RunG_batch1.h5", "RunG_batch2.h5"]
    truth = rep.truth["jets"]
    js = read_aspen(rep.directory)
    assert len(js) == 40
    np.testing.assert_array_equal(js.jets[:, 4], truth["n_particles"])
    np.testing.assert_allclose(js.jets[:, 3], truth["mass"], rtol=1e-4)
    np.testing.assert_allclose(js.extra["sdmass"], truth["sdmass"], rtol=1e-6)
    np.testing.assert_allclose(particle_mass(js), truth["mass"], rtol=1e-3)
    # the replica's neutrals carry the producer's -1 cm "no track": read as 0 (the schema's), tracks 0.001 cm = 0.01 mm
    charged = js.mask & (js.feature("charge") != 0)
    neutral = js.mask & (js.feature("charge") == 0)
    assert charged.sum() > 100 and neutral.sum() > 100
    np.testing.assert_allclose(js.feature("d0err")[charged], 0.01, rtol=1e-5)
    np.testing.assert_allclose(js.feature("dzerr")[charged], 0.02, rtol=1e-5)
    for k in ("d0", "d0err", "dz", "dzerr"):
        assert (js.feature(k)[neutral] == 0).all(), k
    b = rep.rows["jets"][0]
    part = read_aspen(files["jets"], start=b - 1, stop=b + 3)
    np.testing.assert_array_equal(part.particles, js.particles[b - 1 : b + 3])
    out = convert("aspen_open_jets", rep.directory, tmp_path / "aoj.h5", chunk_size=6)
    np.testing.assert_allclose(read_jetset(out).jets[:, 3], truth["mass"], rtol=1e-4)


# ============================================================== bad real input
def _as_lzo(path) -> int:
    """Rewrite every lzf filter (id 32000) in ``path``'s pipelines as PyTables' LZO (id 305), which
    neither h5py nor hdf5plugin provides: a file as a publisher with LZO-enabled PyTables writes it."""
    data = path.read_bytes()
    # filter pipeline message v1: id (2 bytes LE), name length, flags, n values, name "lzf\0" padded
    new, n = re.subn(rb"\x00\x7d(......)lzf\x00", lambda m: b"\x31\x01" + m.group(1) + b"lzo\x00", data, flags=re.S)
    path.write_bytes(new)
    return n


def test_unreadable_filter_is_a_clear_error_naming_file_key_and_filter(tmp_path):
    rep = write_replica("aspen_open_jets", tmp_path / "aoj", n_jets=6, seed=7)
    batch1 = rep.files["jets"][1]  # lzf datasets
    assert _as_lzo(batch1) >= 2
    with pytest.raises(SchemaError, match=r"RunG_batch1\.h5: key 'PFCands': compressed with HDF5 filter 305 \(lzo\).*not available.*expected"):
        read_aspen(batch1)
    out = tmp_path / "o" / "aoj.h5"
    with pytest.raises(SchemaError, match=r"RunG_batch1\.h5.*filter 305"):
        convert("aspen_open_jets", rep.files["jets"], out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    import pandas as pd

    lhco = tmp_path / "events_LHCO2020_BlackBox1.h5"
    pd.DataFrame(np.zeros((3, 2100))).to_hdf(lhco, key="df", format="fixed", mode="w")
    with h5py.File(lhco, "r+") as f:  # same values, re-stored with lzf then relabelled LZO
        v = f["df/block0_values"][:]
        del f["df/block0_values"]
        f.create_dataset("df/block0_values", data=v, compression="lzf")
    assert _as_lzo(lhco) == 1
    with pytest.raises(SchemaError, match=r"BlackBox1\.h5: key 'df/block0_values': compressed with HDF5 filter 305 \(lzo\)"):
        read_lhco(lhco)


def test_missing_keys_and_wrong_shapes_in_replicas(tmp_path):
    rep = write_replica("aspen_open_jets", tmp_path / "aoj", n_jets=4, seed=8, files_per_split=1)
    with h5py.File(rep.files["jets"][0], "r+") as f:
        del f["jet_kinematics"]
        f["jet_kinematics"] = np.zeros((4, 3))
    with pytest.raises(SchemaError, match=r"RunG_batch0\.h5: key 'jet_kinematics': expected shape \(4, 4\) \(pT, eta, phi, soft-drop mass\), got \(4, 3\)"):
        read_aspen(rep.directory)
    arrays, _ = _atlas_arrays(5, np.random.default_rng(9))
    del arrays["fjet_m"]
    shard = write_atlas_shard(tmp_path / "test_nominal_007.h5.gz", arrays)
    with pytest.raises(SchemaError, match=r"test_nominal_007\.h5: key 'fjet_m': missing"):
        read_atlas_toptag(shard)
    z = write_replica("omnifold_zjets", tmp_path / "z", n_jets=17, seed=9, generators=["Pythia26"])
    path = z.files["Pythia26"][3]
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["gen_particles"] = arrays["gen_particles"][..., :3]
    np.savez(path, **arrays)
    with pytest.raises(SchemaError, match=r"Pythia26_Zjet_pTZ-200GeV_3\.npz: key 'gen_particles': expected shape \(1, any, 4\)"):
        read_omnifold(z.directory)
    with pytest.raises(FileNotFoundError, match=r"no lhco_rnd files found \(expected events_anomalydetection_v2\.h5"):
        raw_files("lhco_rnd", tmp_path)
