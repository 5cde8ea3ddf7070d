"""jetlab.runner / ``jetlab run``: parameter parsing and validation before execution, profiles,
and one real papermill run of a small notebook."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

import jetlab
from jetlab import runner
from jetlab.cli.main import main as cli_main
from jetlab.runner import NotebookExecutionError, ParameterError

PARAMS = '''\
n_jets = 100        # jets
learning_rate = 1e-3
use_ema = True
tags = ["a", "b"]
name: str = "demo"
dataset = "jetclass-mini"
checkpoint = "auto"
output_dir = "jetlab_output/small"
'''

BODY = '''\
import jetlab.notebook as jnb
run = jnb.setup(globals(), seed=1)
'''

FINISH = '''\
import matplotlib
matplotlib.use("Agg")
from matplotlib.figure import Figure
fig = Figure(); ax = fig.subplots(); ax.plot([0, 1], [0, n_jets])
png = jnb.save_figure(fig, "line")
jnb.save_metrics({"twice": 2 * n_jets, "lr": learning_rate}, "metrics")
print("done", n_jets, learning_rate, use_ema)
'''


def write_notebook(path: Path, params: str = PARAMS, body: str = BODY, finish: str = FINISH) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# small"), cell, nbformat.v4.new_code_cell(body)]
    if finish:
        nb.cells.append(nbformat.v4.new_code_cell(finish))
    nbformat.write(nb, path)
    return path


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write_notebook(tmp_path / "small.ipynb")


# ----------------------------------------------------------------------------- reading
def test_read_parameters_types_and_lines(small: Path) -> None:
    params = runner.read_parameters(small)
    assert list(params) == ["n_jets", "learning_rate", "use_ema", "tags", "name", "dataset", "checkpoint", "output_dir"]
    assert params["n_jets"].default == 100 and params["n_jets"].expected == "int"
    assert params["learning_rate"].expected == "float"
    assert params["use_ema"].expected == "bool"
    assert params["tags"].default == ["a", "b"]
    assert params["name"].default == "demo" and params["name"].line == 5


def test_non_literal_value_accepts_any_type(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nl.ipynb", params="import_free = 2 * 3\noutput_dir = 'x'\n")
    assert runner.read_parameters(nb)["import_free"].expected is None
    assert runner.validate_parameters(nb, {"import_free": "abc"}) == {"import_free": "abc"}


def test_parameters_cell_must_be_simple_assignments(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "bad.ipynb", params="import os\nn = 1\n")
    with pytest.raises(ParameterError, match=r"line 1: only simple assignments.*import os"):
        runner.read_parameters(nb)


def test_missing_parameters_cell(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("n = 1")]
    nbformat.write(nb, tmp_path / "untagged.ipynb")
    with pytest.raises(ParameterError, match="no cell is tagged 'parameters'"):
        runner.read_parameters(tmp_path / "untagged.ipynb")


@pytest.mark.parametrize(
    "text, value",
    [("3", 3), ("-2", -2), ("0.5", 0.5), ("1e-4", 1e-4), ("True", True), ("None", None),
     ("[1, 2]", [1, 2]), ("{'a': 1}", {"a": 1}), ("hello", "hello"), ("'7'", "7")],
)
def test_parse_cli_value(text: str, value) -> None:
    assert runner.parse_cli_value(text) == value
    assert type(runner.parse_cli_value(text)) is type(value)


# ----------------------------------------------------------------------------- validation
def test_cli_strings_are_coerced_to_declared_types(small: Path) -> None:
    got = runner.validate_parameters(
        small, {"n_jets": "250", "learning_rate": "1", "use_ema": "false", "tags": "['x']", "name": "123"}
    )
    assert got == {"n_jets": 250, "learning_rate": 1.0, "use_ema": False, "tags": ["x"], "name": "123"}
    assert type(got["learning_rate"]) is float  # int accepted for float, stored as float


def test_unknown_parameter_lists_valid_ones(small: Path) -> None:
    with pytest.raises(ParameterError) as err:
        runner.validate_parameters(small, {"n_jet": "5"})
    msg = str(err.value)
    assert "unknown parameter 'n_jet'" in msg and "small.ipynb" in msg
    assert "valid parameters: checkpoint, dataset, learning_rate, n_jets, name, output_dir, tags, use_ema" in msg


@pytest.mark.parametrize(
    "name, value, expected, got",
    [("n_jets", "1.5", "int", "float"), ("n_jets", "lots", "int", "str"), ("n_jets", True, "int", "bool"),
     ("learning_rate", "fast", "float", "str"), ("use_ema", "1", "bool", "int"), ("tags", "3", "list", "int")],
)
def test_wrong_type_names_param_expected_and_got(small: Path, name, value, expected, got) -> None:
    with pytest.raises(ParameterError, match=rf"parameter '{name}' \(-p\) expects {expected} .* got {got}"):
        runner.validate_parameters(small, {name: value})


def test_missing_checkpoint_is_an_error_but_auto_is_not(small: Path, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"checkpoint '.*nowhere' does not exist.*'auto'"):
        runner.validate_parameters(small, {"checkpoint": str(tmp_path / "nowhere")})
    assert runner.validate_parameters(small, {"checkpoint": "auto"}) == {"checkpoint": "auto"}
    assert runner.validate_parameters(small, {"checkpoint": ""}) == {"checkpoint": ""}
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    # existing paths are made absolute: the notebook runs in its own directory
    assert runner.validate_parameters(small, {"checkpoint": str(ckpt)}) == {"checkpoint": str(ckpt.resolve())}
    # a path that an earlier notebook will write (run --all) is accepted
    later = tmp_path / "later"
    assert runner.validate_parameters(small, {"checkpoint": str(later)}, pending=[later])["checkpoint"] == str(later)


def test_dataset_must_be_generator_manifest_or_file(small: Path, tmp_path: Path) -> None:
    generators, manifests = runner.known_datasets()
    assert "jetclass-mini" in generators and "jetclass" in manifests
    assert runner.validate_parameters(small, {"dataset": "toptag-mini"})["dataset"] == "toptag-mini"
    assert runner.validate_parameters(small, {"dataset": "atlas_toptag"})["dataset"] == "atlas_toptag"
    f = tmp_path / "my.h5"
    f.write_bytes(b"")
    assert runner.validate_parameters(small, {"dataset": str(f)})["dataset"] == str(f.resolve())
    with pytest.raises(ParameterError, match=r"dataset 'jetclas' is neither a generator \(.*jetclass-mini.*\), a manifest"):
        runner.validate_parameters(small, {"dataset": "jetclas"})


def test_output_dir_comes_from_out_only(small: Path) -> None:
    with pytest.raises(ParameterError, match="--out"):
        runner.plan_run(small, {"output_dir": "x"})


def test_notebook_without_output_dir_is_rejected(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "noout.ipynb", params="n = 1\n")
    with pytest.raises(ParameterError, match="must declare 'output_dir'"):
        runner.plan_run(nb)


def test_unknown_kernel(small: Path) -> None:
    with pytest.raises(ParameterError, match=r"kernel 'no-such-kernel' is not installed \(available: .*python3"):
        runner.plan_run(small, kernel="no-such-kernel")


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


# ----------------------------------------------------------------------------- profiles
def test_shipped_profiles_cover_the_series() -> None:
    assert runner.list_profiles() == ["ci-tiny", "cpu-quick", "gpu-hour", "gpu-smoke", "paper"]
    notebooks = {nb.stem: nb for nb in runner.find_notebooks(NOTEBOOKS)}
    assert set(notebooks) == {"00_quickstart", "01_pretraining", "02_top_tagging", "03_omnifold_unfolding",
                              "04_lhco_anomaly_detection"}
    for name in runner.list_profiles():
        profile = runner.load_profile(name)
        assert set(profile) == set(notebooks), name
        for stem, nb in notebooks.items():
            # every profile value is a declared parameter of the real notebook, of the right type
            plan = runner.plan_run(nb, profile=name, out=f"/tmp/plan-{name}-{stem}", check_kernel=False)
            assert plan.parameters["seed"] == profile[stem].get("seed", 0)
    full, hour = runner.load_profile("paper"), runner.load_profile("gpu-hour")
    for real in (full, hour):  # the same public datasets (and releases) in both
        assert [real[s]["dataset"] for s in sorted(set(notebooks) - {"00_quickstart"})] == [
            "jetclass", "atlas_toptag", "omnifold_zjets", "lhco_rnd"]
    assert runner.profile_fetch("paper")["atlas_toptag"] == ["legacy_train", "legacy_test"]  # record 15013
    assert runner.profile_fetch("gpu-hour") == runner.profile_fetch("paper")
    assert full["04_lhco_anomaly_detection"]["max_particles"] == hour["04_lhco_anomaly_detection"]["max_particles"] == 279
    tiny, quick = runner.load_profile("ci-tiny"), runner.load_profile("cpu-quick")
    inf = float("inf")
    for s in notebooks:  # ci-tiny <= cpu-quick <= gpu-hour <= paper, where -1 means "the whole dataset"
        size = "n_events" if "n_events" in quick[s] else "n_jets"
        mid, big = hour[s].get(size, quick[s][size]), full[s].get(size, quick[s][size])
        assert tiny[s][size] <= quick[s][size] <= (inf if mid == -1 else mid) <= (inf if big == -1 else big), s


def test_profile_values_are_validated_and_overridden_by_p(small: Path, tmp_path: Path) -> None:
    prof = tmp_path / "mine.yaml"
    prof.write_text("small:\n  n_jets: 7\n  learning_rate: 1e-4\n")  # YAML reads 1e-4 as text
    plan = runner.plan_run(small, {"use_ema": "False"}, profile=prof, out=tmp_path / "o")
    assert plan.parameters["n_jets"] == 7 and plan.parameters["learning_rate"] == pytest.approx(1e-4)
    assert plan.parameters["use_ema"] is False
    assert plan.parameters["output_dir"] == str((tmp_path / "o").resolve())
    assert runner.plan_run(small, {"n_jets": "9"}, profile=prof, out=tmp_path / "o").parameters["n_jets"] == 9
    prof.write_text("small:\n  n_jetz: 7\n")
    with pytest.raises(ParameterError, match=r"unknown parameter 'n_jetz' \(profile .*mine.yaml\)"):
        runner.plan_run(small, profile=prof)
    with pytest.raises(ParameterError, match="unknown profile 'gpu-fast'; available: ci-tiny, cpu-quick, gpu-hour, gpu-smoke, paper"):
        runner.load_profile("gpu-fast")


# ----------------------------------------------------------------------------- execution
def test_run_writes_executed_notebook_run_info_and_outputs(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.run_notebook(small, {"n_jets": "42", "learning_rate": "0.5"}, out=out)
    assert res.executed == out.resolve() / "small.ipynb" and res.executed.is_file()
    info = json.loads((out / "run_info.json").read_text())
    assert info["parameters"]["n_jets"] == 42 and info["parameters"]["learning_rate"] == 0.5
    assert info["parameters"]["output_dir"] == str(out.resolve())
    # setup(globals()) in a real kernel keeps the parameters and leaves out IPython's own names
    assert set(info["parameters"]) == {"n_jets", "learning_rate", "use_ema", "tags", "name", "dataset",
                                       "checkpoint", "output_dir"}
    assert info["seed"] == 1 and info["versions"]["jetlab"] == jetlab.__version__
    assert json.loads((out / "metrics.json").read_text()) == {"twice": 84, "lr": 0.5}
    assert (out / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    executed = nbformat.read(res.executed, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "n_jets = 42" in injected[0].source
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert f"jetlab {jetlab.__version__}" in text and "n_jets" in text
    assert "done 42 0.5 True" in text
    assert {p.name for p in res.files} >= {"run_info.json", "metrics.json", "line.png", "small.ipynb"}


def test_failing_cell_raises_with_executed_notebook(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "fails.ipynb", finish="raise ValueError('boom ' + str(n_jets))")
    with pytest.raises(NotebookExecutionError, match=r"fails.ipynb failed in cell \[\d+\]: ValueError: boom 3") as err:
        runner.run_notebook(nb, {"n_jets": "3"}, out=tmp_path / "out")
    assert err.value.executed.is_file()


# ----------------------------------------------------------------------------- CLI
def test_cli_bad_parameter_exit_code_2(small: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "never"
    code = cli_main(["run", str(small), "-p", "n_jets", "many", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "jetlab: error: small.ipynb: parameter 'n_jets' (-p) expects int (default 100), got str 'many'" in err
    assert not out.exists()  # nothing ran


def test_cli_usage_errors(small: Path, capsys) -> None:
    assert cli_main(["run"]) == 2
    assert "give either a NOTEBOOK or --all" in capsys.readouterr().err
    assert cli_main(["run", str(small), "-p", "n_jets", "1", "-p", "n_jets", "2"]) == 2
    assert "given twice" in capsys.readouterr().err
    assert cli_main(["run", "--list-profiles"]) == 0
    assert capsys.readouterr().out.split() == ["ci-tiny", "cpu-quick", "gpu-hour", "gpu-smoke", "paper"]


def test_cli_prepare_only_injects_parameters(small: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "prep"
    assert cli_main(["run", str(small), "-p", "n_jets", "5", "--out", str(out), "--prepare-only"]) == 0
    prepared = nbformat.read(out / "small.ipynb", as_version=4)
    injected = [c for c in prepared.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "n_jets = 5" in injected[0].source
    assert not (out / "run_info.json").exists()  # not executed


def test_run_all_validates_every_notebook_first(tmp_path: Path) -> None:
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    write_notebook(nbdir / "01_pretraining.ipynb")
    write_notebook(nbdir / "02_top_tagging.ipynb", params="epochs = 1\ncheckpoint = 'auto'\noutput_dir = 'x'\n")
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) 'epoch' for --all; valid: checkpoint, .*epochs"):
        runner.run_all(nbdir, {"epoch": "2"}, out=tmp_path / "o")
    with pytest.raises(ParameterError, match=r"02_top_tagging.ipynb: parameter 'epochs' \(-p\) expects int"):
        runner.run_all(nbdir, {"epochs": "two"}, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_run_all_passes_pretraining_checkpoint(tmp_path: Path) -> None:
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    write_notebook(
        nbdir / "01_pretraining.ipynb",
        params="output_dir = 'x'\n",
        body="from pathlib import Path\n(Path(output_dir) / 'checkpoint').mkdir(parents=True)",
        finish="",
    )
    write_notebook(
        nbdir / "02_top_tagging.ipynb",
        params="checkpoint = 'auto'\noutput_dir = 'x'\n",
        body="from pathlib import Path\nPath(output_dir, 'seen.txt').write_text(checkpoint)",
        finish="",
    )
    results = runner.run_all(nbdir, out=tmp_path / "o")
    assert [r.notebook.name for r in results] == ["01_pretraining.ipynb", "02_top_tagging.ipynb"]
    ckpt = (tmp_path / "o" / "01_pretraining" / "checkpoint").resolve()
    assert ckpt.is_dir()
    assert (tmp_path / "o" / "02_top_tagging" / "seen.txt").read_text() == str(ckpt)


# ----------------------------------------------------------------------------- jetlab.notebook
@pytest.fixture
def jnb(monkeypatch: pytest.MonkeyPatch):
    import jetlab.notebook as jnb

    monkeypatch.setattr(jnb, "_OUTPUT_DIR", None)
    monkeypatch.setattr(jnb, "_CURRENT", None)
    return jnb


def test_setup_seeds_records_and_prints(jnb, tmp_path: Path, capsys) -> None:
    import random

    import numpy as np
    import torch

    params = {"n_jets": 10, "lr": 0.5, "output_dir": str(tmp_path / "run"), "seed": 3}
    info = jnb.setup(params, style=False)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    jnb.setup(params, style=False, quiet=True)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    assert info.seed == 3 and str(info.device) in ("cpu", "cuda") and jnb.current() is not None
    record = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert record["parameters"] == params and record["seed"] == 3
    assert record["versions"]["jetlab"] == jetlab.__version__ and record["versions"]["torch"] == torch.__version__
    out = capsys.readouterr().out
    assert f"jetlab {jetlab.__version__} | torch {torch.__version__}" in out and "n_jets     = 10" in out
    with pytest.raises(TypeError, match="seed must be an int"):
        jnb.setup(params, seed="3", style=False)


def test_save_metrics_and_figure(jnb, tmp_path: Path) -> None:
    import numpy as np
    from matplotlib.figure import Figure

    jnb.output_dir(tmp_path / "m")
    path = jnb.save_metrics({"auc": np.float32(0.75), "n": np.int64(3), "bad": float("nan"), "arr": np.arange(2)}, "scores")
    assert path == tmp_path / "m" / "scores.json"
    assert json.loads(path.read_text()) == {"auc": 0.75, "n": 3, "bad": None, "arr": [0, 1]}
    assert [p.name for p in path.parent.iterdir()] == ["scores.json"]  # no temp files left
    with pytest.raises(TypeError, match="expected a dict"):
        jnb.save_metrics([1, 2], "x")
    fig = Figure()
    fig.subplots().plot([1, 2])
    png = jnb.save_figure(fig, "curve")
    assert png.name == "curve.png" and png.read_bytes()[:4] == b"\x89PNG"
    assert png.stat().st_mode & 0o044  # readable by others like any normal file, not mkstemp's 0600


def test_resolve_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, without_shipped_model) -> None:
    from jetlab.model import PET, PETConfig, save
    from jetlab.tasks.checkpoint_resolver import cached_checkpoint_dir, resolve_checkpoint

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JETLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("JETLAB_CHECKPOINT", raising=False)
    out = tmp_path / "res" / "02_top_tagging"
    assert resolve_checkpoint("auto", out) is None
    # the tiny fallback model in the cache (made by notebooks 02-04 or `jetlab data prepare`)
    fallback = save(PET(PETConfig.tiny(num_classes=2)), cached_checkpoint_dir())
    assert resolve_checkpoint("auto", out) == fallback
    # notebook 01's checkpoint next to this run's output comes first; an empty directory is not one
    ckpt = tmp_path / "res" / "01_pretraining" / "checkpoint"
    ckpt.mkdir(parents=True)
    assert resolve_checkpoint("auto", out) == fallback
    save(PET(PETConfig.tiny(num_classes=2)), ckpt)
    assert resolve_checkpoint("auto", out) == ckpt
    assert resolve_checkpoint("", out) == ckpt
    assert resolve_checkpoint("none", out) is None and resolve_checkpoint(None, out) is None
    assert resolve_checkpoint(str(ckpt)) == ckpt
    with pytest.raises(FileNotFoundError, match="checkpoint 'gone' does not exist"):
        resolve_checkpoint("gone")


def test_resolve_device(jnb) -> None:
    import torch

    assert jnb.resolve_device("cpu").type == "cpu"
    assert jnb.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            jnb.resolve_device("cuda")
