"""OmniLearn-style pretraining end to end: train, generate jets, evaluate, save one checkpoint.

Generating a jet takes two stages, because PET's generator head produces particles *given* the
jet-level features and class:

1. :class:`jetlab.model.jet_generator.JetFeatureGenerator` samples (pT, eta, mass, N) per class;
2. :func:`jetlab.model.diffusion.sample` (DDIM) samples the N particles' (deta, dphi,
   log(1 - pT/pT_jet)) conditioned on those features and the class; the standardizer turns them
   back into physical massless particles (pT, eta, phi, E), and the jet observables are
   recomputed *from the particles*, so the evaluation judges what was generated.

:func:`run_pretraining` trains both stages and writes ONE checkpoint directory: the PET checkpoint
of :mod:`jetlab.model.checkpoint` (``model.safetensors`` + ``model_card.json``) with the jet
generator (``jet_generator.safetensors`` + ``jet_generator.json``) alongside. Notebooks 02-04 load
it with :func:`jetlab.model.load` (PET) and :func:`load_pretrained` (PET + jet generator).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from jetlab.data.preprocess import Standardizer, jet_inputs
from jetlab.data.schema import KINEMATIC_FEATURES, JetSet, jet_features_from_particles
from jetlab.data.sources import resolve
from jetlab.train.pretrain import MAX_VALIDATION_ROWS
from jetlab.model.jet_generator import (
    JET_GENERATOR_CONFIG,
    JET_GENERATOR_WEIGHTS,
    JetFeatureGenerator,
    load_jet_generator,
    save_jet_generator,
)

__all__ = [
    "OBSERVABLES",
    "PretrainingResult",
    "evaluate_pretraining",
    "generate_jets",
    "jet_observables",
    "load_pretrained",
    "run_pretraining",
    "train_jet_generator",
    "wasserstein_table",
]

#: Observables compared between generated and real jets (all computed from the particles).
OBSERVABLES: tuple[str, ...] = ("jet_mass", "multiplicity", "particle_pt", "particle_eta", "particle_phi")
#: Index of the multiplicity in the jet inputs (pT, eta, mass, N).
_MULT = 3


# ---------------------------------------------------------------------------- helpers
def _device(device: str | torch.device) -> torch.device:
    from jetlab.notebook import resolve_device

    return resolve_device(device)


def _balanced_labels(n: int, num_classes: int) -> np.ndarray:
    return np.arange(n) % max(num_classes, 1)


def _as_labels(labels, n: int, num_classes: int) -> np.ndarray:
    """Per-jet class labels: None -> balanced, int -> all that class, array (n,) -> as given."""
    if labels is None:
        return _balanced_labels(n, num_classes)
    if np.ndim(labels) == 0:
        out = np.full(n, int(labels), dtype=np.int64)
    else:
        out = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(out) != n:
            raise ValueError(f"generate_jets: labels has {len(out)} entries, expected n={n}")
    if len(out) and (out.min() < 0 or out.max() >= num_classes):
        raise ValueError(f"generate_jets: labels must be class indices in [0, {num_classes - 1}], got range "
                         f"[{out.min()}, {out.max()}]")
    return out


def jet_observables(jets: JetSet) -> dict[str, np.ndarray]:
    """Per-jet (mass, multiplicity) from the particles and per-particle (pT, eta, phi) of real particles."""
    kin = jet_features_from_particles(jets.particles, jets.mask)
    return {
        "jet_mass": kin[:, 3].astype(np.float64),
        "multiplicity": jets.mask.sum(1).astype(np.float64),
        "particle_pt": jets.particles[..., 0][jets.mask].astype(np.float64),
        "particle_eta": jets.particles[..., 1][jets.mask].astype(np.float64),
        "particle_phi": jets.particles[..., 2][jets.mask].astype(np.float64),
    }


def wasserstein_table(a: JetSet, b: JetSet, class_names: Sequence[str] | None = None,
                      observables: Sequence[str] = OBSERVABLES) -> dict[str, dict[str, float]]:
    """1-Wasserstein distance per observable between two JetSets, overall and per class.

    Returns ``{observable: {"all": w1, <class name>: w1, ...}}``; a class absent from either
    set is skipped.
    """
    from jetlab.physics.metrics import wasserstein_1d

    bad = [o for o in observables if o not in OBSERVABLES]
    if bad:
        raise ValueError(f"wasserstein_table: unknown observables {bad}; choose from {list(OBSERVABLES)}")
    classes = np.union1d(np.unique(a.labels), np.unique(b.labels))
    names = list(class_names) if class_names is not None else [str(c) for c in range(int(classes.max()) + 1 if len(classes) else 0)]
    groups: list[tuple[str, JetSet, JetSet]] = [("all", a, b)]
    for c in classes:
        ia, ib = a.labels == c, b.labels == c
        if ia.any() and ib.any():
            groups.append((names[int(c)] if int(c) < len(names) else str(int(c)), a.subset(ia), b.subset(ib)))
    out: dict[str, dict[str, float]] = {o: {} for o in observables}
    for name, ja, jb in groups:
        oa, ob = jet_observables(ja), jet_observables(jb)
        for o in observables:
            if len(oa[o]) and len(ob[o]):
                out[o][name] = wasserstein_1d(oa[o], ob[o])
    return out


# ---------------------------------------------------------------------------- generation
@torch.no_grad()
def generate_jets(
    model,
    jet_generator: JetFeatureGenerator,
    n: int,
    labels=None,
    standardizer: Standardizer | None = None,
    steps: int = 32,
    seed: int = 0,
    *,
    jet_steps: int = 64,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    max_particles: int | None = None,
) -> JetSet:
    """Generate ``n`` jets: jet features from ``jet_generator``, particles from PET's generator head.

    ``labels``: None (classes in turn), an int (all jets of that class) or an array of ``n`` class
    indices. ``standardizer`` defaults to the one in ``model.card``. ``steps``/``jet_steps`` are
    the DDIM steps of the particle / jet-feature samplers. Same ``seed`` -> same jets. The result
    holds massless particles (pT, eta, phi, E), pT-ordered, with jet features recomputed from them;
    the jet features that conditioned the generation are in ``extra["cond_jets"]``.
    """
    from jetlab.model.diffusion import sample

    if n < 1:
        raise ValueError(f"generate_jets: n must be >= 1, got {n}")
    if steps < 1 or jet_steps < 1:
        raise ValueError(f"generate_jets: steps and jet_steps must be >= 1, got {steps}, {jet_steps}")
    if standardizer is None:
        card = getattr(model, "card", None)
        standardizer = card.get_standardizer() if card is not None else None
        if standardizer is None:
            raise ValueError("generate_jets: pass standardizer= (the model has no card with one)")
    num_classes = int(model.config.num_classes)
    if jet_generator.num_features != 4:
        raise ValueError(f"generate_jets: jet_generator must model the 4 jet inputs (pT, eta, mass, N), "
                         f"it has num_features={jet_generator.num_features}")
    if max_particles is None:
        rng_ = jet_generator.integer_features.get(_MULT)
        if rng_ is None:
            raise ValueError("generate_jets: pass max_particles (the jet generator has no multiplicity range)")
        max_particles = int(rng_[1])
    lab = _as_labels(labels, n, num_classes)
    dev = _device(device)
    model.to(dev).eval()
    jet_generator.to(dev).eval()
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))

    cond_lab = torch.as_tensor(lab, device=dev) if jet_generator.num_classes else None
    feats = jet_generator.sample(n, labels=cond_lab, steps=jet_steps, generator=gen).cpu().numpy().astype(np.float64)
    feats[:, _MULT] = np.clip(np.round(feats[:, _MULT]), 1, max_particles)
    feats[:, 0] = np.maximum(feats[:, 0], 1e-3)  # pT > 0
    feats[:, 2] = np.maximum(feats[:, 2], 0.0)  # mass >= 0
    mult = feats[:, _MULT].astype(np.int64)
    mask = np.arange(max_particles)[None, :] < mult[:, None]
    jets_std = standardizer.transform_jets(feats.astype(np.float32))

    parts = []
    for a in range(0, n, batch_size):
        b = min(a + batch_size, n)
        p = int(mult[a:b].max())  # no need to run the model over all-padding columns
        m = torch.as_tensor(mask[a:b, :p], device=dev)
        j = torch.as_tensor(jets_std[a:b], device=dev)
        y = torch.as_tensor(lab[a:b], device=dev)
        out = sample(model, m, j, labels=y, steps=steps, generator=gen).float().cpu().numpy()
        full = np.zeros((b - a, max_particles, out.shape[-1]), dtype=np.float32)
        full[:, :p] = out
        parts.append(full)
    z = np.concatenate(parts)

    # standardised (deta, dphi, log(1 - pT/pT_jet)) -> physical particles
    ps, pm = standardizer.particle_std[:3].astype(np.float64), standardizer.particle_mean[:3].astype(np.float64)
    raw = z[..., :3].astype(np.float64) * ps + pm
    deta, dphi, l1m = raw[..., 0], raw[..., 1], raw[..., 2]
    jpt, jeta = feats[:, 0:1], feats[:, 1:2]
    jphi = rng.uniform(-np.pi, np.pi, size=(n, 1))  # the jet azimuth is not modelled: the physics is phi-symmetric
    ptrel = np.clip(-np.expm1(np.minimum(l1m, 0.0)), 1e-6, 1.0 - 1e-6)
    pt = ptrel * jpt
    eta = jeta + np.where(jeta < 0, -1.0, 1.0) * deta
    phi = (jphi + dphi + np.pi) % (2 * np.pi) - np.pi
    energy = pt * np.cosh(np.clip(eta, -10, 10))
    particles = np.stack([pt, eta, phi, energy], axis=-1)
    particles = np.where(mask[..., None], particles, 0.0)
    # pT-order (the schema's convention); the model is permutation-equivariant so order carries nothing
    order = np.argsort(np.where(mask, -pt, np.inf), axis=1, kind="stable")
    particles = np.take_along_axis(particles, order[..., None], axis=1)
    jets = jet_features_from_particles(particles, mask)
    out = JetSet(particles=particles, mask=mask, jets=jets, labels=lab, particle_features=KINEMATIC_FEATURES,
                 extra={"cond_jets": feats.astype(np.float32)})
    return out.validate("generate_jets")


# ---------------------------------------------------------------------------- evaluation
def evaluate_pretraining(
    model,
    test_jetset: JetSet,
    jet_generator: JetFeatureGenerator | None = None,
    *,
    standardizer: Standardizer | None = None,
    class_names: Sequence[str] | None = None,
    reference_jetset: JetSet | None = None,
    generated: JetSet | None = None,
    steps: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Classifier accuracy / confusion matrix on ``test_jetset`` and W1 of generated vs real jets.

    Generated jets (unless given) have the test set's class counts. ``reference_jetset`` (an
    independent real sample, e.g. the validation split) gives the W1 floor: the distance two
    real samples of that size have by statistics alone. Returns a JSON-friendly dict with
    ``accuracy``, ``confusion_matrix`` (rows: true, normalised), ``generated_accuracy`` (the
    classifier on generated jets: do they look like their class?), ``w1`` and ``w1_reference``
    (``{observable: {"all"|class: value}}``) and the generated JetSet under ``"generated"``.
    """
    from jetlab.data.torchdata import JetDataset
    from jetlab.train.finetune import predict

    if standardizer is None:
        card = getattr(model, "card", None)
        standardizer = card.get_standardizer() if card is not None else None
        if standardizer is None:
            raise ValueError("evaluate_pretraining: pass standardizer= (the model has no card with one)")
    if class_names is None:
        card = getattr(model, "card", None)
        class_names = (card.class_names if card is not None else None) or [str(i) for i in range(model.config.num_classes)]
    c = len(class_names)
    if len(test_jetset) == 0:
        raise ValueError("evaluate_pretraining: test_jetset is empty")
    dev = _device(device)
    probs = predict(model, JetDataset(test_jetset, standardizer=standardizer), batch_size=batch_size, device=dev)
    pred = np.argmax(probs, axis=-1)
    truth = test_jetset.labels
    cm = np.zeros((c, c))
    np.add.at(cm, (truth, pred), 1.0)
    rows = cm.sum(1, keepdims=True)
    result: dict[str, Any] = {
        "n_test": int(len(test_jetset)),
        "num_classes": c,
        "class_names": list(class_names),
        "chance_accuracy": float(np.bincount(truth, minlength=c).max() / len(truth)),
        "accuracy": float((pred == truth).mean()),
        "per_class_accuracy": {class_names[i]: float(cm[i, i] / rows[i, 0]) for i in range(c) if rows[i, 0] > 0},
        "confusion_matrix": np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0).tolist(),
        "predictions": pred,
    }
    if generated is None and jet_generator is not None:
        generated = generate_jets(model, jet_generator, len(test_jetset), labels=truth, standardizer=standardizer,
                                  steps=steps, seed=seed, device=dev, batch_size=batch_size,
                                  max_particles=test_jetset.max_particles)
    if generated is not None:
        gp = predict(model, JetDataset(generated, standardizer=standardizer), batch_size=batch_size, device=dev)
        result["generated_accuracy"] = float((np.argmax(gp, -1) == generated.labels).mean())
        result["w1"] = wasserstein_table(generated, test_jetset, class_names)
        result["generated"] = generated
    if reference_jetset is not None:
        n = min(len(reference_jetset), len(test_jetset))
        result["w1_reference"] = wasserstein_table(reference_jetset.subset(slice(0, n)), test_jetset, class_names)
    return result


# ---------------------------------------------------------------------------- jet generator training
def train_jet_generator(
    features: np.ndarray,
    labels: np.ndarray | None,
    *,
    num_classes: int | None,
    max_particles: int,
    standardizer: Standardizer | None = None,
    epochs: int = 200,
    batch_size: int = 256,
    lr: float = 2e-3,
    hidden: int = 128,
    layers: int = 3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
) -> tuple[JetFeatureGenerator, list[float]]:
    """Fit a class-conditional :class:`JetFeatureGenerator` to raw jet inputs (pT, eta, mass, N).

    Uses the PET ``standardizer``'s jet normalisation when given (so the generated features sit in
    the space PET was trained on). AdamW with a cosine schedule; returns ``(generator, loss per epoch)``.
    It is a few-thousand-parameter MLP: hundreds of epochs over 10^4 jets take seconds.
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if x.ndim != 2 or x.shape[1] != 4:
        raise ValueError(f"train_jet_generator: features must be (N, 4) (pT, eta, mass, N), got {tuple(x.shape)}")
    y = None if labels is None or not num_classes else torch.as_tensor(np.asarray(labels, dtype=np.int64))
    torch.manual_seed(seed)
    gen = JetFeatureGenerator(4, num_classes=num_classes if num_classes and num_classes > 1 else None,
                              hidden=hidden, layers=layers, integer_features={_MULT: (1, max_particles)})
    if gen.num_classes is None:
        y = None
    if standardizer is not None:
        gen.set_normalization(standardizer.jet_mean, standardizer.jet_std)
    else:
        gen.fit_normalization(x.numpy())
    dev = _device(device)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)  # a tiny MLP: intra-op threading only adds contention
    try:
        return _fit_jet_generator(gen, x, y, dev, epochs, batch_size, lr, seed, max_steps)
    finally:
        torch.set_num_threads(threads)


def _fit_jet_generator(gen, x, y, dev, epochs, batch_size, lr, seed, max_steps):
    gen.to(dev).train()
    x = x.to(dev)
    y = y.to(dev) if y is not None else None
    n = len(x)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total = steps_per_epoch * epochs if max_steps is None else int(max_steps)
    opt = torch.optim.AdamW(gen.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    rng = torch.Generator(device=dev).manual_seed(seed)
    history, step = [], 0
    while step < total:
        perm = torch.randperm(n, generator=rng, device=dev)
        acc, cnt = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = gen.loss(x[idx], labels=None if y is None else y[idx], generator=rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
            opt.step()
            sched.step()
            acc += float(loss.detach()) * len(idx)
            cnt += len(idx)
            step += 1
            if step >= total:
                break
        history.append(acc / max(cnt, 1))
    gen.eval()
    return gen, history


# ---------------------------------------------------------------------------- checkpoints
def load_pretrained(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """``(PET, JetFeatureGenerator or None)`` from a checkpoint written by :func:`run_pretraining`."""
    from jetlab.model import load

    model = load(path, map_location=map_location)
    p = Path(path)
    jg = load_jet_generator(p, map_location) if (p / JET_GENERATOR_CONFIG).is_file() else None
    return model, jg


def _save_checkpoint(model, card, jet_generator: JetFeatureGenerator | None, path: Path, jg_meta: Mapping) -> Path:
    """PET checkpoint + jet generator written into a temp dir, then moved into place atomically."""
    from jetlab.model import save

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
@dataclass
class PretrainingResult:
    """What :func:`run_pretraining` produced (the checkpoint is at ``checkpoint``)."""

    model: Any
    jet_generator: JetFeatureGenerator
    history: Any
    jet_generator_history: list[float]
    standardizer: Standardizer
    class_names: list[str]
    train: JetSet
    val: JetSet
    test: JetSet
    metrics: dict[str, Any]
    evaluation: dict[str, Any]
    checkpoint: Path
    timings: dict[str, float] = field(default_factory=dict)


def run_pretraining(
    dataset: str | os.PathLike = "jetclass-mini",
    n_jets: int = 4000,
    epochs: int = 4,
    model_size: str | Mapping | Any = "tiny",
    device: str | torch.device = "auto",
    output_dir: str | os.PathLike = "jetlab_output/01_pretraining",
    seed: int = 0,
    *,
    batch_size: int = 32,
    lr: float = 1e-3,
    optimizer: str = "adamw",
    ema_decay: float | None = 0.99,
    diffusion_weight: float = 3.0,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    jet_epochs: int = 100,
    gen_steps: int = 32,
    n_generate: int | None = None,
    callbacks: Iterable[Any] = (),
    resume: bool = False,
    progress: bool = True,
    workers: int | None = None,
    evaluate: bool = True,
) -> PretrainingResult:
    """Pretrain PET (classifier + diffusion) and the jet-feature generator; evaluate; save one checkpoint.

    ``dataset`` is anything :func:`jetlab.data.sources.resolve` takes: a mini-generator name (generated
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
    is batch 250 per GPU with ``diffusion_weight=1``.
    """
    from jetlab.data.torchdata import split_indices
    from jetlab.model import ModelCard
    from jetlab.train.pretrain import pretrain

    timings: dict[str, float] = {}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    source = resolve(dataset, n_jets=n_jets if n_jets and n_jets > 0 else None, seed=seed, progress=progress,
                     workers=workers)
    data_name, names = source.name, list(source.label_names)
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
        test = source.sample(int(n_generate) if n_generate else MAX_VALIDATION_ROWS,
                             split="test" if source.has_split("test") else "val")
    else:
        js = source.read(stop=None if source.kind == "generated" or not n_jets or n_jets <= 0 else int(n_jets))
        if len(js) < 10:
            raise ValueError(f"run_pretraining: need at least 10 jets, {data_name} gave {len(js)}")
        tr, va, te = split_indices(len(js), fr, seed=seed)
        train, val, test = js.subset(tr), js.subset(va), js.subset(te)
        pet_data = JetSet.concatenate([train, val])
    timings["data_s"] = time.perf_counter() - t0
    work = out / "train_state"
    if not resume and work.exists():
        shutil.rmtree(work)

    t1 = time.perf_counter()
    model, history = pretrain(
        pet_data, work, model_config=model_size, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
        n_val=len(val), n_jets=n_jets if pet_data is source else None, label_names=names, seed=seed, device=device,
        resume=resume, callbacks=callbacks,
        ema_decay=ema_decay, progress=progress, checkpoint_every=None, loss_weights={"diffusion": float(diffusion_weight)},
    )
    timings["pet_train_s"] = time.perf_counter() - t1
    std = model.card.get_standardizer()
    max_particles = train.max_particles

    t2 = time.perf_counter()
    jg, jg_hist = train_jet_generator(jet_inputs(train), train.labels, num_classes=len(names), max_particles=max_particles,
                                      standardizer=std, epochs=jet_epochs, seed=seed, device="cpu")
    timings["jet_generator_train_s"] = time.perf_counter() - t2

    evaluation: dict[str, Any] = {}
    metrics: dict[str, Any] = dict(model.card.metrics)
    if evaluate:
        t3 = time.perf_counter()
        test_eval = test if n_generate is None else test.subset(slice(0, min(int(n_generate), len(test))))
        evaluation = evaluate_pretraining(model, test_eval, jg, standardizer=std, class_names=names,
                                          reference_jetset=val, steps=gen_steps, seed=seed, device=device)
        timings["evaluate_s"] = time.perf_counter() - t3
        metrics.update({k: evaluation[k] for k in ("accuracy", "chance_accuracy", "generated_accuracy", "per_class_accuracy")
                        if k in evaluation})
        metrics["w1"] = evaluation.get("w1")
        metrics["w1_reference"] = evaluation.get("w1_reference")
        metrics["confusion_matrix"] = evaluation["confusion_matrix"]
    card = ModelCard(
        training_data=data_name, training_size=int(len(train)), standardizer=std.to_dict(), class_names=names,
        metrics=metrics,
        notes=(f"jetlab.tasks.pretraining.run_pretraining: model_size={model_size}, epochs={epochs}, batch_size={batch_size}, "
               f"lr={lr}, optimizer={optimizer}, ema_decay={ema_decay}, diffusion_weight={diffusion_weight}, seed={seed}, split={list(fr)}, max_particles={max_particles}; "
               f"jet_generator={JET_GENERATOR_WEIGHTS} (+{JET_GENERATOR_CONFIG}): JetFeatureGenerator over "
               f"(pt, eta, mass, n_particles), class-conditional, load with jetlab.tasks.pretraining.load_pretrained"),
    )
    ckpt = _save_checkpoint(model, card, jg, out / "checkpoint",
                            {"training_data": data_name, "training_size": int(len(train)), "features": list(
                                ("pt", "eta", "mass", "n_particles")), "class_names": names, "max_particles": max_particles,
                             "epochs": jet_epochs, "final_loss": jg_hist[-1] if jg_hist else None})
    model.card = card
    timings["total_s"] = time.perf_counter() - t0
    return PretrainingResult(model=model, jet_generator=jg, history=history, jet_generator_history=jg_hist,
                             standardizer=std, class_names=names, train=train, val=val, test=test, metrics=metrics,
                             evaluation=evaluation, checkpoint=ckpt, timings=timings)
