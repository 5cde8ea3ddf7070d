"""Committed benchmark results (benchmarks/results/) name no machine's temporary paths, and the scripts'
path recorder (benchmarks/result_paths.py) writes the forms those files hold."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
from result_paths import portable_args, portable_path  # noqa: E402

#: where temporary files live on Linux, macOS and under pytest
TEMP_MARKERS = ("/tmp/", "/var/folders/", "pytest-of-")


def _strings(doc):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _strings(v)
    elif isinstance(doc, str):
        yield doc


RESULT_FILES = sorted(RESULTS.rglob("*.json"))


def test_there_are_results_to_check():
    assert len(RESULT_FILES) >= 20 and RESULTS / "cathode_scan.json" in RESULT_FILES


@pytest.mark.parametrize("path", RESULT_FILES, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_result_names_no_temporary_path(path):
    text = path.read_text()
    json.loads(text)  # a result file is JSON
    found = sorted({s for s in _strings(json.loads(text)) if any(m in s for m in TEMP_MARKERS)})
    assert not found, f"{path.relative_to(ROOT)} holds temporary paths: {found[:5]}"


def test_portable_path_forms(tmp_path, monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    # inside the repository: repo-relative
    assert portable_path(str(RESULTS / "cathode_scan.json")) == "benchmarks/results/cathode_scan.json"
    assert portable_path(RESULTS / "x.json") == "benchmarks/results/x.json"
    # in a temporary directory: what lies below it, marked as outside the repository
    assert (
        portable_path("/tmp/cpuquick/01_pretraining/checkpoint") == "<outside repo>/cpuquick/01_pretraining/checkpoint"
    )
    assert portable_path(tmp_path / "a" / "b.json").startswith("<outside repo>/")
    # below a named folder (gpu_check's output): relative to it
    out = tmp_path / "out"
    assert portable_path(str(out / "work" / "pretraining" / "checkpoint"), {"<out>": out}) == (
        "<out>/work/pretraining/checkpoint"
    )
    assert portable_path(out, {"<out>": out}) == "<out>"
    # not paths, or already relative: kept
    assert portable_path("auto") == "auto" and portable_path("jetlab_output/x") == "jetlab_output/x"
    assert portable_path(None) is None and portable_path(3) == 3
    args = {"checkpoint": "/tmp/ckpt01", "out": Path("benchmarks/results/x.json"), "seeds": [0, 1], "n": 5}
    assert portable_args(args) == {
        "checkpoint": "<outside repo>/ckpt01",
        "out": "benchmarks/results/x.json",
        "seeds": [0, 1],
        "n": 5,
    }
