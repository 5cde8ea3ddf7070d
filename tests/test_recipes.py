"""The pretraining recipe (``jetlab pretrain --recipe``): deterministic given its seed, resumable after an
interruption, and the card it writes names the command, the data and the curves; the shipped-model
machinery (``checkpoint="auto"`` resolves to it, a modified file is refused)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from jetlab.train.recipes import REPRODUCIBLE_ENV, recipe

# the foundation recipe, shortened: three classes, 90 training and 30 test jets, 2 epochs
SHORT = dataclasses.replace(
    recipe("jetlab-foundation"),
    classes=("QCD", "Tbqq", "Wqq"),
    n_jets=90,
    n_test=30,
    n_val=15,
    epochs=2,
    batch_size=16,
    max_particles=24,
    checkpoint_every=3,
)


# run as the command runs: one process per run (what `jetlab pretrain --recipe ... --fraction` does)
_RUN = """
import dataclasses, sys
sys.path.insert(0, {tests!r})
from test_recipes import SHORT
from jetlab.train.recipes import RECIPES, run_recipe
RECIPES["test-short"] = dataclasses.replace(SHORT, name="test-short")
run_recipe("test-short", sys.argv[1], workers=1, device="cpu", progress=False)
"""


def _start(out, cache) -> subprocess.Popen:
    # as `jetlab pretrain --recipe` starts its process: with MKL's reproducibility mode
    env = {**os.environ, **REPRODUCIBLE_ENV, "JETLAB_CACHE": str(cache)}
    code = _RUN.format(tests=str(Path(__file__).parent))
    return subprocess.Popen([sys.executable, "-c", code, str(out)], env=env, stderr=subprocess.PIPE, text=True)


def _run(out, cache) -> Path:
    proc = _start(out, cache)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return Path(out) / "model"


def _weights(model_dir) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors that differ (in any bit)."""
    assert list(a) == list(b)
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_recipe_is_deterministic_and_its_card_says_how_it_was_made(tmp_path):
    # two runs, each generating its own data (separate caches)
    runs = [_run(tmp_path / f"run{k}", tmp_path / f"cache{k}") for k in range(2)]
    assert _same(_weights(runs[0]), _weights(runs[1])) == []
    card = json.loads((runs[0] / "model_card.json").read_text())
    r = card["recipe"]
    assert r["command"] == f"jetlab pretrain --recipe test-short --out {tmp_path / 'run0'}"
    assert (r["name"], r["n_jets"], r["classes"], r["seed"], r["epochs"]) == (
        "test-short",
        90,
        ["QCD", "Tbqq", "Wqq"],
        0,
        2,
    )
    assert set(r["generator"]) == {"pythia8mc", "fastjet", "jetlab"} and r["generator"]["pythia8mc"] == "8.317.0"
    # a file of some classes keeps the default five labels (QCD, Tbqq, Wqq are 0-2 as in every jetclass-mini file)
    assert card["class_names"] == ["QCD", "Tbqq", "Wqq", "Zqq", "Hbb"] and card["training_size"] == 90 - 15
    assert len(card["metrics"]["val_loss_curve"]) == 2 and card["metrics"]["test_jets"] == 30
    # the test accuracy is the classifier's on the independent test jets (seed + 1), recomputed here
    from jetlab.data.sources import resolve
    from jetlab.data.torchdata import JetDataset
    from jetlab.model import load, read_card
    from jetlab.train.finetune import predict

    test = resolve(
        "jetclass-mini",
        n_jets=30,
        seed=1,
        classes=("QCD", "Tbqq", "Wqq"),
        cache_dir=tmp_path / "cache0",
        progress=False,
    ).read()
    probs = predict(
        load(runs[0]), JetDataset(test, standardizer=read_card(runs[0]).get_standardizer(), max_particles=24)
    )
    assert card["metrics"]["test_accuracy"] == pytest.approx(float((probs.argmax(-1) == test.labels).mean()))
    assert card["weights_sha256"] == hashlib.sha256((runs[0] / "model.safetensors").read_bytes()).hexdigest()


def test_recipe_resumes_after_a_kill_to_the_same_weights(tmp_path):
    ref = _run(tmp_path / "ref", tmp_path / "cache")
    proc = _start(tmp_path / "cut", tmp_path / "cache")
    last = tmp_path / "cut" / "trainer" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # killed at its first checkpoint (step 3 of 10), mid epoch 1
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and last.is_file() and not (tmp_path / "cut" / "model").exists()
    resumed = _run(tmp_path / "cut", tmp_path / "cache")
    assert _same(_weights(ref), _weights(resumed)) == []


def test_recipe_fraction_and_unknown_names():
    full = recipe("jetlab-foundation")
    assert full.n_jets >= 100_000 and full.classes == "all"  # the scale: >= 100k jets, ten classes
    short = full.scaled(0.05)
    assert (short.n_jets, short.n_test) == (round(full.n_jets * 0.05), round(full.n_test * 0.05))
    assert dataclasses.replace(short, n_jets=full.n_jets, n_test=full.n_test, n_val=full.n_val) == full
    assert full.command("out", 0.05) == "jetlab pretrain --recipe jetlab-foundation --out out --fraction 0.05"
    with pytest.raises(ValueError, match="fraction"):
        full.scaled(0)
    with pytest.raises(ValueError, match="known recipes.*jetlab-foundation"):
        recipe("jetlab-foundaton")


def test_auto_resolves_to_the_shipped_model_and_a_modified_file_is_refused(tmp_path, monkeypatch):
    import jetlab.model.checkpoint as ck
    from jetlab.model import PET, PETConfig, load, save
    from jetlab.model.checkpoint import CheckpointError
    from jetlab.tasks.checkpoint_resolver import resolve_checkpoint

    shipped_root = tmp_path / "weights"
    torch.manual_seed(0)
    save(PET(PETConfig.tiny(num_classes=3)), shipped_root / "jetlab-foundation", {"training_data": "test"})
    monkeypatch.setattr(ck, "SHIPPED_DIR", shipped_root)
    monkeypatch.delenv("JETLAB_CHECKPOINT", raising=False)
    monkeypatch.setenv("JETLAB_CACHE", str(tmp_path / "cache"))
    # notebook 01's output next to the run exists too: the shipped model still wins
    save(PET(PETConfig.tiny(num_classes=2)), tmp_path / "out" / "01_pretraining" / "checkpoint", None)
    assert resolve_checkpoint("auto", tmp_path / "out" / "02_top_tagging") == shipped_root / "jetlab-foundation"
    assert load("jetlab-foundation").config.num_classes == 3  # by name too
    other = tmp_path / "env"
    shutil.copytree(shipped_root / "jetlab-foundation", other)
    monkeypatch.setenv("JETLAB_CHECKPOINT", str(other))
    assert resolve_checkpoint("auto") == other  # $JETLAB_CHECKPOINT still wins
    # one flipped byte in the weights: a clear error naming the file and the card's checksum
    w = shipped_root / "jetlab-foundation" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: SHA-256 .* differs .* model_card\.json"):
        load("jetlab-foundation")
    # the flipped byte is inside a tensor: without the checksum the same file loads silently
    blind = tmp_path / "blind"
    shutil.copytree(shipped_root / "jetlab-foundation", blind)
    card = json.loads((blind / "model_card.json").read_text())
    card["weights_sha256"] = None
    (blind / "model_card.json").write_text(json.dumps(card))
    assert isinstance(load(blind), PET)


def test_auto_gives_the_shipped_foundation_model_with_nothing_trained_and_it_knows_ten_classes(tmp_path, monkeypatch):
    """What a fresh install gets: checkpoint="auto" is the shipped model (no pretraining, nothing cached),
    its card names the recipe command that made it, and it recognises jets it never saw."""
    import numpy as np

    from jetlab.data.sources import resolve
    from jetlab.data.torchdata import JetDataset
    from jetlab.model import load
    from jetlab.model.checkpoint import FOUNDATION_MODEL, SHIPPED_DIR
    from jetlab.tasks.checkpoint_resolver import resolve_checkpoint
    from jetlab.train.finetune import predict

    monkeypatch.delenv("JETLAB_CHECKPOINT", raising=False)
    cache = tmp_path / "cache"
    found = resolve_checkpoint("auto", tmp_path / "out" / "02_top_tagging", train_if_missing=True, cache_dir=cache)
    assert found == SHIPPED_DIR / FOUNDATION_MODEL and not cache.exists()  # nothing pretrained, nothing cached
    weights = (found / "model.safetensors").read_bytes()
    assert len(weights) + (found / "model_card.json").stat().st_size <= 10_000_000
    card = json.loads((found / "model_card.json").read_text())
    assert card["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert card["recipe"]["command"].startswith("jetlab pretrain --recipe jetlab-foundation --out ")
    shipped_recipe = recipe(FOUNDATION_MODEL)
    for field in ("n_jets", "n_test", "epochs", "model", "max_particles", "seed", "classes", "lr", "batch_size"):
        assert card["recipe"][field] == getattr(shipped_recipe, field), field  # the command re-makes this model
    assert len(card["class_names"]) == 10

    # jets of all ten classes from a seed the recipe never used (it trains on seed 0 and tests on seed 1)
    jets = resolve("jetclass-mini", n_jets=200, seed=12345, classes="all", cache_dir=cache, workers=2, progress=False).read()
    assert np.bincount(jets.labels, minlength=10).min() >= 15
    model = load(found)
    ds = JetDataset(jets, standardizer=model.card.get_standardizer(), max_particles=shipped_recipe.max_particles)
    accuracy = float((predict(model, ds, device="cpu").argmax(-1) == jets.labels).mean())
    # 0.725 here; an untrained model gets 0.10 (chance) and the same recipe on 4,000 jets (--fraction 0.04)
    # 0.565: 0.65 leaves 15 jets of margin for CPU rounding and fails a model pretrained on too few jets
    assert accuracy > 0.65, accuracy
