"""jetlab.data.sources: the one dataset resolver, on generated data and on replicas of every
published dataset laid out as `jetlab data fetch` leaves them (expected values from the arrays
the replica writer computed, not from the readers)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from fixtures_formats import write_replica

from jetlab.data.schema import SchemaError, read_jetset, write_jetset
from jetlab.data.sources import DatasetNotReadyError, DataSource, resolve
from jetlab.physics import jet_mass


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("JETLAB_DATA", str(root))
    return root


def _mass(js):
    """Jet mass from the stored particles (mass of the four-vector sum), independent of js.jets."""
    return jet_mass(js)


# ------------------------------------------------------------------ generated and local files
def test_generator_name_is_cached_and_needs_a_size(tmp_path):
    src = resolve("toptag-mini", n_jets=40, seed=3, cache_dir=tmp_path, progress=False)
    assert src.kind == "generated" and src.name == "toptag-mini" and list(src.splits) == ["all"]
    assert src.n_rows() == 40 and len(src.read()) == 40
    assert src.label_names == ("QCD", "Top")
    again = resolve("toptag-mini", n_jets=40, seed=3, cache_dir=tmp_path, progress=False)
    assert again.files() == src.files()
    with pytest.raises(ValueError, match="'toptag-mini' is generated: pass n_jets > 0"):
        resolve("toptag-mini", cache_dir=tmp_path)

    # the file names its detector and jet radius; a generated source hands them on as its acceptance
    acc = src.acceptance()
    assert acc.detector.name == "atlas-like" and acc.jet_radius == 1.0 and acc.detector.cluster_pt_min == 0.4


def test_acceptance_of_generator_names_and_files(tmp_path):
    from jetlab.data.sources import acceptance_of

    # the mini datasets as their docs describe them: CMS-like PF R=0.8, ATLAS-like clusters R=1.0, R=0.4 Z+jets
    for name, det, radius in (("jetclass-mini", "jetclass-like", 0.8), ("toptag-mini", "atlas-like", 1.0),
                              ("zjets-mini", "jetclass-like", 0.4), ("lhco-mini", "jetclass-like", 1.0)):
        acc = acceptance_of(name)
        assert (acc.detector.name, acc.jet_radius) == (det, radius), name
    js = read_jetset(resolve("toptag-mini", n_jets=20, cache_dir=tmp_path, progress=False).files()[0])
    named = write_jetset(tmp_path / "named.h5", js, dataset="mine", label_names=("QCD", "Top"),
                         info={"detector": "atlas-like", "jet_radius": 1.0})
    assert acceptance_of(named).detector.name == "atlas-like" and resolve(named).acceptance().jet_radius == 1.0
    bare = write_jetset(tmp_path / "bare.h5", js, dataset="mine", label_names=("QCD", "Top"))
    with pytest.raises(ValueError, match="dataset 'mine': no detector model is known for it"):
        acceptance_of(bare)
    with pytest.raises(ValueError, match="dataset 'jetclass': no detector model"):
        acceptance_of("jetclass")

def test_files_directories_lists_and_mappings_read_in_order(tmp_path):
    base = read_jetset(resolve("toptag-mini", n_jets=30, cache_dir=tmp_path, progress=False).files()[0])
    d = tmp_path / "parts"
    paths = [write_jetset(d / f"part{i}.h5", base.subset(slice(10 * i, 10 * (i + 1))), dataset="toptag-mini",
                          label_names=("QCD", "Top")) for i in range(3)]
    for src in (resolve(d), resolve(paths), resolve([str(p) for p in paths])):
        assert src.kind == "files" and src.n_rows() == 30
        np.testing.assert_array_equal(src.read().jets, base.jets)
        # start/stop across file boundaries
        np.testing.assert_array_equal(src.read(start=7, stop=23).jets, base.jets[7:23])
    split = resolve({"train": paths[:2], "test": paths[2]})
    assert split.n_rows("train") == 20 and split.n_rows("test") == 10
    np.testing.assert_array_equal(split.read(split="test").labels, base.labels[20:])
    # sample() takes rows from every file, not the first n of the first
    sample = resolve(paths).sample(6)
    np.testing.assert_array_equal(sample.jets, base.jets[[0, 1, 10, 11, 20, 21]])
    with pytest.raises(KeyError, match="no split 'val'"):
        split.files("val")


def test_bad_inputs_name_what_was_expected(tmp_path, data_root):
    with pytest.raises(FileNotFoundError, match="nothing.h5 does not exist"):
        resolve(tmp_path / "nothing.h5")
    with pytest.raises(ValueError, match="neither a generator .* nor an existing schema file"):
        resolve("no-such-dataset")
    foreign = tmp_path / "foreign.h5"
    import h5py

    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(SchemaError, match="foreign.h5"):
        resolve(foreign)
    with pytest.raises(DatasetNotReadyError, match=r"(?s)'atlas_toptag' is not on disk.*jetlab data fetch atlas_toptag --yes"):
        resolve("atlas_toptag")


# ------------------------------------------------------------------ published datasets (replicas)
def test_atlas_shards_all_read_in_order_with_published_split(data_root):
    rep = write_replica("atlas_toptag", data_root / "atlas_toptag", n_jets=50)
    src = resolve("atlas_toptag", progress=False)
    assert src.kind == "published" and set(src.splits) == {"train", "test"}
    for split in ("train", "test"):
        assert len(src.files(split)) == len(rep.files[split])  # one schema file per shard
        js = src.read(split=split)
        assert len(js) == rep.n(split)
        np.testing.assert_array_equal(js.labels, rep.truth[split]["labels"])
        np.testing.assert_allclose(js.jets[:, 0], rep.truth[split]["pt"], rtol=1e-4)  # MeV -> GeV once
        np.testing.assert_array_equal(js.mask.sum(1), np.minimum(rep.truth[split]["n_particles"], js.max_particles))


def test_conversion_happens_once_and_again_when_the_raw_file_changes(data_root):
    write_replica("atlas_toptag", data_root / "atlas_toptag", n_jets=30)
    first = resolve("atlas_toptag", progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in first.files()}
    second = resolve("atlas_toptag", progress=False)
    assert {p: p.stat().st_mtime_ns for p in second.files()} == stamps
    raw = sorted((data_root / "atlas_toptag").glob("train_nominal_*.h5.gz"))[0]
    os.utime(raw, ns=(raw.stat().st_atime_ns, max(stamps.values()) + 10**9))
    third = resolve("atlas_toptag", progress=False)
    changed = [p.name for p in third.files() if p.stat().st_mtime_ns != stamps[p]]
    assert changed == [raw.name.split(".")[0] + ".h5"]


def test_omnifold_every_npz_of_each_generator(data_root):
    from jetlab.tasks.omnifold import load_omnifold_data

    rep = write_replica("omnifold_zjets", data_root / "omnifold_zjets", n_jets=68)  # 17 files of 2-6 jets each
    src = resolve("omnifold_zjets", progress=False)
    assert set(src.splits) == {"Herwig", "Pythia21"} and len(src.files("Herwig")) == 17
    sets = load_omnifold_data("omnifold_zjets", -1)
    assert len(sets["sim_gen"]) == rep.n("Pythia21") == 68 and len(sets["data_reco"]) == rep.n("Herwig")
    for role, gen in (("sim", "Pythia21"), ("data", "Herwig")):
        for level in ("gen", "reco"):
            js = sets[f"{role}_{level}"]
            np.testing.assert_allclose(js.jets[:, 3], rep.truth[gen][f"{level}_mass"], rtol=1e-4, atol=1e-3)
            np.testing.assert_array_equal(js.mask.sum(1), rep.truth[gen][f"{level}_n_particles"])
    capped = load_omnifold_data("omnifold_zjets", 30)
    assert all(len(v) == 30 for v in capped.values())  # a cap reaching into later files


def test_lhco_blosc_file_clustered_once_into_dijets(data_root):
    from jetlab.tasks.anomaly import load_dijets

    rep = write_replica("lhco_rnd", data_root / "lhco_rnd", n_jets=40, complib="blosc")
    src = resolve("lhco_rnd", progress=False)
    assert list(src.splits) == ["events"]  # the features file is not a particle split
    ev = load_dijets("lhco_rnd")
    truth = rep.truth["events"]
    assert len(ev) == rep.n("events")
    np.testing.assert_allclose(ev.mjj * 1000.0, truth["mjj"], rtol=1e-3)
    np.testing.assert_array_equal(ev.labels, truth["labels"])
    heavy = np.maximum(truth["jet1_mass"], truth["jet2_mass"])
    np.testing.assert_allclose(ev.jet1.jets[:, 3], heavy, rtol=1e-3, atol=1e-2)


def test_jetclass_tarballs_extracted_and_split_kept(data_root):
    rep = write_replica("jetclass", data_root / "jetclass", n_jets=30)
    src = resolve("jetclass", progress=False)
    assert set(src.splits) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        js = src.read(split=split)
        assert len(js) == rep.n(split)
        np.testing.assert_array_equal(np.sort(js.labels), np.sort(rep.truth[split]["labels"]))
        np.testing.assert_allclose(np.sort(_mass(js)), np.sort(rep.truth[split]["mass"]), rtol=1e-3, atol=1e-2)
    # a sample across the training files holds more than one class (files are one class each)
    assert len(np.unique(src.sample(10, split="train").labels)) > 1


def test_aspen_batches(data_root):
    rep = write_replica("aspen_open_jets", data_root / "aspen_open_jets", n_jets=30)
    src = resolve("aspen_open_jets", progress=False)
    js = src.read(split="jets")
    assert len(js) == rep.n("jets") and len(src.files("jets")) == 2
    np.testing.assert_allclose(js.jets[:, 0], rep.truth["jets"]["pt"], rtol=1e-4)


def test_pretraining_streams_a_published_split_and_validates_on_val(data_root, tmp_path):
    from jetlab.train.pretrain import pretrain

    write_replica("jetclass", data_root / "jetclass", n_jets=40)
    src = resolve("jetclass", progress=False)
    assert isinstance(src, DataSource)
    model, history = pretrain(src, tmp_path / "run", model_config="tiny", epochs=1, batch_size=16, streaming=True,
                              n_val=20, max_particles=32, progress=False, device="cpu", checkpoint_every=None)
    card = model.card
    assert card.training_data == "jetclass" and card.training_size == src.n_rows("train")
    assert len(card.class_names) == 10 and history.best_val_loss is not None and np.isfinite(history.best_val_loss)
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_cli_data_prepare_converts_a_fetched_dataset_on_workers(data_root, capsys):
    from jetlab.cli.main import main

    assert main(["data", "prepare", "aspen_open_jets"]) == 2  # not fetched: the commands to run
    assert "jetlab data fetch aspen_open_jets --yes" in capsys.readouterr().err
    rep = write_replica("aspen_open_jets", data_root / "aspen_open_jets", n_jets=30)
    assert main(["data", "prepare", "aspen_open_jets", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert f"aspen_open_jets jets: {rep.n('jets')} rows in 2 schema file(s)" in out
    converted = sorted((data_root / "aspen_open_jets" / "schema" / "jets").glob("*.h5"))
    assert [p.name for p in converted] == ["RunG_batch0.h5", "RunG_batch1.h5"]
    assert [len(read_jetset(p)) for p in converted] == rep.rows["jets"]


def test_data_release_names_what_a_tagging_run_read():
    from jetlab.tasks.tagging.pipeline import data_release

    assert "record 15013" in data_release("atlas_toptag", ["/d/schema/train/train.h5", "/d/schema/test/test.h5"])
    assert "record 80030" in data_release("atlas_toptag", ["/d/schema/train/train_nominal_000.h5"])
    assert "not the ATLAS data" in data_release("toptag-mini", ["/c/toptag-mini-n300-s0.h5"])
