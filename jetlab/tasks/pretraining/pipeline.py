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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

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

from ..settings import TaskSettings
from .diffusion_generation import evaluate_pretraining
from .generation_constraints import check_constraints
from .jet_feature_generation import build_and_fit_jet_generator
from .results import ACCURACY_METRICS, PretrainingResult

__all__ = ["JET_GENERATOR_SAMPLE", "PretrainingSettings", "load_pretrained", "run_pretraining"]


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
@dataclass(frozen=True, kw_only=True)
class PretrainingSettings(TaskSettings):
    """Notebook 01's pretraining: the jets, PET's training (classifier + diffusion head), the
    jet-feature generator and the generation check. The defaults (batch 32, ``diffusion_weight`` 3,
    EMA 0.99) are :data:`jetlab.train.CPU_RECIPE`, measured best for small budgets; the published
    GPU recipe is batch 250 per GPU with ``diffusion_weight=1``."""

    output_dir: str = "jetlab_output/01_pretraining"
    #: jets generated / read (a schema file's first rows; <= 0: all)
    n_jets: int = 4000
    #: PET size: a preset name (tiny, small, paper), a config dict or a PETConfig
    model: Any = "tiny"
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adamw"
    #: EMA decay of the weights (0 or None: no EMA)
    ema_decay: float | None = 0.99
    #: weight of the diffusion loss next to the classifier's
    diffusion_weight: float = 3.0
    #: (train, val, test) fractions when the data has no published splits
    split: tuple[float, ...] = (0.8, 0.1, 0.1)
    #: epochs of the jet-feature generator (a small MLP)
    jet_epochs: int = 100
    #: DDIM steps when generating particles
    gen_steps: int = 32
    #: classifier-free guidance w of the particle sampler, ``(1 + w) v(class) - w v(null)``: 0 samples the
    #: class-conditional head as trained; w > 0 makes jets more typical of their class, at twice the sampling cost
    gen_guidance: float = 0.0
    #: what generated particles are held to: "pt", "mass", "detector" (empty: the diffusion head alone)
    gen_constraints: tuple[str, ...] = ()
    #: generated jets to compare (0 or None: one per test jet)
    n_generate: int | None = None
    #: continue from ``<output_dir>/train_state``
    resume: bool = False
    #: processes generating a mini dataset (None: every core)
    workers: int | None = None
    #: generate jets and compare them with real ones after training
    evaluate: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.gen_constraints, str):  # one constraint named alone
            object.__setattr__(self, "gen_constraints", (self.gen_constraints,))
        super().__post_init__()
        if len(self.split) != 3 or min(self.split) <= 0:
            raise ValueError(
                f"run_pretraining: split must be 3 positive fractions (train, val, test), got {self.split}"
            )
        object.__setattr__(self, "gen_constraints", tuple(check_constraints(self.gen_constraints, "run_pretraining")))
        object.__setattr__(self, "ema_decay", self.ema_decay or None)  # notebook parameters: 0 means "none"
        object.__setattr__(self, "n_generate", self.n_generate or None)


@dataclass
class _Samples:
    """What PET trains on (a DataSource to stream, or jets) and the train / val / test jets."""

    pet_data: Any
    train: JetSet
    val: JetSet
    test: JetSet


def _samples(source, s: PretrainingSettings) -> _Samples:
    n_jets = s.n_jets
    if source.has_split("train") and source.has_split("val"):
        # a published dataset (JetClass): the publisher's splits; PET streams its training files, the
        # jet-feature generator and the evaluation use samples taken across every file (every class)
        cap = int(n_jets) if n_jets and n_jets > 0 else source.n_rows("train")
        train = source.sample(min(cap, JET_GENERATOR_SAMPLE), split="train")
        val = source.sample(MAX_VALIDATION_ROWS, split="val")
        test = source.sample(
            int(s.n_generate) if s.n_generate else MAX_VALIDATION_ROWS,
            split="test" if source.has_split("test") else "val",
        )
        return _Samples(source, train, val, test)
    js = source.read(stop=None if source.kind == "generated" or not n_jets or n_jets <= 0 else int(n_jets))
    if len(js) < 10:
        raise ValueError(f"run_pretraining: need at least 10 jets, {source.name} gave {len(js)}")
    tr, va, test_idx = split_indices(len(js), s.split, seed=s.seed)
    train, val, test = js.subset(tr), js.subset(va), js.subset(test_idx)
    return _Samples(JetSet.concatenate([train, val]), train, val, test)


def _acceptance(source, s: PretrainingSettings) -> JetAcceptance | None:
    try:
        return source.acceptance()
    except ValueError as err:  # a published dataset: its detector is not jetlab's to model
        if "detector" in s.gen_constraints:
            raise ValueError(f"run_pretraining: gen_constraints asks for 'detector', but {err}") from None
        return None


def _evaluate(model, data: _Samples, jg, std, names, acceptance, s: PretrainingSettings, metrics: dict) -> dict:
    """Generate jets for the test jets and compare (:func:`evaluate_pretraining`); ``metrics`` gains
    the card's share of it."""
    test_eval = (
        data.test if s.n_generate is None else data.test.subset(slice(0, min(int(s.n_generate), len(data.test))))
    )
    evaluation = evaluate_pretraining(
        model,
        test_eval,
        jg,
        standardizer=std,
        class_names=names,
        reference_jetset=data.val,
        steps=s.gen_steps,
        seed=s.seed,
        device=s.device,
        constraints=s.gen_constraints,
        acceptance=acceptance,
        guidance=s.gen_guidance,
    )
    metrics.update({k: evaluation[k] for k in ACCURACY_METRICS if k in evaluation})
    metrics["generation"] = {
        "steps": s.gen_steps,
        "seed": s.seed,
        "constraints": list(s.gen_constraints),
        "guidance": s.gen_guidance,
    }
    if "unrecordable" in evaluation:
        metrics["generation"]["unrecordable"] = evaluation["unrecordable"]
    metrics["w1"] = evaluation.get("w1")
    metrics["w1_reference"] = evaluation.get("w1_reference")
    metrics["confusion_matrix"] = evaluation["confusion_matrix"]
    return evaluation


def _card(data_name: str, data: _Samples, std, names, metrics, s: PretrainingSettings) -> ModelCard:
    return ModelCard(
        training_data=data_name,
        training_size=int(len(data.train)),
        standardizer=std.to_dict(),
        class_names=names,
        metrics=metrics,
        notes=(
            f"jetlab.tasks.pretraining.run_pretraining: model={s.model}, epochs={s.epochs}, batch_size={s.batch_size}, "
            f"lr={s.lr}, optimizer={s.optimizer}, ema_decay={s.ema_decay}, diffusion_weight={s.diffusion_weight}, "
            f"seed={s.seed}, split={list(s.split)}, max_particles={data.train.max_particles}; "
            f"jet_generator={JET_GENERATOR_WEIGHTS} (+{JET_GENERATOR_CONFIG}): JetFeatureGenerator over "
            f"(pt, eta, mass, n_particles), class-conditional, load with jetlab.tasks.pretraining.load_pretrained"
        ),
    )


def _train_pet(sets: _Samples, source, names, s: PretrainingSettings, work: Path, callbacks, progress: bool):
    """PET's classifier and diffusion head, trained together (:func:`jetlab.train.pretrain`)."""
    return pretrain(
        sets.pet_data,
        work,
        model_config=s.model,
        epochs=s.epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        optimizer=s.optimizer,
        n_val=len(sets.val),
        n_jets=s.n_jets if sets.pet_data is source else None,
        label_names=names,
        seed=s.seed,
        device=s.device,
        resume=s.resume,
        callbacks=callbacks,
        ema_decay=s.ema_decay,
        progress=progress,
        checkpoint_every=None,
        loss_weights={"diffusion": s.diffusion_weight},
    )


def _jet_generator_meta(data_name: str, sets: _Samples, names, s: PretrainingSettings, history) -> dict[str, Any]:
    return {
        "training_data": data_name,
        "training_size": int(len(sets.train)),
        "features": list(("pt", "eta", "mass", "n_particles")),
        "class_names": names,
        "max_particles": sets.train.max_particles,
        "epochs": s.jet_epochs,
        "final_loss": history[-1] if history else None,
    }


def run_pretraining(
    data: str | os.PathLike = "jetclass-mini",
    settings: PretrainingSettings | None = None,
    *,
    callbacks: Iterable[Any] = (),
    progress: bool = True,
    **changes: Any,
) -> PretrainingResult:
    """Pretrain PET (classifier + diffusion) and the jet-feature generator; evaluate; save one checkpoint.

    ``settings`` (default :class:`PretrainingSettings`), with ``changes`` applied
    (:meth:`PretrainingSettings.replace`). ``data`` is anything :func:`jetlab.data.sources.resolve`
    takes: a mini-generator name (generated and cached, ``n_jets`` jets), a schema file (first
    ``n_jets`` rows; ``n_jets <= 0`` = all), or a published dataset with train/val(/test) splits
    (JetClass: PET streams about ``n_jets`` training jets spread over every training file and
    validates on the publisher's validation split; the jet-feature generator and the evaluation use
    samples across files). Otherwise jets are split train/val/test by ``split``; PET validates on
    val, the test split is only used for the final evaluation, and val also serves as the
    independent real sample for the W1 reference floor. The checkpoint goes to
    ``<output_dir>/checkpoint`` (where ``resolve_checkpoint("auto")`` of notebooks 02-04 looks
    when ``output_dir`` is ``<root>/01_pretraining``); training state for ``resume`` to
    ``<output_dir>/train_state``. ``gen_constraints`` (names in :data:`GEN_CONSTRAINTS`: "pt",
    "mass", "detector") hold the evaluation's generated particles to the generated jet pT and/or
    mass and/or to what the data's detector can record (its
    :meth:`~jetlab.data.sources.DataSource.acceptance`: jetlab's generated datasets only).
    """
    s = (settings or PretrainingSettings()).replace(**changes)
    timings: dict[str, float] = {}
    out = Path(s.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_jets = s.n_jets if s.n_jets and s.n_jets > 0 else None
    source = resolve(data, n_jets=n_jets, seed=s.seed, progress=progress, workers=s.workers)
    data_name, names = source.name, list(source.label_names)
    acceptance = _acceptance(source, s)
    sets = _samples(source, s)
    timings["data_s"] = time.perf_counter() - t0
    work = out / "train_state"
    if not s.resume and work.exists():
        shutil.rmtree(work)

    t1 = time.perf_counter()
    model, history = _train_pet(sets, source, names, s, work, callbacks, progress)
    timings["pet_train_s"] = time.perf_counter() - t1
    std = model.card.get_standardizer()
    t2 = time.perf_counter()
    jg, jg_hist = build_and_fit_jet_generator(
        jet_inputs(sets.train), sets.train.labels, num_classes=len(names), max_particles=sets.train.max_particles,
        standardizer=std, epochs=s.jet_epochs, seed=s.seed, device="cpu",
    )  # fmt: skip
    timings["jet_generator_train_s"] = time.perf_counter() - t2

    evaluation: dict[str, Any] = {}
    metrics: dict[str, Any] = dict(model.card.metrics)
    if s.evaluate:
        t3 = time.perf_counter()
        evaluation = _evaluate(model, sets, jg, std, names, acceptance, s, metrics)
        timings["evaluate_s"] = time.perf_counter() - t3
    card = _card(data_name, sets, std, names, metrics, s)
    ckpt = _save_checkpoint(
        model, card, jg, out / "checkpoint", _jet_generator_meta(data_name, sets, names, s, jg_hist)
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
        train=sets.train,
        val=sets.val,
        test=sets.test,
        metrics=metrics,
        evaluation=evaluation,
        checkpoint=ckpt,
        timings=timings,
        acceptance=acceptance,
    )
