"""Why generated jets are recognised less, relative to real ones, the more jets a model pretrained on (issue 29).

benchmarks/results/premise.json ("generation"): the recipe's models (``jetlab pretrain --recipe
jetlab-foundation [--fraction F]``) score generated/real classifier accuracy 0.71 (4k jets), 0.57 (25k),
0.49 (100k): the classifier improves with data, the generator head does not. Suspects: the tiny preset's
one-layer generator head, the diffusion loss weight, too few epochs. This script trains the recipe at
one fraction (default 0.25: the same 25,000 cached jets, seed, batch and steps per epoch) with exactly
ONE change per variant, then measures every model with bench_premise.py's generation block (same fresh
jets, same jet-feature generator settings, same sampling seeds) into one JSON:

    python benchmarks/bench_generator_capacity.py train gen3 --out DIR      # resumable (DIR/trainer/last.pt)
    python benchmarks/bench_generator_capacity.py evaluate --model recipe=DIR_F025 --model gen3=DIR \\
        --json benchmarks/results/generator_capacity.json

``recipe`` is the unchanged recipe (the existing ``--fraction 0.25`` model can stand in for it). Train
at ``nice -n 19`` with ``OMP_NUM_THREADS=1`` on shared cores; the recipe itself trains on one torch thread.
"""

from __future__ import annotations

import os

# the recipe's bit-for-bit environment (jetlab.train.recipes.REPRODUCIBLE_ENV): MKL reads it once, when
# torch loads, so it is set before anything imports torch
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "jetlab-foundation"
#: variant name -> the one change against the recipe: ("model", PETConfig.tiny overrides) or (recipe field, value)
VARIANTS: dict[str, tuple[str, Any]] = {
    "recipe": ("none", None),
    "gen3": ("model", {"num_gen_layers": 3}),  # tiny's generator head has 1 transformer block, small/paper 2
    "epochs8": ("epochs", 8),  # the recipe trains 4
    "epochs12": ("epochs", 12),
    "diffw10": ("diffusion_weight", 10.0),  # the recipe weights the diffusion loss 3
}
# the generation block exactly as benchmarks/results/premise.json was made (500 fresh test jets)
GENERATION_ARGS = [
    "--only",
    "generation",
    "--gen-jets",
    "500",
    "--gen-train-jets",
    "2000",
    "--sampling-seeds",
    "0",
    "1",
    "2",
]


def variant_recipe(name: str):
    """The recipe with the variant's one change (a PETConfig for model changes: the card stores it whole)."""
    from jetlab.model import PETConfig
    from jetlab.train.recipes import recipe

    base = recipe(RECIPE)
    field, value = VARIANTS[name]
    if field == "none":
        return base
    if field == "model":
        return dataclasses.replace(base, model=PETConfig.preset(base.model, **value))
    return dataclasses.replace(base, **{field: value})


def train(name: str, out: Path, fraction: float) -> Path:
    from jetlab.train.recipes import run_recipe

    r = variant_recipe(name)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model_dir = run_recipe(r, out, fraction=fraction, workers=1)
    # the card says what made it: this script's command and the one change, not the plain recipe command
    card_path = model_dir / "model_card.json"
    card = json.loads(card_path.read_text())
    field, value = VARIANTS[name]
    card["recipe"]["variant"] = {"name": name, "change": {field: value} if field != "none" else {}}
    card["recipe"]["command"] = shlex.join(
        [
            "python",
            "benchmarks/bench_generator_capacity.py",
            "train",
            name,
            "--out",
            "DIR",
            "--fraction",
            f"{fraction:g}",
        ]
    )
    card["recipe"]["driver_wall_s"] = round(time.perf_counter() - t0, 1)
    card_path.write_text(json.dumps(card, indent=1))
    print(f"{name}: {model_dir}; metrics {json.dumps(card['metrics'])}", flush=True)
    return model_dir


class RealJetFeatures:
    """Stands in for the jet-feature generator: hands the test jets' own (pT, eta, mass, N), in order.

    With it the diffusion head alone is judged (particles for real jet features and the right class),
    which separates a poor particle generator from a poor jet-feature generator."""

    num_features = 4
    num_classes = 10

    def __init__(self, features: np.ndarray, max_particles: int) -> None:
        self.features = features.astype(np.float32)
        self.integer_features = {3: (1.0, float(max_particles))}

    def to(self, device):
        return self

    def eval(self):
        return self

    def sample(self, n: int, labels=None, steps: int = 64, generator=None):
        import torch

        if n != len(self.features):
            raise ValueError(f"RealJetFeatures: asked for {n} jets, holds {len(self.features)}")
        return torch.as_tensor(self.features)


def real_jet_feature_block(doc: dict[str, Any], dirs: dict[str, Path], guidance: float = 0.0) -> None:
    """bench_premise's generation block with the real test jets' features instead of the fitted jet generator;
    ``guidance`` w > 0: classifier-free guidance of the particle sampler (generate_jets' ``guidance``)."""
    import bench_premise
    import torch

    from jetlab.data.sources import resolve
    from jetlab.tasks.pretraining import evaluate_pretraining, generate_jets
    from jetlab.tasks.pretraining.generation_constraints import constraint_flags

    torch.set_num_threads(1)
    settings = dict(doc["blocks"]["generation"]["settings"], jet_features="the test jets' own")
    if guidance:
        settings["guidance"] = guidance
    key = "generation_real_jet_features" + (f"_guidance_{guidance:g}" if guidance else "")
    b = doc["blocks"].setdefault(key, {})
    if b.get("settings") != settings:
        b.clear()
    b["settings"] = settings
    results = b.setdefault("results", {})
    src = resolve("jetclass-mini", n_jets=settings["n_test"], seed=settings["test_seed"], classes="all", workers=1)
    test = bench_premise._crop(src.read(), settings["max_particles"])
    oracle = RealJetFeatures(bench_premise._jet_inputs(test), settings["max_particles"])
    for name, d in dirs.items():
        if name in results:
            continue
        t0 = time.perf_counter()
        model = bench_premise._load_pet(str(d))
        rows = []
        std = model.card.get_standardizer()
        flags = constraint_flags(settings["constraints"], "real_jet_feature_block", src.acceptance())
        for s in settings["sampling_seeds"]:
            generated = None
            if guidance:
                generated = generate_jets(
                    model,
                    oracle,
                    len(test),
                    labels=test.labels,
                    standardizer=std,
                    steps=settings["steps"],
                    seed=s,
                    max_particles=settings["max_particles"],
                    guidance=guidance,
                    **flags,
                )
            ev = evaluate_pretraining(
                model,
                test,
                oracle,
                generated=generated,
                standardizer=std,
                steps=settings["steps"],
                seed=s,
                device="cpu",
                constraints=tuple(settings["constraints"]),
                acceptance=src.acceptance(),
            )
            rows.append({k: ev[k] for k in ("accuracy", "generated_accuracy", "kinematic_accuracy")} | {"seed": s})
        gen = [r["generated_accuracy"] for r in rows]
        results[name] = {
            "per_seed": rows,
            "ratio_mean": float(np.mean(gen) / rows[0]["accuracy"]),
            "ratio_se": float(np.std(gen, ddof=1) / np.sqrt(len(gen)) / rows[0]["accuracy"]),
            "seconds": time.perf_counter() - t0,
        }
        print(
            f"real jet features, guidance {guidance:g}, {name}: generated {gen}; ratio {results[name]['ratio_mean']:.3f}",
            flush=True,
        )


def _val_diffusion_per_epoch(run_dir: Path) -> list[float] | None:
    """The unweighted diffusion validation loss after each epoch, from the run's training history."""
    import torch

    last = run_dir / "trainer" / "last.pt"
    if not last.is_file():
        return None
    history = torch.load(last, map_location="cpu", weights_only=False)["history"]
    return [float(e["val_diff"]) for e in history["epochs"] if "val_diff" in e]


def _model_dir(path: str) -> Path:
    p = Path(path).resolve()
    return p / "model" if (p / "model" / "model_card.json").is_file() else p


def evaluate(models: dict[str, str], json_path: Path, guidance: list[float] = ()) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_premise

    dirs = {n: _model_dir(p) for n, p in models.items()}
    argv = [a for n, d in dirs.items() for a in ("--model", f"{n}={d}")] + GENERATION_ARGS + ["--json", str(json_path)]
    bench_premise.main(argv)
    doc = json.loads(json_path.read_text())
    real_jet_feature_block(doc, dirs)
    for w in guidance:
        real_jet_feature_block(doc, dirs, w)
        json_path.write_text(json.dumps(doc, indent=1, default=float))
    doc["purpose"] = __doc__.split("\n\n")[0] + " (" + Path(__file__).name + ")"
    results = doc["blocks"]["generation"]["results"]
    for n, d in dirs.items():
        card = json.loads((d / "model_card.json").read_text())
        recipe = card.get("recipe") or {}
        entry = doc["models"][n]
        variant = recipe.get("variant") or {"name": "recipe", "change": {}}
        entry["variant"] = variant
        if "variant" in recipe:
            entry["command"] = recipe["command"]
        per_epoch = _val_diffusion_per_epoch(d.parent)
        m = card["metrics"]
        entry["training"] = {
            "epochs": m.get("epochs"),
            "steps": m.get("steps"),
            "train_wall_s": m.get("wall_time_s"),
            "recipe_total_s": recipe.get("total_s"),
            "hardware": recipe.get("hardware"),
            "final_val_diffusion_loss": m.get("val_diff"),
            "final_val_ce": m.get("val_ce"),
            "final_val_loss": m.get("val_loss"),
            "val_diffusion_loss_per_epoch": per_epoch,
            "test_accuracy": m.get("test_accuracy"),
        }
    summary = {}
    for n, r in results.items():
        rows = r["per_seed"]
        gen = [x["generated_accuracy"] for x in rows]
        vs_kin = [x["generated_accuracy"] / x["kinematic_accuracy"] for x in rows]
        t = doc["models"].get(n, {}).get("training", {})
        summary[n] = {
            "change": doc["models"].get(n, {}).get("variant", {}).get("change"),
            "ratio_generated_over_real": [r["ratio_mean"], r["ratio_se"]],
            "accuracy_real": rows[0]["accuracy"],
            "accuracy_kinematic_only": rows[0]["kinematic_accuracy"],
            "accuracy_generated": [float(np.mean(gen)), float(np.std(gen, ddof=1) / np.sqrt(len(gen)))],
            "ratio_generated_over_kinematic": [
                float(np.mean(vs_kin)),
                float(np.std(vs_kin, ddof=1) / np.sqrt(len(vs_kin))),
            ],
            "ratio_with_real_jet_features": [
                doc["blocks"]["generation_real_jet_features"]["results"][n]["ratio_mean"],
                doc["blocks"]["generation_real_jet_features"]["results"][n]["ratio_se"],
            ]
            if n in doc["blocks"].get("generation_real_jet_features", {}).get("results", {})
            else None,
            "final_val_diffusion_loss": t.get("final_val_diffusion_loss"),
            "train_wall_s": t.get("train_wall_s"),
            "evaluation_s": r["seconds"],
        }
    doc["summary"] = {"note": "[mean, standard error over sampling seeds 0 1 2]; same 500 test jets for all", **summary}
    json_path.write_text(json.dumps(doc, indent=1, default=float))
    for n, s in summary.items():
        print(
            f"{n:10s} ratio {s['ratio_generated_over_real'][0]:.3f} ± {s['ratio_generated_over_real'][1]:.3f}; "
            f"real {s['accuracy_real']:.3f}, kinematic {s['accuracy_kinematic_only']:.3f}, generated "
            f"{s['accuracy_generated'][0]:.3f} ± {s['accuracy_generated'][1]:.3f}; val diff {s['final_val_diffusion_loss']}; "
            f"train {s['train_wall_s']} s",
            flush=True,
        )


def step_cost(variants: list[str], steps: int, fraction: float) -> dict[str, float]:
    """Seconds per optimiser step (batch 32, one torch thread) of each variant's model on the recipe's
    own training jets, the variants interleaved step by step so that other load hits them alike."""
    import torch

    from jetlab.data.sources import resolve
    from jetlab.data.torchdata import JetDataset
    from jetlab.model import PET, LossWeights, PETConfig, pretraining_loss

    torch.set_num_threads(1)
    base = variant_recipe("recipe").scaled(fraction)
    js = resolve(base.dataset, n_jets=base.n_jets, seed=base.seed, workers=1, progress=False, classes=base.classes)
    ds = JetDataset(js.read().subset(slice(0, 32 * steps)), max_particles=base.max_particles)
    batches = [{k: v[i * 32 : (i + 1) * 32] for k, v in ds.tensors.items()} for i in range(steps)]
    setups = {}
    for name in variants:
        r = variant_recipe(name)
        torch.manual_seed(0)
        model = PET(PETConfig.preset(r.model, num_classes=10))
        setups[name] = (
            model,
            torch.optim.AdamW(model.parameters(), lr=r.lr),
            LossWeights(diffusion=r.diffusion_weight),
        )
    spent = dict.fromkeys(variants, 0.0)
    for i, batch in enumerate(batches):
        for name, (model, opt, w) in setups.items():
            t0 = time.perf_counter()
            loss, _ = pretraining_loss(model, batch, weights=w)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 3:  # warm-up steps not counted
                spent[name] += time.perf_counter() - t0
    per_step = {n: v / (steps - 3) for n, v in spent.items()}
    print(" ".join(f"{n} {v:.3f} s/step ({v / per_step[variants[0]]:.2f}x)" for n, v in per_step.items()), flush=True)
    return per_step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one variant of the recipe (resumable)")
    t.add_argument("variant", choices=sorted(VARIANTS))
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--fraction", type=float, default=0.25)
    e = sub.add_parser("evaluate", help="bench_premise.py's generation block on the models, into one JSON")
    e.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    e.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/generator_capacity.json")
    e.add_argument(
        "--guidance",
        type=float,
        nargs="*",
        default=[],
        help="also sample the real-jet-feature block with classifier-free guidance w (sampling only)",
    )
    c = sub.add_parser("step-cost", help="seconds per training step of the variants' models, interleaved")
    c.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    c.add_argument("--steps", type=int, default=40)
    c.add_argument("--fraction", type=float, default=0.25)
    c.add_argument("--json", type=Path, default=None, help="store the result under 'step_cost' in this JSON")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "train":
        train(args.variant, args.out, args.fraction)
    elif args.cmd == "step-cost":
        per_step = step_cost(args.variants, args.steps, args.fraction)
        if args.json is not None:
            doc = json.loads(args.json.read_text())
            doc["blocks"]["step_cost"] = {  # under blocks: bench_premise.py keeps them when it rewrites the file
                "what": "seconds per optimiser step, batch 32, 96 particles, 1 torch thread, variants interleaved",
                "steps": args.steps - 3,
                "seconds_per_step": per_step,
                "relative_to_first": {n: v / per_step[args.variants[0]] for n, v in per_step.items()},
            }
            args.json.write_text(json.dumps(doc, indent=1, default=float))
    else:
        evaluate(dict(m.split("=", 1) for m in args.model), args.json, args.guidance)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
