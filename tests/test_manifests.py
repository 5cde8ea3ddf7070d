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
    list_datasets,
    load_manifest,
    manifest_dirs,
    parse_manifest,
)

SHIPPED = ["aspen_open_jets", "atlas_toptag", "jetclass", "lhco_rnd", "omnifold_zjets"]
REPO_MANIFESTS = Path(__file__).resolve().parent.parent / "data_manifests"


@pytest.fixture(autouse=True)
def _default_lookup(monkeypatch):
    monkeypatch.delenv("JETLAB_MANIFESTS", raising=False)


def test_shipped_datasets_are_listed():
    assert list_datasets() == SHIPPED
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
    # every null size/checksum is explained in the notes or the file's own note
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
    ],
)
def test_validation_errors_name_the_problem(path, value, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(_with(path, value), "toy.yaml")


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
    assert out[0].split()[:3] == ["NAME", "TITLE", "FILES"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert sorted(rows) == SHIPPED
    assert "12/12" in rows["jetclass"] and "unknown" in rows["jetclass"]
    assert "40/80" in rows["aspen_open_jets"] and "101.3 GB" in rows["aspen_open_jets"]


def test_cli_data_info_prints_summary_and_citation(capsys):
    assert main(["data", "info", "jetclass"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("jetclass: JetClass")
    assert "doi:      10.5281/zenodo.6619768" in out
    assert "reader:   jetlab.data.readers.read_jetclass" in out
    assert "Particle Transformer for Jet Tagging" in out  # citation
    assert "12/12 with checksum" not in out and "10/10 with checksum" in out  # per subset


def test_cli_data_info_unknown_name_is_a_clean_error(capsys):
    assert main(["data", "info", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jetlab: error: unknown dataset 'nope'; known datasets: aspen_open_jets")


def test_cli_data_without_subcommand_prints_help(capsys):
    assert main(["data"]) == 1
    assert "fetch" in capsys.readouterr().out
