"""Every notebook in notebooks/ runs end to end with the ``ci-tiny`` profile.

(1) through :mod:`jetlab.runner` (the code path of ``jetlab run``): no error outputs, the
parameters and jetlab version are recorded in the outputs and in run_info.json, figures exist;
(2) through nbval (``--nbval-lax``): cells marked ``# NBVAL_CHECK_OUTPUT`` reproduce the
outputs stored in the committed notebook.

Notebooks are collected by glob, so new ones are tested as soon as they are added. The ``.py``
percent files beside them are the sources (jupytext pairs): (3) each pair holds the same cells,
(4) no notebook carries more than :data:`CODE_BUDGET` lines of non-plotting code nor uses a private
jetlab name, and (5) the metrics of every notebook at ci-tiny match ``tests/data/ci_tiny_metrics.json``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from ci_tiny_metrics import REFERENCE_FILE, differences, headline

import jetlab
from jetlab import runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
NOTEBOOKS = runner.find_notebooks(NOTEBOOK_DIR) if NOTEBOOK_DIR.is_dir() else []
PROFILE = "ci-tiny"
#: non-blank lines of code per notebook outside cells tagged "plot" or "exercise" (parameters included)
CODE_BUDGET = 60
#: non-blank lines of exercise code per notebook, counted apart from CODE_BUDGET (exercises only
#: reuse what the notebook computed: they run no task, see test_notebook_ends_with_exercises)
EXERCISE_BUDGET = 12

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated-data cache for all notebook runs of this module (never ~/.cache)."""
    return tmp_path_factory.mktemp("jetlab_cache")


@pytest.fixture
def notebook_env(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment inherited by the kernels: isolated cache, headless widgets, few threads."""
    monkeypatch.setenv("JETLAB_CACHE", str(cache_dir))
    monkeypatch.setenv("JETLAB_HEADLESS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    return dict(os.environ)


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def test_series_is_collected() -> None:
    """The glob finds the quickstart, and every notebook has a ci-tiny entry."""
    stems = [nb.stem for nb in NOTEBOOKS]
    assert "00_quickstart" in stems
    profile = runner.load_profile(PROFILE)
    assert [s for s in stems if s not in profile] == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_papermill_reads_every_parameter(notebook: Path, caplog: pytest.LogCaptureFixture) -> None:
    """papermill's own parser sees the same parameters as jetlab's (a comment holding '=' or a
    type annotation it cannot read makes papermill warn "Passed unknown parameter")."""
    import papermill

    with caplog.at_level("WARNING"):
        seen = papermill.inspect_notebook(str(notebook))
    assert not [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]
    assert set(seen) == set(runner.read_parameters(notebook))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_with_papermill(notebook: Path, tmp_path: Path, notebook_env) -> None:
    out = tmp_path / notebook.stem
    result = runner.run_notebook(notebook, profile=PROFILE, out=out)
    executed = nbformat.read(result.executed, as_version=4)

    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    assert sum("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells) == 1

    expected = runner.profile_parameters(PROFILE, notebook)
    text = _outputs_text(executed)
    assert f"jetlab {jetlab.__version__}" in text
    for name, value in expected.items():  # as printed by jetlab.notebook.setup
        shown = re.search(rf"\b{re.escape(name)}\s*= {re.escape(repr(value))}", text)
        assert shown, f"parameter {name} = {value!r} not shown in the outputs of {notebook.name}"

    info = json.loads((out / "run_info.json").read_text())
    assert info["versions"]["jetlab"] == jetlab.__version__ and "torch" in info["versions"]
    assert info["parameters"]["output_dir"] == str(out.resolve())
    for name, value in expected.items():
        assert info["parameters"][name] == (pytest.approx(value) if isinstance(value, float) else value), name

    pngs = [p for p in out.rglob("*.png") if p.stat().st_size > 0]
    assert pngs, f"{notebook.name} saved no figure into {out}"
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

    # results unchanged: the headline numbers at fixed seeds equal the committed reference
    # (JETLAB_CI_TINY_OUT=DIR keeps each run's outputs in DIR/<stem> for tests/ci_tiny_metrics.py DIR)
    if os.environ.get("JETLAB_CI_TINY_OUT"):
        shutil.copytree(out, Path(os.environ["JETLAB_CI_TINY_OUT"]) / notebook.stem, dirs_exist_ok=True)
    reference = json.loads((ROOT / "tests" / "data" / REFERENCE_FILE).read_text())["reference"]
    got = headline(notebook.stem, json.loads((out / "metrics.json").read_text()))
    assert differences(got, reference[notebook.stem]) == [], f"{notebook.name}: ci-tiny metrics moved"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_passes_nbval(notebook: Path, tmp_path: Path, notebook_env) -> None:
    prepared = runner.run_notebook(notebook, profile=PROFILE, out=tmp_path / "nbval", prepare_only=True).executed
    assert prepared.is_file()
    cmd = [
        sys.executable, "-m", "pytest", str(prepared),
        "--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with", str(SANITIZE),
        "--nbval-cell-timeout", "600",
        "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", str(tmp_path), "-q",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=notebook_env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"nbval failed for {notebook.name}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_omnifold_notebook_with_one_seed(tmp_path: Path, notebook_env) -> None:
    """The paper profile's ``seeds: [0]``: the step-1 figure and ratio come from the OmniFold runs alone."""
    notebook = NOTEBOOK_DIR / "03_omnifold_unfolding.ipynb"
    out = tmp_path / "03_one_seed"
    result = runner.run_notebook(notebook, {"seeds": [0]}, profile=PROFILE, out=out)
    executed = nbformat.read(result.executed, as_version=4)
    assert [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"] == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["convergence"]["n_seeds"] == 1
    assert {k: len(v) for k, v in metrics["convergence_curves"].items()} == {"pretrained": 1, "scratch": 1}
    assert (out / "val_loss_step1.png").stat().st_size > 0


# ----------------------------------------------------------------------------- notebook sources
def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_and_its_py_source_are_in_sync(notebook: Path) -> None:
    """``notebooks/NN_name.py`` (jupytext percent format) is the source; after editing it run
    ``jupytext --sync notebooks/NN_name.py`` so the ``.ipynb`` holds the same cells."""
    source = notebook.with_suffix(".py")
    assert source.is_file(), f"{notebook.name} has no jupytext source {source.name}"
    py, ipynb = jupytext.read(source), nbformat.read(notebook, as_version=4)
    assert ipynb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    cells = lambda nb: [(c.cell_type, c.source, sorted(c.metadata.get("tags", []))) for c in nb.cells]  # noqa: E731
    assert cells(py) == cells(ipynb), f"{notebook.name} and {source.name} differ: run jupytext --sync {source}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_code_is_thin(notebook: Path) -> None:
    """The logic lives in the library: few lines of code outside plotting cells; a cell tagged
    "plot" only shows or saves figures (it calls a save/display method and runs no task)."""
    nb = nbformat.read(notebook, as_version=4)
    lines = sum(_nonblank(c) for c in _code_cells(nb) if not {"plot", "exercise"} & set(c.metadata.get("tags", [])))
    assert lines < CODE_BUDGET, f"{notebook.name}: {lines} lines of non-plotting code (budget {CODE_BUDGET})"
    for c in _code_cells(nb):
        if "plot" in c.metadata.get("tags", []):
            calls = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
                     for n in ast.walk(ast.parse(c.source)) if isinstance(n, ast.Call)}
            assert calls & {"save_figure", "save", "display"}, f"plot cell shows nothing:\n{c.source}"
            assert not {f for f in calls if f.startswith("run_")}, f"plot cell runs a task:\n{c.source}"


def _nonblank(cell) -> int:
    return len([ln for ln in cell.source.splitlines() if ln.strip()])


def _numbered_titles(text: str) -> list[str]:
    """The bold titles of a numbered list: ``1. **Title.** ...`` -> ``["Title"]``."""
    return [m.rstrip(".") for m in re.findall(r"^\d+\. \*\*(.+?)\*\*", text, flags=re.M)]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_ends_with_exercises(notebook: Path) -> None:
    """2-3 numbered exercises in a "## Exercises" cell, then only their check cells (tagged
    "exercise": excluded from CODE_BUDGET but held to EXERCISE_BUDGET and running no task or
    training), then the answers, numbered alike, in a collapsed markdown cell tagged "answers";
    the README's teaching table names every exercise."""
    nb = nbformat.read(notebook, as_version=4)
    starts = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    assert len(starts) == 1, f"{notebook.name}: expected one '## Exercises' cell, found {len(starts)}"
    titles = _numbered_titles(nb.cells[starts[0]].source)
    assert 2 <= len(titles) <= 3, f"{notebook.name}: {len(titles)} exercises, expected 2-3"
    checks, answers = nb.cells[starts[0] + 1 : -1], nb.cells[-1]
    assert checks and all(c.cell_type == "code" and "exercise" in c.metadata.get("tags", []) for c in checks)
    assert sum(_nonblank(c) for c in checks) <= EXERCISE_BUDGET
    exercise_cells = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
    assert exercise_cells == checks, f"{notebook.name}: an 'exercise' cell outside the exercises at the end"
    for c in checks:
        calls = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
                 for n in ast.walk(ast.parse(c.source)) if isinstance(n, ast.Call)}
        assert not {f for f in calls if f.startswith(("run_", "pretrain", "train", "fit"))}, c.source
    assert answers.cell_type == "markdown" and "answers" in answers.metadata.get("tags", [])
    assert answers.metadata.get("jupyter", {}).get("source_hidden") is True, f"{notebook.name}: answers not collapsed"
    assert len(re.findall(r"^\d+\. ", answers.source, flags=re.M)) == len(titles)
    row = next((ln for ln in (ROOT / "README.md").read_text().splitlines()
                if ln.startswith(f"| {notebook.stem[:2]} ") and len(ln.split("|")) == 5), "")
    assert row and all(t in row.split("|")[3] for t in titles), f"README teaching table lacks {titles}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_uses_no_private_jetlab_names(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    private = []
    for c in _code_cells(nb):
        for node in ast.walk(ast.parse(c.source)):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                private.append(node.attr)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jetlab"):
                private += [a.name for a in node.names if a.name.startswith("_")]
                private += [node.module] if any(p.startswith("_") for p in node.module.split(".")) else []
    assert private == [], f"{notebook.name} uses private names {private}"


def _input_scaling_defaults() -> dict[str, object]:
    """Where a fine-tuning input scaling is chosen by default: every notebook parameter and every
    task's settings or classifier spec that takes ``input_scaling``."""
    import dataclasses

    from jetlab.notebook_params import read_parameters
    from jetlab.tasks.anomaly import AnomalySettings
    from jetlab.tasks.anomaly import training as anomaly_models
    from jetlab.tasks.omnifold import OmniFoldSettings, classifiers
    from jetlab.tasks.tagging import TaggingSettings

    found: dict[str, object] = {}
    for nb in NOTEBOOKS:
        params = read_parameters(nb)
        if "input_scaling" in params:
            found[nb.name] = params["input_scaling"].default
    for cls in (TaggingSettings, OmniFoldSettings, AnomalySettings, classifiers.PETClassifier,
                *[c for c in vars(anomaly_models).values() if dataclasses.is_dataclass(c) and isinstance(c, type)]):
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        if "input_scaling" in fields:
            found[cls.__qualname__] = fields["input_scaling"]
    return found


def test_one_input_scaling_policy_everywhere() -> None:
    # issue 15: one documented policy, the same name and default in every task and notebook
    from jetlab.model.factory import DEFAULT_INPUT_SCALING

    found = _input_scaling_defaults()
    # the three notebooks that fine-tune and the three tasks' settings, at least
    assert {"02_top_tagging.ipynb", "03_omnifold_unfolding.ipynb", "04_lhco_anomaly_detection.ipynb"} <= set(found)
    assert {"TaggingSettings", "OmniFoldSettings", "AnomalySettings", "PETClassifier"} <= set(found)
    assert {k: v for k, v in found.items() if v != DEFAULT_INPUT_SCALING} == {}, found
    assert DEFAULT_INPUT_SCALING == "task"  # benchmarks/bench_finetune_recipe.py compares the two policies


def test_input_scaling_policy_check_sees_a_notebook_that_departs(tmp_path: Path, monkeypatch) -> None:
    # the check above reads the notebooks' parameter cells: a notebook with another default is named
    src = (NOTEBOOK_DIR / "02_top_tagging.ipynb").read_text()
    assert 'input_scaling = \\"task\\"' in src
    bad = tmp_path / "02_top_tagging.ipynb"
    bad.write_text(src.replace('input_scaling = \\"task\\"', 'input_scaling = \\"pretraining\\"'))
    monkeypatch.setattr(sys.modules[__name__], "NOTEBOOKS", [bad])
    assert _input_scaling_defaults()["02_top_tagging.ipynb"] == "pretraining"
