"""Shipped dataset manifests, manifest validation and lookup, `jetlab data list/info`."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from jetlab.cli.main import main
from jetlab.data.manifests import (
    ALGORITHMS,
    ManifestError,
    SizeSummary,
    list_datasets,
    load_manifest,
    manifest_dirs,
    parse_manifest,
)

SHIPPED = ["aspen_open_jets", "atlas_toptag", "jetclass", "lhco_rnd", "omnifold_zjets"]
REPO_MANIFESTS = Path(__file__).resolve().parent.parent / "data_manifests"
#: model files in the same manifest format (checked in tests/test_omnilearned.py)
LISTED = sorted(SHIPPED + ["omnilearned_checkpoints"])


@pytest.fixture(autouse=True)
def _default_lookup(monkeypatch):
    monkeypatch.delenv("JETLAB_MANIFESTS", raising=False)


def test_shipped_datasets_are_listed():
    assert list_datasets() == LISTED
    assert REPO_MANIFESTS in manifest_dirs()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_manifest_validates(name):
    m = load_manifest(name)
    assert m.name == name and m.path.resolve() == (REPO_MANIFESTS / f"{name}.yaml").resolve()
    assert m.title and m.citation and m.reader.startswith("read_")
    assert m.record_id and m.record_url.startswith("https://")
    assert m.files and m.files_for()  # default subsets are non-empty
    assert {f.subset for f in m.files} == set(m.subsets)
    assert "max_particles" in m.schema and "units" in m.schema
    for f in m.files:
        assert all(u.startswith("https://") for u in f.urls), f
        assert "{" not in f.name and "{" not in f.url
        if f.checksum is not None:
            assert len(f.checksum) == ALGORITHMS[f.algorithm]
            assert int(f.checksum, 16) >= 0
    # every missing size/checksum is said to be missing, in the file's own note
    for f in m.files:
        if f.checksum is None or f.size is None:
            assert f.note and "not found offline" in f.note, f
        if f.approx_size is not None:
            assert f.size is None and "approx_size" in f.note, f
    if any(f.checksum is None or f.size is None for f in m.files):
        assert any("null" in n for n in m.notes)


def test_manifest_readers_exist_in_jetlab_data_readers():
    import jetlab.data.readers as readers

    for name in SHIPPED:
        reader = load_manifest(name).reader
        assert callable(getattr(readers, reader, None)), f"{name}: jetlab.data.readers has no {reader}"


def test_jetclass_manifest_carries_the_published_md5s():
    m = load_manifest("jetclass")
    names = [f.name for f in m.files]
    assert names[:10] == [f"JetClass_Pythia_train_100M_part{i}.tar" for i in range(10)]
    assert len(m.files_for("val")) == 1 and len(m.files_for("test")) == 1
    assert all(f.algorithm == "md5" for f in m.files)
    assert all(f.unpack == "tar" for f in m.files)
    assert [f.unpack_to for f in m.files] == ["train_100M"] * 10 + [None, None]  # as ParT's get_datasets.py
    # only part0 and val have a (quoted, rounded) size; the others are honestly unknown
    assert {f.name: f.approx_size for f in m.files if f.approx_size} == {
        "JetClass_Pythia_train_100M_part0.tar": 14_100_000_000,
        "JetClass_Pythia_val_5M.tar": 7_100_000_000,
    }
    assert all(f.size is None for f in m.files)
    assert m.file("JetClass_Pythia_train_100M_part0.tar").checksum == "de4fd2dca2e68ab3c85d5cfd3bcc65c3"
    assert m.file("JetClass_Pythia_test_20M.tar").checksum == "64e5156d26d101adeb43b8388207d767"
    assert m.file("JetClass_Pythia_val_5M.tar").mirrors == ("https://hqu.web.cern.ch/datasets/JetClass/JetClass_Pythia_val_5M.tar",)
    assert [lab["branch"] for lab in m.schema["labels"]][:2] == ["label_QCD", "label_Hbb"]
    assert len(m.schema["labels"]) == 10


def test_omnifold_manifest_has_17_hashed_files_per_generator():
    m = load_manifest("omnifold_zjets")
    for gen in ("Herwig", "Pythia21", "Pythia25", "Pythia26"):
        files = m.files_for(gen)
        assert [f.name for f in files] == [f"{gen}_Zjet_pTZ-200GeV_{i}.npz" for i in range(17)]
        assert all(f.algorithm == "sha256" and len(f.checksum) == 64 for f in files)
    assert len({f.checksum for f in m.files}) == 68  # no copy-paste duplicates
    assert m.file("Herwig_Zjet_pTZ-200GeV_0.npz").checksum.startswith("d63f08cb9c15a7ff")
    assert m.default_subsets == ["Herwig", "Pythia21"]


def test_atlas_manifest_expands_shards_and_keeps_legacy_optional():
    m = load_manifest("atlas_toptag")
    train, test = m.files_for("train"), m.files_for("test")
    assert len(train) == 929 and len(test) == 104
    assert train[0].name == "train_nominal_000.h5.gz" and train[-1].name == "train_nominal_928.h5.gz"
    assert train[7].url.endswith("/CERN-EP-2024-159/train_nominal_007.h5.gz")
    assert train[7].mirrors[0].endswith("/eos/opendata/atlas/datascience/CERN-EP-2024-159/train_nominal_007.h5.gz")
    assert {f.name for f in m.files_for(["legacy_train", "legacy_test"])} == {"train.h5", "test.h5"}
    assert len(m.files_for()) == 1033  # legacy files are opt-in
    assert all(f.unpack == "gunzip" and f.checksum is None for f in m.files_for())  # adler32 not found offline
    assert {f.name: f.approx_size for f in m.files if f.approx_size} == {"train.h5": 130 * 10**9, "test.h5": 7_600_000_000}
    assert "NOT CONFIRMED" in m.path.read_text()  # the shard counts say so where they are defined
    assert m.schema["units"]["momentum"] == "MeV"
    assert set(m.schema["weight_keys"]) == {"training_weights", "weights"}


def test_aspen_and_lhco_manifests():
    aoj = load_manifest("aspen_open_jets")
    assert len(aoj.files_for("RunG")) == 40 and len(aoj.files_for("RunH")) == 40
    known, unknown = aoj.total_size()
    assert unknown == 0 and 200e9 < known < 215e9
    assert aoj.schema["pfcands_features"][9] == "pdgId" and aoj.schema["max_particles"] == 150
    lhco = load_manifest("lhco_rnd")
    assert [f.name for f in lhco.files_for()] == ["events_anomalydetection_v2.h5", "events_anomalydetection_v2.features.h5"]
    assert len(lhco.files_for("blackbox")) == 6
    feats = lhco.file("events_anomalydetection_v2.features.h5")
    assert (feats.algorithm, feats.checksum) == ("md5", "271cf5e71fc756b2a8d2b32730689bdb")
    assert "/records/6466204/" in feats.url and "/records/4536377/" in feats.mirrors[0]  # md5 source first
    assert lhco.file("events_anomalydetection_Z_XY_qqq.features.h5").checksum == "1e729f7dff225451182c28afaa4bb411"
    assert [f.checksum for f in lhco.files_for("blackbox")] == [None] * 6
    # R&D default subsets: 2.9 GB + 74 MB, both quoted (approximate), none exact
    assert lhco.size_summary(lhco.files_for()) == SizeSummary(exact=0, approx=2_974_000_000, n_files=2, n_approx=2, n_unknown=0)
    assert lhco.schema["label_column"] == 2100 and lhco.schema["max_particles"] == 279


def test_files_for_rejects_unknown_subsets():
    m = load_manifest("jetclass")
    assert len(m.files_for("all")) == 12
    with pytest.raises(ManifestError, match=r"no subset 'nope'; known subsets: train, val, test"):
        m.files_for("nope")
    with pytest.raises(ManifestError, match="has no file 'x.tar'"):
        m.file("x.tar")


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ManifestError, match=r"unknown dataset 'jetclas'; known datasets: aspen_open_jets, atlas_toptag, jetclass"):
        load_manifest("jetclas")


# --------------------------------------------------------------------------- validation

BASE = {
    "name": "toy",
    "title": "Toy",
    "description": "toy dataset",
    "license": None,
    "citation": "someone",
    "format": "raw",
    "reader": "read_toy",
    "subsets": {"train": "training", "extra": {"description": "opt", "default": False}},
    "schema": {"max_particles": 3},
    "files": [
        {"name": "a.bin", "url": "https://example.org/a.bin", "size": 3, "checksum": "0" * 64, "algorithm": "sha256", "subset": "train"},
        {"name": "b.bin", "url": "https://example.org/b.bin", "size": None, "checksum": None, "algorithm": None, "subset": "extra"},
    ],
}


def _with(path: str, value):
    data = copy.deepcopy(BASE)
    target = data
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if k.isdigit() else target[k]
    last = keys[-1]
    if value is _DELETE:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return data


_DELETE = object()


def test_base_example_is_valid():
    m = parse_manifest(BASE, "toy.yaml")
    assert [f.name for f in m.files_for()] == ["a.bin"]
    assert m.total_size() == (3, 1)
    assert [f.check for f in m.files] == ["checksum", "none"]


def test_size_summary_separates_exact_approximate_and_unknown():
    data = copy.deepcopy(BASE)
    data["files"] += [
        {"name": "c.bin", "url": "https://example.org/c", "approx_size": "2.5 GB", "subset": "train"},
        {"name": "d.bin", "url": "https://example.org/d", "approx_size": 1500, "subset": "train"},
        {"name": "e.bin", "url": "https://example.org/e", "size": 7, "subset": "extra"},
    ]
    m = parse_manifest(data, "toy.yaml")
    assert [f.approx_size for f in m.files] == [None, None, 2_500_000_000, 1500, None]
    assert m.file("e.bin").check == "size only"
    s = m.size_summary()
    assert s == SizeSummary(exact=3 + 7, approx=2_500_000_000 + 1500, n_files=5, n_approx=2, n_unknown=1)
    assert s.total == 2_500_001_510
    assert s.text() == "~2.5 GB + size unknown for 1 file"
    assert s.text(detail=True) == "~2.5 GB (2 of 5 sizes approximate) + size unknown for 1 file"
    assert m.size_summary(m.files_for("extra")).text() == "7 B + size unknown for 1 file"
    assert m.size_summary([m.file("a.bin"), m.file("e.bin")]).text() == "10 B"
    assert m.size_summary([m.file("b.bin")]).text() == "size unknown for 1 file"
    assert m.total_size() == (10, 3)  # exact bytes only; approximate files count as unknown here


def test_unpack_field_is_parsed_and_propagates_to_pattern_entries():
    data = copy.deepcopy(BASE)
    data["subsets"] = {"train": "t"}
    data["files"] = [
        {"name": "s_{index}.h5.gz", "url": "https://x.org/{name}", "indices": [0, 2], "subset": "train", "unpack": "gunzip"},
        {"name": "a.tar", "url": "https://x.org/a.tar", "subset": "train", "unpack": "tar", "unpack_to": "part/a"},
        {"name": "b.tar.gz", "url": "https://x.org/b.tar.gz", "subset": "train", "unpack": "tar"},
        {"name": "c.h5", "url": "https://x.org/c.h5", "subset": "train", "unpack": None},
    ]
    m = parse_manifest(data, "toy.yaml")
    assert [(f.name, f.unpack, f.unpack_to) for f in m.files] == [
        ("s_0.h5.gz", "gunzip", None), ("s_1.h5.gz", "gunzip", None), ("a.tar", "tar", "part/a"),
        ("b.tar.gz", "tar", None), ("c.h5", None, None),
    ]


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("reader", _DELETE, r"toy\.yaml: missing required key\(s\) 'reader'"),
        ("files.0.url", "ftp://example.org/a.bin", r"file 'a\.bin': url 'ftp://example.org/a\.bin' must start with one of https://, http://"),
        ("files.0.algorithm", "crc32", r"file 'a\.bin': algorithm 'crc32' is not one of md5, sha256, adler32"),
        ("files.0.checksum", "abc", r"file 'a\.bin': checksum 'abc' is not a 64-digit hex sha256 digest"),
        ("files.0.subset", "test", r"file 'a\.bin': subset 'test' is not declared in 'subsets'"),
        ("files.0.size", -1, r"file 'a\.bin': size must be a non-negative integer"),
        ("files.0.name", "../a.bin", r"file name must be a plain file name"),
        ("files.1.name", "a.bin", r"duplicate file name 'a\.bin'"),
        ("files.0.bogus", 1, r"files\[0\]: unknown key\(s\) \['bogus'\]"),
        ("name", "Toy Data", r"'name' must be a lower-case identifier"),
        ("schema", {}, r"'schema' must be a non-empty mapping"),
        ("subsets", {"all": "x"}, r"'all' is reserved and cannot be a subset name"),
        ("files.0.algorithm", None, r"file 'a\.bin': algorithm None is not one of"),
        ("subsets", {"train": {"default": False}, "extra": {"default": False}}, r"at least one subset must be a default subset"),
        ("subsets", {"train": "t", "extra": "e", "test": "unused"}, r"subset\(s\) 'test' have no files"),
        ("files.0.unpack", "unzip", r"file 'a\.bin': unpack 'unzip' is not one of gunzip, tar \(or null\)"),
        ("files.0.unpack", "gunzip", r"file 'a\.bin': unpack 'gunzip' needs a file name ending in \.gz, got 'a\.bin'"),
        ("files.0.unpack", "tar", r"unpack 'tar' needs a file name ending in \.tar or \.tar\.gz"),
        ("files.0.unpack_to", "x", r"file 'a\.bin': 'unpack_to' only applies to 'unpack: tar'"),
        ("files.0.approx_size", "3 GB", r"file 'a\.bin': give either an exact 'size' or an 'approx_size', not both"),
        ("files.1.approx_size", "about 3 gigs", r"file 'b\.bin': approx_size must be a positive number of bytes or a text like '2\.9 GB'"),
        ("files.1.approx_size", 0, r"approx_size must be a positive number"),
    ],
)
def test_validation_errors_name_the_problem(path, value, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(_with(path, value), "toy.yaml")


@pytest.mark.parametrize("target", ["../up", "/abs", "a/../b", "a b"])
def test_unpack_to_must_stay_inside_the_dataset_directory(target):
    data = _with("files.0.name", "a.tar")
    data["files"][0].update(unpack="tar", unpack_to=target)
    with pytest.raises(ManifestError, match=r"file 'a\.tar': unpack_to must be a relative directory"):
        parse_manifest(data, "toy.yaml")


def test_adler32_checksums_are_zero_padded_and_prefixes_checked():
    data = _with("files.0.algorithm", "adler32")
    data["files"][0]["checksum"] = "adler32:1a2b3c"
    assert parse_manifest(data, "toy.yaml").files[0].checksum == "001a2b3c"
    data["files"][0]["checksum"] = "md5:1a2b3c"
    with pytest.raises(ManifestError, match="checksum prefix 'md5' does not match algorithm 'adler32'"):
        parse_manifest(data, "toy.yaml")


def test_pattern_entries_expand_and_reject_single_checksums():
    data = copy.deepcopy(BASE)
    data["files"] = [{"name": "part_{index:02d}.h5", "url": "https://x.org/{name}?dl=1", "indices": [2, 5], "subset": "train"}]
    data["subsets"] = {"train": "t"}
    m = parse_manifest(data, "toy.yaml")
    assert [f.name for f in m.files] == ["part_02.h5", "part_03.h5", "part_04.h5"]
    assert m.files[1].url == "https://x.org/part_03.h5?dl=1"
    data["files"][0]["checksum"] = "0" * 64
    data["files"][0]["algorithm"] = "sha256"
    with pytest.raises(ManifestError, match="pattern entry cannot carry one size/checksum"):
        parse_manifest(data, "toy.yaml")
    data["files"][0].update(checksum=None, algorithm=None, indices=[3, 3])
    with pytest.raises(ManifestError, match=r"'indices' must be \[start, stop\)"):
        parse_manifest(data, "toy.yaml")


def test_jetlab_manifests_env_replaces_the_search_path(tmp_path, monkeypatch):
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(BASE), encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("name: broken\nfiles: [\n", encoding="utf-8")
    monkeypatch.setenv("JETLAB_MANIFESTS", str(tmp_path))
    assert list_datasets() == ["broken", "toy"]
    assert load_manifest("toy").files[0].name == "a.bin"
    with pytest.raises(ManifestError, match=r"broken\.yaml: invalid YAML"):
        load_manifest("broken")
    with pytest.raises(ManifestError, match="unknown dataset 'jetclass'; known datasets: broken, toy"):
        load_manifest("jetclass")
    renamed = tmp_path / "other.yaml"
    renamed.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    with pytest.raises(ManifestError, match=r"'name' is 'toy' but the file is named 'other\.yaml'"):
        load_manifest(renamed)


# --------------------------------------------------------------------------- CLI


def test_cli_data_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["NAME", "FILES"] and "SIZE (all files)" in out[0]
    rows = {line.split()[0]: line for line in out[1:-1]}
    assert sorted(rows) == LISTED
    # exact totals where every size is known (Aspen: the 40 Run G files; all 80 files)
    aoj = load_manifest("aspen_open_jets")
    run_g = sum(f.size for f in aoj.files_for("RunG"))
    assert "40/80" in rows["aspen_open_jets"] and f"{run_g / 1e9:.1f} GB" in rows["aspen_open_jets"]
    assert rows["aspen_open_jets"].rstrip().endswith(f"{sum(f.size for f in aoj.files) / 1e9:.1f} GB")
    # rounded sizes are marked '~'; unknown ones are counted, never hidden
    assert "12/12" in rows["jetclass"] and "~21.2 GB + size unknown for 10 files" in rows["jetclass"]
    assert "~3.0 GB" in rows["lhco_rnd"] and "size unknown for 6 files" in rows["lhco_rnd"]
    assert "size unknown for 34 files" in rows["omnifold_zjets"]
    assert "size unknown for 1033 files" in rows["atlas_toptag"]
    assert out[-1].startswith("FILES = in the default subsets")


def test_cli_data_info_prints_summary_and_citation(capsys):
    assert main(["data", "info", "jetclass"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("jetclass: JetClass")
    assert "doi:      10.5281/zenodo.6619768" in out
    assert "reader:   jetlab.data.readers.read_jetclass" in out
    assert "Particle Transformer for Jet Tagging" in out  # citation
    assert "12/12 with checksum" not in out and "10/10 with checksum (md5), unpack: tar" in out  # per subset


def test_cli_data_info_unknown_name_is_a_clean_error(capsys):
    assert main(["data", "info", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jetlab: error: unknown dataset 'nope'; known datasets: aspen_open_jets")


def test_cli_data_without_subcommand_prints_help(capsys):
    assert main(["data"]) == 1
    assert "fetch" in capsys.readouterr().out
