"""Two-process CPU (gloo) DDP run reaches the same result as one process at equal global batch, and
DDP's find_unused_parameters is set only where the loss leaves parameters unused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch


def _env():
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def test_two_process_ddp_matches_single_process(tmp_path):
    one, two, ck = tmp_path / "one.json", tmp_path / "two.json", tmp_path / "ck"
    mod = ["-m", "jetlab.train._ddp_selftest", "--epochs", "2"]
    subprocess.run([sys.executable, *mod, "--out", str(one), "--batch-size", "32"], check=True, env=_env(),
                   timeout=120)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *mod,
                    "--out", str(two), "--batch-size", "16", "--checkpoint-dir", str(ck)],
                   check=True, env=_env(), timeout=180)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["world_size"] == 1 and b["world_size"] == 2
    # same number of optimiser steps: 256 jets / (2 x 16) == 256 / 32
    assert a["steps"] == b["steps"] == 16
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
    assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
    assert b["weights"] == pytest.approx(a["weights"], rel=1e-4, abs=1e-5)
    # training really happened (loss went down) and rank 0 wrote the (only) checkpoint
    assert a["train_loss"][1] < a["train_loss"][0]
    assert sorted(p.name for p in ck.iterdir()) == ["last.pt"]
    state = torch.load(ck / "last.pt", weights_only=False)
    assert state["config"]["world_size"] == 2 and len(state["rng"]) == 2 and state["finished"]


def test_setup_without_torchrun_is_single_process(monkeypatch):
    from jetlab.train import ddp

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = ddp.setup("cpu")
    assert (ctx.rank, ctx.world_size, ctx.distributed) == (0, 1, False)
    assert ddp.all_reduce_sum([1.5, 2.0], ctx) == [1.5, 2.0]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        ddp.setup("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        ddp.setup("cpu")


DDP_WARNING = "find_unused_parameters=True was specified in DDP constructor, but did not find any unused parameters"


def test_pet_losses_under_ddp_match_one_process_and_set_find_unused_only_where_needed(tmp_path):
    """PET pretraining (every head used) and classification (generator unused) under 2-process gloo DDP:
    same losses and weights as one process, DDP's flag off resp. on, and DDP's warning only where the
    flag is forced on although nothing is unused (the control phase that shows the warning is caught)."""
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    mod = ["-m", "jetlab.train._ddp_selftest", "--phases"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, *mod, "pretrain,classify", "--out", str(one), "--batch-size", "32",
                    "--split", "2"], check=True, env=env, timeout=120)
    # each rank's stderr to its own file: on one shared pipe a rank's marker can land inside the other
    # rank's multi-write C++ warning line (CI saw one marker line where two were printed)
    logs = tmp_path / "logs"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "--log-dir", str(logs), "--redirects", "2", *mod,
                           "pretrain,classify,pretrain-flag", "--out", str(two), "--batch-size", "16"],
                          env=env, timeout=180, capture_output=True, text=True)
    rank_stderr = {int(p.parent.name): p.read_text() for p in logs.glob("*/attempt_0/*/stderr.log")}
    assert proc.returncode == 0, proc.stderr[-3000:] + "".join(rank_stderr.values())[-3000:]
    a, b = json.loads(one.read_text())["phases"], json.loads(two.read_text())
    assert b["world_size"] == 2
    b = b["phases"]
    for phase in ("pretrain", "classify"):
        # 64 jets / 32 per step (1 process) == 64 / (2 x 16): the same 4 optimiser steps over 2 epochs
        assert a[phase]["steps"] == b[phase]["steps"] == 4
        assert b[phase]["train_loss"] == pytest.approx(a[phase]["train_loss"], rel=1e-5)
        assert b[phase]["val_loss"] == pytest.approx(a[phase]["val_loss"], rel=1e-5)
        # abs 1e-4: Adam turns rounding-level gradient differences of near-zero gradients into steps
        # of up to lr = 3e-3 (seen: 2e-5 on one of 104 parameter sums); a wrong batch split moves them by far more
        assert b[phase]["weights"] == pytest.approx(a[phase]["weights"], rel=1e-4, abs=1e-4)
        assert a[phase]["train_loss"][1] < a[phase]["train_loss"][0]
    # pretraining uses every parameter: no flag; fine-tuning the classifier leaves the generator head
    # (and the jet regression output) unused: flag on, and those weights never move
    assert b["pretrain"]["ddp_find_unused_parameters"] is False and b["pretrain"]["unused_parameters"] == []
    unused = b["classify"]["unused_parameters"]
    assert b["classify"]["ddp_find_unused_parameters"] is True
    assert any(n.startswith("generator.") for n in unused) and not any(n.startswith("body.") for n in unused)
    assert b["classify"]["generator_unchanged"] and not b["pretrain"]["generator_unchanged"]
    # the control phase forces the flag on for pretraining: it trains identically ...
    assert b["pretrain-flag"]["ddp_find_unused_parameters"] is True
    assert b["pretrain-flag"]["weights"] == pytest.approx(b["pretrain"]["weights"], rel=1e-6)
    # ... and only there does DDP warn, once per rank (each rank's warning follows its control marker)
    assert sorted(rank_stderr) == [0, 1]
    for rank, text in rank_stderr.items():
        lines = text.splitlines()
        warned = [i for i, ln in enumerate(lines) if DDP_WARNING in ln]
        markers = [i for i, ln in enumerate(lines) if ln == "[selftest] phase pretrain-flag"]
        assert len(warned) == 1 and lines[warned[0]].startswith(f"[rank{rank}]"), text[-3000:]
        assert len(markers) == 1 and warned[0] > markers[0], text[-3000:]


def test_trainer_rejects_unknown_find_unused_parameters():
    from jetlab.train.trainer import Trainer

    with pytest.raises(ValueError, match="find_unused_parameters must be 'auto', True or False, got 'yes'"):
        Trainer(torch.nn.Linear(2, 2), lambda m, b: m(b["x"]).sum(), [], find_unused_parameters="yes")
