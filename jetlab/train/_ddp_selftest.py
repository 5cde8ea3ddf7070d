"""Tiny deterministic training runs used by tests/test_ddp.py (single process or under torchrun).

``python -m jetlab.train._ddp_selftest --out result.json --batch-size B`` trains a small MLP on
synthetic jets and writes the final losses and a weight checksum (rank 0) so the 1- and 2-process
runs can be compared at equal global batch size.

``--phases pretrain,classify`` trains a tiny PET instead, once per phase in the same process
group: ``pretrain`` with the OmniLearn loss (every head used), ``classify`` with the fine-tuning
loss (the generator head unused), each with ``find_unused_parameters="auto"``; ``pretrain-flag``
repeats ``pretrain`` with the flag forced on (DDP's "no unused parameters" warning must appear
there and only there). A line ``[selftest] phase NAME`` on stderr marks where each phase starts.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from jetlab.model import PET

log = logging.getLogger(__name__)


def synthetic_jetset(n: int = 256, p: int = 16, seed: int = 0):
    """Two classes of jets that differ in their particle spread (learnable in a few steps)."""
    from jetlab.data.schema import JetSet, jet_features_from_particles

    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    k = rng.integers(3, p, n)
    mask = np.arange(p)[None] < k[:, None]
    pt = np.sort(rng.exponential(20.0, (n, p)) + 1.0, axis=1)[:, ::-1]
    width = np.where(label == 1, 0.4, 0.1)[:, None]
    eta = rng.normal(0, 1, (n, p)) * width
    phi = rng.normal(0, 1, (n, p)) * width
    parts = np.stack([pt, eta, phi, pt * np.cosh(eta)], -1) * mask[..., None]
    return JetSet(
        parts,
        mask,
        jet_features_from_particles(parts, mask),
        label,
        extra={"jet_id": np.arange(n, dtype=np.float32) + 100_000 * seed},
    )


class TinyNet(nn.Module):
    def __init__(self, n_in: int = 13, n_jet: int = 4, width: int = 16, n_out: int = 2) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(n_in, width), nn.GELU(), nn.Linear(width, width))
        self.rho = nn.Sequential(nn.Linear(width + n_jet, width), nn.GELU(), nn.Linear(width, n_out))

    def forward(self, x, mask, jets):
        h = (self.phi(x) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return self.rho(torch.cat([h, jets], -1))


def ce_loss(model: nn.Module, batch: dict):
    loss = nn.functional.cross_entropy(model(batch["x"], batch["mask"], batch["jets"]), batch["label"])
    return loss, {"ce": float(loss.detach())}


def pet_pretraining_loss(model: PET, batch: dict, split: int = 1):
    """OmniLearn pretraining loss whose diffusion noise does not depend on the number of processes.

    The batch is cut into ``split`` interleaved parts ``[r::split]``, each drawing its noise from a
    generator seeded by its smallest ``jet_id``; the loss is their mean. One process with batch
    ``2B`` and ``split=2`` then computes exactly what two processes with batch ``B`` and ``split=1``
    compute and average (rank r's batch is part r of the single-process batch, see
    :class:`jetlab.data.torchdata.EpochBatchSampler`), so the two runs must reach the same weights.
    """
    from jetlab.model import pretraining_loss

    losses = []
    for r in range(split):
        part = {k: v[r::split] for k, v in batch.items()}
        g = torch.Generator().manual_seed(int(part["jet_id"].min()))
        losses.append(pretraining_loss(model, part, generator=g)[0])
    loss = torch.stack(losses).mean()
    return loss, {"pretrain": float(loss.detach())}


def pet_classification_loss(model: PET, batch: dict):
    from jetlab.model import classification_loss

    loss = classification_loss(model, batch)
    return loss, {"ce": float(loss.detach())}


#: phase -> (loss, Trainer find_unused_parameters)
PHASES: dict[str, tuple[Callable[..., Any], bool | str]] = {
    "pretrain": (pet_pretraining_loss, "auto"),
    "classify": (pet_classification_loss, "auto"),
    "pretrain-flag": (pet_pretraining_loss, True),
}


def run_pet_phase(name: str, train, val, batch_size: int, epochs: int, split: int = 1) -> dict:
    """Train a tiny, dropout-free PET with phase ``name``'s loss; losses, weights and DDP's flag."""
    from jetlab.model import PET, PETConfig
    from jetlab.train.trainer import Trainer

    loss_fn, find_unused = PHASES[name]
    if loss_fn is pet_pretraining_loss:
        loss_fn = functools.partial(pet_pretraining_loss, split=split)
    log.info("[selftest] phase %s", name)
    torch.manual_seed(0)
    model = PET(PETConfig.tiny(num_classes=2, feature_drop=0.0, label_drop=0.0, drop_path=0.0, dropout=0.0))
    generator0 = [float(p.detach().double().sum()) for p in model.generator.parameters()]
    trainer = Trainer(
        model,
        loss_fn,
        train,
        val,
        lr=3e-3,
        epochs=epochs,
        batch_size=batch_size,
        warmup_steps=1,
        device="cpu",
        seed=0,
        progress=False,
        checkpoint_every=None,
        find_unused_parameters=find_unused,
    )
    hist = trainer.fit()
    wrapped = trainer._wrapped
    return {
        "steps": len(hist.steps),
        "train_loss": hist.train_loss,
        "val_loss": hist.val_loss,
        "weights": [float(p.detach().double().sum()) for p in model.parameters()],
        "generator_unchanged": generator0 == [float(p.detach().double().sum()) for p in model.generator.parameters()],
        "ddp_find_unused_parameters": getattr(wrapped, "find_unused_parameters", None),
        "unused_parameters": trainer.unused_parameters,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--checkpoint-dir", default=None)
    ap.add_argument("--phases", default=None, help=f"comma-separated PET phases from {sorted(PHASES)}")
    ap.add_argument(
        "--split", type=int, default=1, help="interleaved noise groups per batch (see pet_pretraining_loss)"
    )
    args = ap.parse_args(argv)
    from jetlab._io import atomic_write_text
    from jetlab.data.torchdata import JetDataset
    from jetlab.train import ddp
    from jetlab.train.trainer import Trainer

    if args.phases:
        phases = args.phases.split(",")
        bad = [p for p in phases if p not in PHASES]
        if bad:
            raise SystemExit(f"--phases: unknown phase(s) {bad}; choose from {sorted(PHASES)}")
        train = JetDataset(synthetic_jetset(64, seed=0))
        val = JetDataset(synthetic_jetset(32, seed=1), standardizer=train.standardizer)
        result: dict[str, Any] = {
            "phases": {p: run_pet_phase(p, train, val, args.batch_size, args.epochs, args.split) for p in phases}
        }
        ctx = ddp.setup("cpu")
        result.update(rank=ctx.rank, world_size=ctx.world_size)
        if ctx.is_main:
            atomic_write_text(args.out, json.dumps(result))
        ddp.barrier(ctx)
        ctx.owns_group = True  # the first Trainer created the group; this is the last user
        ddp.cleanup(ctx)
        return 0

    train = JetDataset(synthetic_jetset(256, seed=0))
    val = JetDataset(synthetic_jetset(64, seed=1), standardizer=train.standardizer)
    torch.manual_seed(0)
    model = TinyNet()
    trainer = Trainer(
        model,
        ce_loss,
        train,
        val,
        lr=3e-3,
        epochs=args.epochs,
        batch_size=args.batch_size,
        warmup_steps=2,
        device="cpu",
        seed=0,
        progress=False,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=4,
    )
    hist = trainer.fit()
    assert trainer.ctx is not None, "Trainer.fit sets up the process context"
    result = {
        "rank": trainer.ctx.rank,
        "world_size": trainer.ctx.world_size,
        "steps": len(hist.steps),
        "train_loss": hist.train_loss,
        "val_loss": hist.val_loss,
        "weights": [float(p.detach().double().sum()) for p in model.parameters()],
    }
    if trainer.is_main:
        atomic_write_text(args.out, json.dumps(result))
    ddp.barrier(trainer.ctx)
    ddp.cleanup(trainer.ctx)
    return 0


if __name__ == "__main__":
    log.addHandler(logging.StreamHandler(sys.stderr))  # the phase markers only, as plain lines
    log.setLevel(logging.INFO)
    raise SystemExit(main())
