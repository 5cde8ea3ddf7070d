"""Binder: the environment files agree with the package, and postBuild's data step works offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

from jetlab.data.schema import inspect_file
from jetlab.runner import ParameterError, notebook_data_plan, prepare_notebook_data

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def _requirement_names(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name = re.split(r"[<>=!~\[ ]", line, 1)[0].lower()
        out[name] = line
    return out


def test_binder_environment_matches_package():
    reqs = _requirement_names((BINDER / "requirements.txt").read_text())
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in (BINDER / "requirements.txt").read_text()
    # the Python 3.11 wheel of Pythia; 8.318 would compile for half an hour
    assert reqs["pythia8mc"] == "pythia8mc==8.317.0"
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lo = re.match(r">=\s*3\.(\d+)", project["requires-python"])
    assert lo and int(lo.group(1)) <= 11
    # every runtime dependency of jetlab is in the image (so postBuild's editable install adds nothing big)
    deps = {re.split(r"[<>=!~\[ ]", d, 1)[0].lower() for d in project["dependencies"]}
    assert deps <= set(reqs), f"missing from binder/requirements.txt: {sorted(deps - set(reqs))}"
    post = BINDER / "postBuild"
    assert os.access(post, os.X_OK), "binder/postBuild must be executable"
    text = post.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert "pip install" in text and "jetlab data prepare --notebooks notebooks" in text


def test_plan_reads_each_notebooks_defaults():
    plan = {(e["dataset"], e["n"]): e for e in notebook_data_plan(ROOT / "notebooks")}
    assert set(plan) == {("jetclass-mini", 500), ("jetclass-mini", 4000), ("toptag-mini", 3000),
                         ("zjets-mini", 4000), ("lhco-mini", 6000)}
    assert plan[("jetclass-mini", 500)]["notebooks"] == ["00_quickstart.ipynb"]
    assert plan[("lhco-mini", 6000)]["options"] == {"signal_fraction": 0.15}
    # a profile overrides the defaults, and notebooks asking for the same file share one entry
    tiny = notebook_data_plan(ROOT / "notebooks", "ci-tiny")
    shared = [e for e in tiny if e["dataset"] == "jetclass-mini"]
    assert len(shared) == 1 and shared[0]["n"] == 200
    assert shared[0]["notebooks"] == ["00_quickstart.ipynb", "01_pretraining.ipynb"]


def _notebook(path: Path, source: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("pass")]
    nbformat.write(nb, path)


def test_prepare_generates_into_the_cache_once(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "10_a.ipynb", 'dataset = "zjets-mini"\nn_jets = 12\nseed = 3')
    _notebook(nbs / "11_b.ipynb", 'dataset = "omnifold_zjets"\nn_jets = 12')  # a download: never generated
    _notebook(nbs / "12_c.ipynb", 'dataset = "zjets-mini"\nn_jets = -1')  # "all": nothing to generate
    lines = []
    out = prepare_notebook_data(nbs, pretrain=False, cache_dir=tmp_path / "cache", progress=False, echo=lines.append)
    assert out["checkpoint"] is None and len(out["files"]) == 1
    path = out["files"][0]
    assert path.parent == tmp_path / "cache" and path.name == "zjets-mini-n12-s3.h5"
    info = inspect_file(path)
    assert info.n_rows == 12 and "sim_gen" in info.collections
    assert lines == ["dataset zjets-mini: 12 rows, seed 3 (for 10_a.ipynb)"]
    stamp = path.stat().st_mtime_ns
    again = prepare_notebook_data(nbs, pretrain=False, cache_dir=tmp_path / "cache", progress=False, echo=None)
    assert again["files"] == [path] and path.stat().st_mtime_ns == stamp  # reused, not regenerated


def test_prepare_cli_dry_run_and_bad_directory(tmp_path):
    run = [sys.executable, "-m", "jetlab.cli.main", "data", "prepare"]
    ok = subprocess.run(run + ["--notebooks", str(ROOT / "notebooks"), "--dry-run"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "lhco-mini n=6000 seed=0 signal_fraction=0.15  <- 04_lhco_anomaly_detection.ipynb" in ok.stdout
    bad = subprocess.run(run + ["--notebooks", str(tmp_path / "nope"), "--dry-run"], capture_output=True, text=True)
    assert bad.returncode == 2 and "nope" in bad.stderr and "does not exist" in bad.stderr
    with pytest.raises(ParameterError, match="does not exist"):
        notebook_data_plan(tmp_path / "nope")


def test_readme_binder_badge_opens_an_existing_notebook():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"\(https://mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)/HEAD\?urlpath=lab/tree/([^)\s]+)\)", readme)
    assert m, "README needs a mybinder.org badge that opens JupyterLab on a notebook"
    assert (ROOT / m.group(3)).is_file(), f"the Binder link opens {m.group(3)}, which is not in the repository"
