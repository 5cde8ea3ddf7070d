"""OmniLearn-style pretraining end to end: train, generate jets, evaluate, save one checkpoint.

:func:`run_pretraining` trains PET (classifier + diffusion head) and the jet-feature generator
(:mod:`jetlab.tasks.pretraining.diffusion_generation` explains the two generation stages) and writes ONE checkpoint
directory: the PET checkpoint of :mod:`jetlab.model.checkpoint` (``model.safetensors`` +
``model_card.json``) with the jet generator (``jet_generator.safetensors`` + ``jet_generator.json``)
alongside. Notebooks 02-04 load it with :func:`jetlab.model.load` (PET) and :func:`load_pretrained`
(PET + jet generator).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from jetlab.data.preprocess import jet_inputs
from jetlab.data.schema import JetSet
from jetlab.data.sources import resolve
from jetlab.data.torchdata import split_indices
from jetlab.model import ModelCard, load, save
from jetlab.model.jet_generator import (
    JET_GENERATOR_CONFIG,
    JET_GENERATOR_WEIGHTS,
    JetFeatureGenerator,
    load_jet_generator,
    save_jet_generator,
)
from jetlab.simulator.detector import JetAcceptance
from jetlab.train.pretrain import MAX_VALIDATION_ROWS, pretrain

from .diffusion_generation import (
    check_constraints,
    evaluate_pretraining,
    train_jet_generator,
)
from .results import ACCURACY_METRICS, PretrainingResult

__all__ = ["JET_GENERATOR_SAMPLE", "load_pretrained", "run_pretraining"]


# ---------------------------------------------------------------------------- checkpoints
def load_pretrained(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """``(PET, JetFeatureGenerator or None)`` from a checkpoint written by :func:`run_pretraining`."""
    model = load(path, map_location=map_location)
    p = Path(path)
    jg = load_jet_generator(p, map_location) if (p / JET_GENERATOR_CONFIG).is_file() else None
    return model, jg


def _save_checkpoint(model, card, jet_generator: JetFeatureGenerator | None, path: Path, jg_meta: Mapping) -> Path:
    """PET checkpoint + jet generator written into a temp dir, then moved into place atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".build", dir=path.parent))
    try:
        staged = save(model, work / "ckpt", card)
        if jet_generator is not None:
            save_jet_generator(jet_generator, staged, metadata=jg_meta)
        old = None
        if path.exists():
            if not (path / "model_card.json").exists() and any(path.iterdir()):
                raise FileExistsError(f"{path} exists and is not a jetlab checkpoint; refusing to overwrite it")
            old = work / "old"
            os.replace(path, old)
        os.replace(staged, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


#: jets of a published dataset's training split (sampled across its files) that train the jet-feature
#: generator and serve as its reference: its four features need far fewer jets than PET
JET_GENERATOR_SAMPLE = 200_000


# ---------------------------------------------------------------------------- the whole run
def run_pretraining(
    data: str | os.PathLike = "jetclass-mini",
    *,
    model: str | Mapping | Any = "tiny",
    seed: int = 0,
    lr: float = 1e-3,
    epochs: int = 4,
    output_dir: str | os.PathLike = "jetlab_output/01_pretraining",
    device: str | torch.device = "auto",
    n_jets: int = 4000,
    batch_size: int = 32,
    optimizer: str = "adamw",
    ema_decay: float | None = 0.99,
    diffusion_weight: float = 3.0,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    jet_epochs: int = 100,
    gen_steps: int = 32,
    gen_constraints: Sequence[str] = (),
    n_generate: int | None = None,
    callbacks: Iterable[Any] = (),
    resume: bool = False,
    progress: bool = True,
    workers: int | None = None,
    evaluate: bool = True,
) -> PretrainingResult:
    """Pretrain PET (classifier + diffusion) and the jet-feature generator; evaluate; save one checkpoint.

    ``data`` is anything :func:`jetlab.data.sources.resolve` takes: a mini-generator name (generated
    and cached, ``n_jets`` jets), a schema file (first ``n_jets`` rows; ``n_jets <= 0`` = all), or a
    published dataset with train/val(/test) splits (JetClass: PET streams about ``n_jets`` training
    jets spread over every training file and validates on the publisher's validation split; the
    jet-feature generator and the evaluation use samples across files). Otherwise jets are split train/val/test by ``split``;
    PET validates on val, the test split is only used for the final evaluation, and val also
    serves as the independent real sample for the W1 reference floor. The checkpoint goes to
    ``<output_dir>/checkpoint`` (where ``resolve_checkpoint("auto")`` of notebooks 02-04 looks
    when ``output_dir`` is ``<root>/01_pretraining``); training state for ``resume`` to
    ``<output_dir>/train_state``. The defaults (batch 32, ``diffusion_weight`` 3, EMA 0.99) are
    :data:`jetlab.train.CPU_RECIPE`, measured best for small budgets; the published GPU recipe
    is batch 250 per GPU with ``diffusion_weight=1``. ``ema_decay`` or ``n_generate`` of 0 mean None
    (no EMA; one generated jet per test jet). ``gen_constraints`` (names in :data:`GEN_CONSTRAINTS`:
    "pt", "mass", "detector") hold the evaluation's generated particles to the generated jet pT and/or
    mass and/or to what the data's detector can record (its
    :meth:`~jetlab.data.sources.DataSource.acceptance`: jetlab's generated datasets only).
    """
    ema_decay, n_generate = ema_decay or None, n_generate or None  # notebook parameters: 0 means "none"
    gen_constraints = check_constraints(gen_constraints, "run_pretraining")
    timings: dict[str, float] = {}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    source = resolve(
        data, n_jets=n_jets if n_jets and n_jets > 0 else None, seed=seed, progress=progress, workers=workers
    )
    data_name, names = source.name, list(source.label_names)
    try:
        acceptance: JetAcceptance | None = source.acceptance()
    except ValueError as err:  # a published dataset: its detector is not jetlab's to model
        if "detector" in gen_constraints:
            raise ValueError(f"run_pretraining: gen_constraints asks for 'detector', but {err}") from None
        acceptance = None
    fr = tuple(float(f) for f in split)
    if len(fr) != 3 or min(fr) <= 0:
        raise ValueError(f"run_pretraining: split must be 3 positive fractions (train, val, test), got {tuple(split)}")
    if source.has_split("train") and source.has_split("val"):
        # a published dataset (JetClass): the publisher's splits; PET streams its training files, the
        # jet-feature generator and the evaluation use samples taken across every file (every class)
        pet_data: Any = source
        cap = int(n_jets) if n_jets and n_jets > 0 else source.n_rows("train")
        train = source.sample(min(cap, JET_GENERATOR_SAMPLE), split="train")
        val = source.sample(MAX_VALIDATION_ROWS, split="val")
        test = source.sample(
            int(n_generate) if n_generate else MAX_VALIDATION_ROWS, split="test" if source.has_split("test") else "val"
        )
    else:
        js = source.read(stop=None if source.kind == "generated" or not n_jets or n_jets <= 0 else int(n_jets))
        if len(js) < 10:
            raise ValueError(f"run_pretraining: need at least 10 jets, {data_name} gave {len(js)}")
        tr, va, test_idx = split_indices(len(js), fr, seed=seed)
        train, val, test = js.subset(tr), js.subset(va), js.subset(test_idx)
        pet_data = JetSet.concatenate([train, val])
    timings["data_s"] = time.perf_counter() - t0
    work = out / "train_state"
    if not resume and work.exists():
        shutil.rmtree(work)

    t1 = time.perf_counter()
    model, history = pretrain(
        pet_data,
        work,
        model_config=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        n_val=len(val),
        n_jets=n_jets if pet_data is source else None,
        label_names=names,
        seed=seed,
        device=device,
        resume=resume,
        callbacks=callbacks,
        ema_decay=ema_decay,
        progress=progress,
        checkpoint_every=None,
        loss_weights={"diffusion": float(diffusion_weight)},
    )
    timings["pet_train_s"] = time.perf_counter() - t1
    std = model.card.get_standardizer()
    max_particles = train.max_particles

    t2 = time.perf_counter()
    jg, jg_hist = train_jet_generator(
        jet_inputs(train),
        train.labels,
        num_classes=len(names),
        max_particles=max_particles,
        standardizer=std,
        epochs=jet_epochs,
        seed=seed,
        device="cpu",
    )
    timings["jet_generator_train_s"] = time.perf_counter() - t2

    evaluation: dict[str, Any] = {}
    metrics: dict[str, Any] = dict(model.card.metrics)
    if evaluate:
        t3 = time.perf_counter()
        test_eval = test if n_generate is None else test.subset(slice(0, min(int(n_generate), len(test))))
        evaluation = evaluate_pretraining(
            model,
            test_eval,
            jg,
            standardizer=std,
            class_names=names,
            reference_jetset=val,
            steps=gen_steps,
            seed=seed,
            device=device,
            constraints=gen_constraints,
            acceptance=acceptance,
        )
        timings["evaluate_s"] = time.perf_counter() - t3
        metrics.update({k: evaluation[k] for k in ACCURACY_METRICS if k in evaluation})
        metrics["generation"] = {"steps": gen_steps, "seed": seed, "constraints": list(gen_constraints)}
        if "unrecordable" in evaluation:
            metrics["generation"]["unrecordable"] = evaluation["unrecordable"]
        metrics["w1"] = evaluation.get("w1")
        metrics["w1_reference"] = evaluation.get("w1_reference")
        metrics["confusion_matrix"] = evaluation["confusion_matrix"]
    card = ModelCard(
        training_data=data_name,
        training_size=int(len(train)),
        standardizer=std.to_dict(),
        class_names=names,
        metrics=metrics,
        notes=(
            f"jetlab.tasks.pretraining.run_pretraining: model={model}, epochs={epochs}, batch_size={batch_size}, "
            f"lr={lr}, optimizer={optimizer}, ema_decay={ema_decay}, diffusion_weight={diffusion_weight}, seed={seed}, split={list(fr)}, max_particles={max_particles}; "
            f"jet_generator={JET_GENERATOR_WEIGHTS} (+{JET_GENERATOR_CONFIG}): JetFeatureGenerator over "
            f"(pt, eta, mass, n_particles), class-conditional, load with jetlab.tasks.pretraining.load_pretrained"
        ),
    )
    ckpt = _save_checkpoint(
        model,
        card,
        jg,
        out / "checkpoint",
        {
            "training_data": data_name,
            "training_size": int(len(train)),
            "features": list(("pt", "eta", "mass", "n_particles")),
            "class_names": names,
            "max_particles": max_particles,
            "epochs": jet_epochs,
            "final_loss": jg_hist[-1] if jg_hist else None,
        },
    )
    model.card = card
    timings["total_s"] = time.perf_counter() - t0
    return PretrainingResult(
        model=model,
        jet_generator=jg,
        history=history,
        jet_generator_history=jg_hist,
        standardizer=std,
        class_names=names,
        train=train,
        val=val,
        test=test,
        metrics=metrics,
        evaluation=evaluation,
        checkpoint=ckpt,
        timings=timings,
        acceptance=acceptance,
    )
