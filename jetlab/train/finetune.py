"""Fine-tuning a (pretrained) PET classifier and predicting with it - used by jetlab.tasks.

The OmniLearn recipe: weighted (B)CE, the body at a smaller learning rate than the fresh head
(``lr_body = lr_head / lr_factor``), and the weights with the best validation loss at the end.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Mapping, Sized

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from jetlab.data.preprocess import Standardizer
from jetlab.data.schema import JetSet
from jetlab.data.torchdata import EpochBatchSampler, JetDataset, collate_batches, make_loader
from jetlab.model.factory import finetune_groups

from .callbacks import Callback, History
from .ddp import resolve_device
from .precision import tf32_inference
from .trainer import Trainer

__all__ = ["classifier_loss", "fit_classifier", "model_standardizer", "predict"]


def model_standardizer(model: nn.Module) -> Standardizer | None:
    """The standardizer stored in a loaded model's card (``model.card``), if any."""
    card = getattr(model, "card", None)
    if card is not None and getattr(card, "standardizer", None):
        return card.get_standardizer()
    return getattr(model, "standardizer", None)


def _as_dataset(data, standardizer: Standardizer | None) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (JetSet, str, os.PathLike)):
        return JetDataset(data, standardizer=standardizer)
    raise TypeError(f"expected a torch Dataset, a JetSet or a schema file path, got {type(data).__name__}")


def _logits(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    classify = getattr(model, "classify", None)  # PET-like models: logits are classify()'s first output
    if classify is not None:
        return classify(batch["x"], batch["mask"], batch["jets"])[0]
    return model(batch["x"], batch["mask"], batch["jets"])


def classifier_loss(weights: bool = True) -> Callable[[nn.Module, dict], tuple[torch.Tensor, dict]]:
    """``loss_fn(model, batch)``: per-jet (B)CE, weighted by ``batch["weight"]`` if ``weights``.

    One output logit means binary cross entropy on ``label`` in {0, 1}; more means softmax CE.
    The weighted mean is ``sum(w l) / sum(w)`` so the loss scale does not depend on the weights'.
    """

    def loss_fn(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        logits = _logits(model, batch).float()
        label = batch["label"]
        if logits.shape[-1] == 1:
            per = F.binary_cross_entropy_with_logits(logits[:, 0], label.float(), reduction="none")
            correct = ((logits[:, 0] > 0).long() == label).float()
        else:
            per = F.cross_entropy(logits, label.long(), reduction="none")
            correct = (logits.argmax(-1) == label).float()
        w = batch["weight"].float() if weights and "weight" in batch else torch.ones_like(per)
        wsum = w.sum().clamp_min(1e-12)
        loss = (per * w).sum() / wsum
        acc = (correct * w).sum() / wsum
        return loss, {"acc": float(acc)}

    return loss_fn


def fit_classifier(
    model: nn.Module,
    train: Dataset | JetSet,
    val: Dataset | JetSet | None = None,
    *,
    lr_head: float = 3e-4,
    lr_factor: float = 5.0,
    epochs: int = 10,
    batch_size: int = 128,
    weights: bool = True,
    early_stopping_patience: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    checkpoint_dir: str | os.PathLike | None = None,
    optimizer: str = "adamw",
    weight_decay: float = 0.01,
    warmup_steps: int | None = None,
    ema_decay: float | None = None,
    callbacks: Iterable[Callback] = (),
    progress: bool = True,
    resume: bool = True,
    loss_fn: Callable | None = None,
    max_steps: int | None = None,
) -> History:
    """Train ``model``'s classifier (and body at ``lr_head / lr_factor``) in place; returns History.

    ``optimizer="lion"`` is the OmniLearn recipe (:func:`jetlab.model.factory.finetune_groups`: the
    body's weight decay is also multiplied by ``lr_factor``).

    ``train``/``val`` are datasets (e.g. :class:`~jetlab.data.torchdata.JetDataset`) or JetSets,
    which are standardised with the model card's standardizer when the model has one. With ``val``
    the best-validation-loss weights are restored at the end. A model without ``param_groups``
    trains all parameters at ``lr_head``.
    """
    std = model_standardizer(model)
    train_ds = _as_dataset(train, std)
    if std is None and isinstance(train_ds, JetDataset):
        std = train_ds.standardizer
    val_ds = _as_dataset(val, std) if val is not None else None
    groups = finetune_groups(
        model, lr_head, lr_factor=lr_factor, weight_decay=weight_decay, optimizer=optimizer, pretrained=True
    )
    trainer = Trainer(
        model,
        loss_fn or classifier_loss(weights),
        train_ds,
        val_ds,
        optimizer=optimizer,
        lr=lr_head,
        param_groups=groups,
        weight_decay=weight_decay,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        warmup_steps=warmup_steps,
        ema_decay=ema_decay,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        device=device,
        seed=seed,
        callbacks=callbacks,
        early_stopping_patience=early_stopping_patience if val_ds is not None else None,
        restore_best=val_ds is not None,
        progress=progress,
    )
    history = trainer.fit()
    model.eval()
    return history


@torch.no_grad()
def predict(
    model: nn.Module,
    data: Dataset | JetSet,
    batch_size: int = 512,
    device: str | torch.device = "auto",
    *,
    logits: bool = False,
) -> np.ndarray:
    """Class probabilities, in dataset order: ``(N,)`` sigmoid scores for a one-logit model,
    ``(N, C)`` softmax probabilities otherwise (``logits=True`` returns raw logits)."""
    ds = _as_dataset(data, model_standardizer(model))
    dev = resolve_device(device)
    model.to(dev)
    was_training = model.training
    model.eval()
    if isinstance(ds, IterableDataset):
        loader = make_loader(ds, batch_size, shuffle=False, distributed=False)
    else:
        if not isinstance(ds, Sized):
            raise TypeError(f"predict: a map-style dataset needs __len__, got {type(ds).__name__}")
        sampler = EpochBatchSampler(len(ds), batch_size, shuffle=False, rank=0, world_size=1)
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_batches)
    outs = []
    try:
        with tf32_inference(dev):
            for batch in loader:
                batch = {k: v.to(dev) for k, v in batch.items() if isinstance(v, torch.Tensor)}
                z = _logits(model, batch).float()
                if not logits:
                    z = torch.sigmoid(z[:, 0]) if z.shape[-1] == 1 else torch.softmax(z, dim=-1)
                outs.append(z.cpu())
    finally:
        model.train(was_training)
    if not outs:
        return np.zeros((0,), dtype=np.float32)
    return torch.cat(outs).numpy()
