"""Two-process CPU (gloo) DDP run reaches the same result as one process at equal global batch."""

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
