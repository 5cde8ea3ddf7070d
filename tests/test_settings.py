"""One frozen settings object per task (issue 31 items 2-3): types checked when made, one seed name,
``run_*(data, settings)``, profiles and notebook parameters load into them, and every notebook
writes each parameter once (its parameters cell) and never again as ``name=name``."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
from pathlib import Path

import pytest

from jetlab.notebook_params import list_profiles, load_profile, read_parameters
from jetlab.tasks.anomaly import AnomalySettings, run_anomaly
from jetlab.tasks.omnifold import OmniFoldSettings, run_omnifold
from jetlab.tasks.pretraining import PretrainingSettings, run_pretraining
from jetlab.tasks.settings import FineTuningSettings, TaskSettings
from jetlab.tasks.tagging import TaggingSettings, run_tagging

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
SETTINGS = {
    "01_pretraining": PretrainingSettings,
    "02_top_tagging": TaggingSettings,
    "03_omnifold_unfolding": OmniFoldSettings,
    "04_lhco_anomaly_detection": AnomalySettings,
}
RUNS = {TaggingSettings: run_tagging, OmniFoldSettings: run_omnifold, AnomalySettings: run_anomaly,
        PretrainingSettings: run_pretraining}


def test_values_are_checked_and_normalised_when_the_settings_are_made():
    s = TaggingSettings(fractions=[1, 0.5], seeds=[3], epochs=2, checkpoint=Path("/x/ckpt"))
    assert s.fractions == (1.0, 0.5) and all(type(f) is float for f in s.fractions)  # a list and an int accepted
    assert s.seeds == (3,) and s.checkpoint == "/x/ckpt"
    with pytest.raises(TypeError, match=r"TaggingSettings: epochs must be int, got str \('3'\)"):
        TaggingSettings(epochs="3")
    with pytest.raises(TypeError, match=r"TaggingSettings: seeds must be a list of int, got list \(\[0, 1.5\]\)"):
        TaggingSettings(seeds=[0, 1.5])
    with pytest.raises(TypeError, match="batch_size must be int, got bool"):
        TaggingSettings(batch_size=True)  # a bool is not a count
    with pytest.raises(TypeError, match=r"sr must be a list of 2 \(float, float\)"):
        AnomalySettings(sr=(3.3, 3.5, 3.7))
    with pytest.raises(ValueError, match=r"fractions must lie in \(0, 1\], got \[1.0, 2.0\]"):
        TaggingSettings(fractions=[1.0, 2.0])
    # the recipe part is checked for every task, not only where a network is finally built
    with pytest.raises(ValueError, match=r"OmniFoldSettings: optimizer must be one of \['adamw', 'lion'\], got 'sgd'"):
        OmniFoldSettings(optimizer="sgd")
    with pytest.raises(ValueError, match=r"AnomalySettings: input_scaling must be one of \['pretraining', 'task'\]"):
        AnomalySettings(input_scaling="jetclass")
    with pytest.raises(ValueError, match=r"TaggingSettings: lr_factor must be > 0, got 0"):
        TaggingSettings(lr_factor=0)
    assert OmniFoldSettings(optimizer="Lion").optimizer == "lion"
    with pytest.raises(ValueError, match="unknown classifier"):
        OmniFoldSettings(classifiers=["bdt"])
    with pytest.raises(ValueError, match="unknown constraints"):
        PretrainingSettings(gen_constraints=["mas"])
    assert PretrainingSettings(gen_constraints="mass", ema_decay=0, n_generate=0).gen_constraints == ("mass",)
    assert PretrainingSettings(ema_decay=0, n_generate=0).ema_decay is None  # a notebook's 0 means none


def test_settings_are_frozen_and_replace_checks_names_and_types():
    s = OmniFoldSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.epochs = 9  # type: ignore[misc]
    t = s.replace(epochs=9, seeds=[4, 5])
    assert (t.epochs, t.seeds, s.epochs) == (9, (4, 5), 4)
    with pytest.raises(TypeError, match=r"unknown setting 'epoch' \(did you mean 'epochs'\?\)"):
        s.replace(epoch=9)
    with pytest.raises(TypeError, match="n_iterations must be int"):
        s.replace(n_iterations=2.5)


def test_one_seed_name_and_one_fine_tuning_part():
    for cls in RUNS:
        names = cls.names()
        assert "seed" in names and not [n for n in names if n.endswith("_seed")], (cls, names)
    for cls in (TaggingSettings, OmniFoldSettings, AnomalySettings):
        assert issubclass(cls, FineTuningSettings)
        shared = {f.name for f in dataclasses.fields(FineTuningSettings)}
        assert shared <= set(cls.names())
    assert issubclass(PretrainingSettings, TaskSettings) and not issubclass(PretrainingSettings, FineTuningSettings)


def test_the_detectors_train_with_the_same_recipe_part():
    """CATHODE's per-detector TrainingSettings is the recipe the task settings carry, field for
    field: what AnomalySettings hands the detectors builds one without a rename or a loss."""
    from jetlab.tasks.anomaly.training import TrainingSettings
    from jetlab.tasks.settings import TrainingRecipe

    assert issubclass(TrainingSettings, TrainingRecipe) and issubclass(FineTuningSettings, TrainingRecipe)
    s = AnomalySettings(epochs=2, lr=3e-4, lr_factor=2.0, optimizer="lion", batch_size=16, device="cpu")
    keywords = s.training()
    min_background = keywords.pop("min_background_events")
    t = TrainingSettings.from_keywords("run_cathode", keywords)
    assert (t.epochs, t.lr, t.lr_factor, t.optimizer, t.batch_size, t.device) == (2, 3e-4, 2.0, "lion", 16, "cpu")
    assert min_background == s.min_background_events
    with pytest.raises(TypeError, match="TrainingSettings: epochs must be int, got float"):
        TrainingSettings(epochs=2.5)


@pytest.mark.parametrize("cls", list(RUNS), ids=lambda c: c.__name__)
def test_every_task_runs_as_data_then_settings(cls):
    params = list(inspect.signature(RUNS[cls]).parameters.values())
    assert [p.name for p in params[:2]] == ["data", "settings"]
    assert params[1].annotation in (f"{cls.__name__} | None", cls | None)
    # nothing of the study is a keyword of its own: only how it is shown (and the caller's changes)
    extra = {p.name for p in params[2:]} - {"progress", "changes", "callbacks"}
    assert not extra, extra


def test_changes_and_settings_are_one_path(monkeypatch):
    """``run_tagging(data, epochs=1)`` is ``run_tagging(data, TaggingSettings(epochs=1))``: an unknown
    keyword is refused before any data is read."""
    with pytest.raises(TypeError, match=r"unknown setting 'split_seed'"):
        run_tagging("toptag-mini", split_seed=1)
    with pytest.raises(TypeError, match=r"unknown setting 'data_seed' \(did you mean 'seed'\?\)"):
        run_anomaly("lhco-mini", data_seed=1)


@pytest.mark.parametrize("profile", list_profiles())
def test_every_profile_loads_into_the_settings(profile):
    """The profile values a notebook passes to its settings have the types the settings expect (the
    runner already checked them against the parameters cell)."""
    for stem, values in load_profile(profile).items():
        if stem in SETTINGS:
            s = SETTINGS[stem].from_parameters(values, strict=False)
            for k, v in values.items():
                if k in s.names() and isinstance(v, (list, tuple)) and k != "sb":
                    assert list(getattr(s, k)) == list(v), (profile, stem, k)


def _code_cells(nb_path: Path) -> list[str]:
    nb = json.loads(nb_path.read_text())
    return [
        "".join(c["source"])
        for c in nb["cells"]
        if c["cell_type"] == "code" and "parameters" not in c.get("metadata", {}).get("tags", [])
    ]


def _name_equals_name(source: str, names: set[str]) -> list[str]:
    """``f(name=name)`` and ``{"name": name}`` / ``dict(name=name)`` of a parameter in ``source``."""
    clean = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    found = []
    for node in ast.walk(ast.parse(clean)):
        if isinstance(node, ast.keyword) and node.arg in names:
            if isinstance(node.value, ast.Name) and node.value.id == node.arg:
                found.append(f"{node.arg}={node.arg}")
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value in names and isinstance(v, ast.Name) and v.id == k.value:
                    found.append(f'"{k.value}": {k.value}')
    return found


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_repeats_a_parameter_as_name_equals_name(nb):
    names = set(read_parameters(nb))
    repeated = [hit for src in _code_cells(nb) for hit in _name_equals_name(src, names)]
    assert not repeated, f"{nb.name} repeats parameters outside its parameters cell: {repeated}"


def test_the_name_equals_name_check_sees_a_repetition():
    assert _name_equals_name("run_tagging(dataset, n_jets=n_jets, seed=run.seed)", {"n_jets", "seed"}) == [
        "n_jets=n_jets"
    ]
    assert _name_equals_name('jnb.setup({"seed": seed, "x": 1})', {"seed"}) == ['"seed": seed']


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_reaches_the_run(nb):
    """Each parameter either names a field of the notebook's settings (so setup passes it on) or is
    read by the notebook's own code: none is declared and then silently dropped."""
    params = read_parameters(nb)
    code = "\n".join(_code_cells(nb))
    fields = set(SETTINGS[nb.stem].names()) if nb.stem in SETTINGS else set()
    if nb.stem in SETTINGS:
        assert f"jnb.setup(globals(), {SETTINGS[nb.stem].__name__})" in code
    dropped = [n for n in params if n not in fields and not re.search(rf"\b{n}\b", code)]
    # device, seed and output_dir are read by setup itself
    assert not [n for n in dropped if n not in ("device", "seed", "output_dir")], dropped


def test_setup_builds_the_settings_from_the_notebook_namespace(tmp_path):
    import jetlab.notebook as jnb

    namespace = {"__name__": "__main__", "In": [""], "Out": {}, "_i1": "x", "jnb": jnb, "json": json,
                 "dataset": "toptag-mini", "n_jets": 300, "fractions": [1.0, 0.5], "epochs": 2, "seed": 7,
                 "device": "cpu", "output_dir": str(tmp_path / "out"), "checkpoint": "none"}
    run, settings = jnb.setup(namespace, TaggingSettings, quiet=True)
    assert set(run.parameters) == {"dataset", "n_jets", "fractions", "epochs", "seed", "device", "output_dir",
                                   "checkpoint"}
    assert (settings.n_jets, settings.fractions, settings.epochs, settings.seed) == (300, (1.0, 0.5), 2, 7)
    assert settings.device == "cpu" and Path(settings.output_dir) == (tmp_path / "out").resolve()
    assert json.loads((tmp_path / "out" / "run_info.json").read_text())["parameters"]["n_jets"] == 300
    with pytest.raises(TypeError, match="TaggingSettings: epochs must be int, got str"):
        jnb.setup({**namespace, "epochs": "2"}, TaggingSettings, quiet=True)
    assert isinstance(jnb.setup(namespace, quiet=True), jnb.RunInfo)  # without a task: the run alone
