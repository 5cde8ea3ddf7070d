"""The premise, measured: downstream results against pretraining size (issue 29, item 5).

The same downstream trainings, with the same seeds, for PET from scratch and for PET fine-tuned from
models made by one recipe on more and more jets (``jetlab pretrain --recipe jetlab-foundation
[--fraction F]``: ten JetClass classes, tiny PET, 96 particles, 4 epochs). Blocks (``--only``):

* ``tagging`` - top tagging on toptag-mini at 10% and 100% of the training jets
  (:func:`jetlab.tasks.tagging.run_tagging`, notebook 02): test AUC and 1/eps_B at eps_S = 0.5;
* ``omnifold`` - OmniFold step 1 on zjets-mini (:func:`jetlab.tasks.omnifold.step1_curves` with
  notebook 03's classifiers): best validation loss per seed and the convergence ratio
  pretrained/scratch per seed (:meth:`jetlab.tasks.omnifold.ConvergenceStudy.ratio`);
* ``generation`` - each pretrained model's classifier accuracy on jets its own generator head made,
  divided by its accuracy on the real jets they were made for (notebook 01's ``generated_accuracy /
  accuracy``: :func:`evaluate_pretraining` with the pt, mass and detector constraints), over sampling
  seeds, on fresh ten-class jetclass-mini jets. The recipe's models carry no jet-feature generator, so
  one (:func:`build_and_fit_jet_generator`, notebook 01's 100 epochs) is fitted per model on other fresh jets;
* ``cathode`` - CATHODE (:func:`jetlab.tasks.anomaly.run_cathode`, notebook 04) at injected S/B ~0.1
  and ~0.05 in the signal region: max SIC per seed, with a random score's mean and 95th percentile
  (:func:`random_max_sic`) on the same SR events.

Settings start from the cpu-quick profile (notebooks 02-04); the command line scales them down.
Every model is named by its recipe command and its card (training size, test accuracy, weights
checksum), never by a local path. The JSON is rewritten after every model of every block, and a
rerun keeps the blocks (and models) of an existing file that it does not redo.

    python benchmarks/bench_premise.py --model 4k=DIR_F004 --model 25k=DIR_F025 --model 100k=auto \\
        --json benchmarks/results/premise.json

with DIR_F004 / DIR_F025 made by ``jetlab pretrain --recipe jetlab-foundation --out DIR --fraction
0.04`` / ``0.25`` and ``auto`` the shipped model (jetlab/weights/jetlab-foundation).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = ("tagging", "omnifold", "generation", "cathode")
GEN_CONSTRAINTS = ("pt", "mass", "detector")  # notebook 01's cpu-quick gen_constraints


def _resolve_checkpoint(spec: str) -> str:
    """A model directory; ``auto`` as checkpoint="auto" resolves it (the shipped model)."""
    if spec != "auto":
        return str(Path(spec).resolve())
    from jetlab.tasks.checkpoint_resolver import resolve_checkpoint
    return str(resolve_checkpoint("auto", train_if_missing=False, progress=False))


def _symbolic(path: str) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return "(local directory)"


def _no_local_path(arg: str) -> str:
    """A command-line argument with any absolute path replaced by a placeholder (results name no local paths)."""
    key, eq, value = arg.rpartition("=")
    if eq and value.startswith("/"):
        return f"{key}=DIR"
    return "PATH" if arg.startswith("/") else arg


def describe(name: str, spec: str, path: str) -> dict[str, Any]:
    """What made a model, from its card: recipe command, training size, test accuracy, checksum."""
    card = json.loads((Path(path) / "model_card.json").read_text())
    recipe = card.get("recipe") or {}
    if isinstance(recipe, dict) and recipe.get("name"):
        frac = float(recipe.get("fraction", 1.0))
        command = f"jetlab pretrain --recipe {recipe['name']}" + (f" --fraction {frac:g}" if frac != 1 else "")
    else:
        command = "(no recipe in its card)"
    metrics = card.get("metrics") or {}
    return {
        "name": name,
        "command": command,
        "checkpoint": "auto" if spec == "auto" else _symbolic(path),
        "training_size": card.get("training_size"),
        "recipe_n_jets": recipe.get("n_jets") if isinstance(recipe, dict) else None,
        "test_accuracy": metrics.get("test_accuracy"),
        "test_jets": metrics.get("test_jets"),
        "weights_sha256": card.get("weights_sha256"),
        "config": card.get("config"),
    }


def _mean_sd(v) -> tuple[float, float]:
    a = np.asarray([x for x in v if x is not None], dtype=float)
    if not len(a):
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _fmt(v, digits: int = 3) -> str:
    m, s = _mean_sd(v)
    if np.isnan(m):
        return "-"
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if len(v) > 1 else " (1 seed)")


class Results:
    """The JSON file, rewritten atomically after every unit of work."""

    def __init__(self, path: Path | None, header: dict[str, Any], keep: bool) -> None:
        self.path = path
        old = json.loads(path.read_text()) if keep and path is not None and path.is_file() else {}
        self.doc: dict[str, Any] = {**header, "blocks": old.get("blocks", {})}
        self.doc["models"] = {**old.get("models", {}), **header["models"]}

    def block(self, name: str, settings: dict[str, Any], extendable: str | None = None) -> dict[str, Any]:
        """The block's stored results if made with ``settings``, else a fresh block. ``extendable``: a
        settings key (seeds) whose stored values are kept and joined with the new ones (more seeds later)."""
        b = self.doc["blocks"].setdefault(name, {})
        old = dict(b.get("settings") or {})
        if extendable and extendable in old:
            settings = {**settings, extendable: sorted(set(old[extendable]) | set(settings[extendable]))}
        if old != settings and not (extendable and {**old, extendable: settings[extendable]} == settings):
            b.clear()  # other settings: start the block afresh
        b["settings"] = settings
        b.setdefault("results", {})
        return b

    def save(self) -> None:
        if self.path is None:
            return
        self.doc["load_average_end"] = list(os.getloadavg())
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, default=float))
        tmp.replace(self.path)


# ---------------------------------------------------------------------------- blocks
def run_tagging_block(res: Results, models: dict[str, str], ref_ckpt: str, args) -> None:
    from jetlab.tasks.tagging import run_tagging

    # the training and validation pools are 60% / 20% of --toptag-jets (notebook 02's split); the test set
    # is the other 20%, or --toptag-test-jets more jets of the same file (1/eps_B@0.5 on 301 background jets
    # is quantised: 100 = 3 passing jets)
    n_train, n_val = round(0.6 * args.toptag_jets), round(0.2 * args.toptag_jets)
    n_test = args.toptag_test_jets or args.toptag_jets - n_train - n_val
    settings = {
        "dataset": "toptag-mini",
        "n_jets": n_train + n_val + n_test,
        "split_jets": [n_train, n_val, n_test],
        "epochs": args.toptag_epochs,
        "batch_size": 64,
        "fractions": [1.0, 0.1],
        "seeds": args.seeds,
        "split_seed": 0,
    }
    b = res.block("tagging", settings)
    for name, ckpt in [("scratch", ref_ckpt), *models.items()]:
        if name in b["results"]:
            continue
        t0 = time.perf_counter()
        out = run_tagging(
            "toptag-mini",
            checkpoint=ckpt,
            n_jets=settings["n_jets"],
            split=tuple(n / settings["n_jets"] for n in settings["split_jets"]),
            seeds=args.seeds,
            fractions=(1.0, 0.1),
            epochs=args.toptag_epochs,
            batch_size=64,
            models=("scratch",) if name == "scratch" else ("finetuned",),
            device="cpu",
            progress=False,
        )
        per: dict[str, Any] = {}
        for frac in (1.0, 0.1):
            runs = sorted((r for r in out.runs if abs(r.fraction - frac) < 1e-9), key=lambda r: r.seed)
            per[f"{frac:g}"] = {
                "seeds": [r.seed for r in runs],
                "n_train": [r.n_train for r in runs],
                "n_test_signal_background": np.bincount(out.labels.astype(int), minlength=2)[::-1].tolist(),
                "auc": [r.metrics["auc"] for r in runs],
                "rej50": [r.metrics["rej_at_0.5"] for r in runs],
            }
        per["seconds"] = time.perf_counter() - t0
        b["results"][name] = per
        res.save()
        print(
            f"tagging {name}: {per['seconds']:.0f} s; AUC 100% {_fmt(per['1']['auc'])}, 10% {_fmt(per['0.1']['auc'])}",
            flush=True,
        )


def run_omnifold_block(res: Results, models: dict[str, str], ref_ckpt: str, args) -> None:
    from jetlab.tasks.omnifold import ConvergenceStudy, load_omnifold_data, make_classifier, step1_curves

    settings = {
        "dataset": "zjets-mini",
        "n_events": args.zjets_events,
        "epochs": args.zjets_epochs,
        "batch_size": 32,
        "lr": 1e-3,
        "lr_factor": 1.0,
        "max_particles": 48,
        "seeds": args.omnifold_seeds,
        "data_seed": 0,
    }
    b = res.block("omnifold", settings)
    sets = load_omnifold_data("zjets-mini", args.zjets_events, seed=0, progress=False)
    pet = {"max_particles": 48, "lr_factor": 1.0}
    for name, ckpt in [("scratch", ref_ckpt), *models.items()]:
        if name in b["results"]:
            continue
        kind = "scratch" if name == "scratch" else "pretrained"
        spec = make_classifier(kind, checkpoint=ckpt, config="tiny", **pet)
        t0 = time.perf_counter()
        curves = step1_curves(
            sets["sim_reco"],
            sets["data_reco"],
            classifier_factory=spec,
            seeds=args.omnifold_seeds,
            epochs=args.zjets_epochs,
            batch_size=32,
            lr=1e-3,
            device="cpu",
            progress=False,
        )
        entry: dict[str, Any] = {
            "curves": curves,
            "best_val_loss": [min(y for _, y in c) for c in curves],
            "seconds": time.perf_counter() - t0,
        }
        if name != "scratch":
            r = ConvergenceStudy({"scratch": b["results"]["scratch"]["curves"], "pretrained": curves}).ratio()
            entry["ratio_mean_curve"] = r["ratio"]
            entry["ratio_per_seed"] = r["per_seed"]
        b["results"][name] = entry
        res.save()
        print(
            f"omnifold {name}: {entry['seconds']:.0f} s; best val loss "
            + ", ".join(f"{v:.4f}" for v in entry["best_val_loss"])
            + (
                ""
                if name == "scratch"
                else "; ratio per seed "
                + ", ".join("never" if v is None else f"{v:.2f}" for v in entry["ratio_per_seed"])
            ),
            flush=True,
        )


def _load_pet(path: str):
    from jetlab.model import load

    return load(path)


def run_generation_block(res: Results, models: dict[str, str], args) -> None:
    from jetlab.data.sources import resolve
    from jetlab.tasks.pretraining import build_and_fit_jet_generator, evaluate_pretraining

    settings = {
        "dataset": "jetclass-mini",
        "classes": "all",
        "n_test": args.gen_jets,
        "test_seed": 12345,
        "n_jet_generator_train": args.gen_train_jets,
        "jet_generator_seed": 54321,
        "jet_epochs": 100,
        "steps": 32,
        "constraints": list(GEN_CONSTRAINTS),
        "sampling_seeds": args.sampling_seeds,
        "max_particles": 96,
    }
    b = res.block("generation", settings)
    src = resolve("jetclass-mini", n_jets=args.gen_jets, seed=12345, classes="all", workers=1, progress=False)
    acceptance = src.acceptance()
    test = _crop(src.read(), 96)
    fit = _crop(
        resolve(
            "jetclass-mini", n_jets=args.gen_train_jets, seed=54321, classes="all", workers=1, progress=False
        ).read(),
        96,
    )
    for name, ckpt in models.items():
        if name in b["results"]:
            continue
        t0 = time.perf_counter()
        model = _load_pet(ckpt)
        std = model.card.get_standardizer()
        jg, _ = build_and_fit_jet_generator(
            _jet_inputs(fit),
            fit.labels,
            num_classes=int(model.config.num_classes),
            max_particles=96,
            standardizer=std,
            epochs=100,
            seed=0,
            device="cpu",
        )
        rows = []
        for s in args.sampling_seeds:
            ev = evaluate_pretraining(
                model,
                test,
                jg,
                standardizer=std,
                steps=32,
                seed=s,
                device="cpu",
                constraints=GEN_CONSTRAINTS,
                acceptance=acceptance,
            )
            rows.append(
                {
                    "sampling_seed": s,
                    "accuracy": ev["accuracy"],
                    "generated_accuracy": ev["generated_accuracy"],
                    "kinematic_accuracy": ev["kinematic_accuracy"],
                    "ratio": ev["generated_accuracy"] / ev["accuracy"],
                }
            )
        ratios = [r["ratio"] for r in rows]
        entry = {
            "per_seed": rows,
            "ratio_mean": float(np.mean(ratios)),
            "ratio_se": float(np.std(ratios, ddof=1) / np.sqrt(len(ratios))) if len(ratios) > 1 else None,
            "seconds": time.perf_counter() - t0,
        }
        b["results"][name] = entry
        res.save()
        print(
            f"generation {name}: {entry['seconds']:.0f} s; accuracy {rows[0]['accuracy']:.3f}, generated "
            + ", ".join(f"{r['generated_accuracy']:.3f}" for r in rows)
            + f"; ratio {entry['ratio_mean']:.3f}",
            flush=True,
        )


def _crop(js, n: int):
    """Jets as the recipe trains on them: at most ``n`` particles (the leading ones)."""
    from jetlab.data.schema import JetSet

    if js.max_particles <= n:
        return js
    # jetclass-mini stores particles pT-ordered; the jet features stay the whole jet's, as for JetDataset(max_particles=n)
    return JetSet(
        particles=js.particles[:, :n].copy(),
        mask=js.mask[:, :n].copy(),
        jets=js.jets,
        labels=js.labels,
        weights=js.weights,
        particle_features=js.particle_features,
        extra=js.extra,
    )


def _jet_inputs(js) -> np.ndarray:
    """(pT, eta, mass, N): the jet-feature generator's inputs, as run_pretraining passes them."""
    from jetlab.data.preprocess import jet_inputs

    return jet_inputs(js)


def run_cathode_block(res: Results, models: dict[str, str], args) -> None:
    from jetlab.tasks.anomaly import (
        DEFAULT_SB,
        DEFAULT_SR,
        MassWindows,
        inject_signal,
        load_dijets,
        random_max_sic,
        run_cathode,
    )

    settings = {
        "dataset": "lhco-mini",
        "n_events": args.lhco_events,
        "file_signal_fraction": 0.15,
        "max_particles": 24,
        "epochs": 3,
        "gen_epochs": args.gen_epochs,
        "jet_gen_epochs": args.jet_gen_epochs,
        "gen_steps": 32,
        "oversample": 2,
        "kfolds": 2,
        "batch_size": 128,
        "lr": 1e-3,
        "seeds": args.cathode_seeds,
        "sb_targets": args.sb,
        "data_seed": 0,
    }
    stored_seeds = list(res.doc["blocks"].get("cathode", {}).get("settings", {}).get("seeds", []))
    b = res.block("cathode", settings, extendable="seeds")
    windows = MassWindows(DEFAULT_SR, DEFAULT_SB)
    events = load_dijets("lhco-mini", args.lhco_events, seed=0, signal_fraction=0.15, max_particles=24)
    sr_bkg = int(windows.in_sr(inject_signal(events, 0, seed=0).data.mjj).sum())
    sig = events.labels == 1
    f_sr = float(windows.in_sr(events.mjj[sig]).mean())
    for target in args.sb:
        n_signal = int(round(target * sr_bkg / f_sr))  # as scan_signal_fraction sets the level
        split = inject_signal(events, n_signal, seed=0)
        summary = split.summary(windows)
        key = f"{target:g}"
        point = b["results"].setdefault(
            key,
            {
                "target_sb": target,
                "n_injected": n_signal,
                "sr_s_over_b": summary["sr_s_over_b"],
                "sr_signal": summary["sr_signal"],
                "sr_background": summary["sr_background"],
                "random_max_sic": list(random_max_sic(summary["sr_background"], summary["sr_signal"])),
                "methods": {},
            },
        )
        for name, ckpt in [("scratch", None), *models.items()]:
            done = point["methods"].setdefault(name, {"seeds": [], "max_sic": [], "auc": [], "seconds": 0.0})
            done.setdefault("seeds", stored_seeds[: len(done["max_sic"])])  # a file written before seeds were kept
            for s in [s for s in args.cathode_seeds if s not in done["seeds"]]:
                t0 = time.perf_counter()
                m = run_cathode(
                    split,
                    windows,
                    checkpoint=ckpt,
                    config="tiny",
                    seed=s,
                    oversample=2,
                    kfolds=2,
                    gen_epochs=args.gen_epochs,
                    jet_epochs=args.jet_gen_epochs,
                    gen_steps=32,
                    epochs=3,
                    batch_size=128,
                    lr=1e-3,
                    device="cpu",
                ).metrics
                done["seeds"].append(s)
                done["max_sic"].append(m["max_sic"])
                done["auc"].append(m.get("auc"))
                done["seconds"] += time.perf_counter() - t0
                res.save()
                print(
                    f"cathode S/B {summary['sr_s_over_b']:.3f} {name} seed {s}: {time.perf_counter() - t0:.0f} s; "
                    f"max SIC {m['max_sic']:.2f} (random 95th pct {point['random_max_sic'][1]:.2f})",
                    flush=True,
                )


# ---------------------------------------------------------------------------- table
def table(doc: dict[str, Any]) -> str:
    names = ["scratch", *[n for n in doc["models"] if n != "scratch"]]
    lines = ["| quantity | " + " | ".join(names) + " |", "|---|" + "--:|" * len(names)]
    blocks = doc.get("blocks", {})
    tag = blocks.get("tagging", {}).get("results", {})
    for frac in ("0.1", "1"):
        for key, label, d in (("auc", "AUC", 4), ("rej50", "1/eps_B@0.5", 1)):
            if tag:
                lines.append(
                    f"| top tagging {float(frac):.0%}: {label} | "
                    + " | ".join(_fmt(tag[n][frac][key], d) if n in tag else "-" for n in names)
                    + " |"
                )
    of = blocks.get("omnifold", {}).get("results", {})
    if of:
        lines.append(
            "| OmniFold step 1: best val loss | "
            + " | ".join(_fmt(of[n]["best_val_loss"], 4) if n in of else "-" for n in names)
            + " |"
        )
        lines.append(
            "| OmniFold step 1: ratio per seed | - | "
            + " | ".join(
                ", ".join("never" if v is None else f"{v:.2f}" for v in of[n]["ratio_per_seed"]) if n in of else "-"
                for n in names[1:]
            )
            + " |"
        )
    gen = blocks.get("generation", {}).get("results", {})
    if gen:
        lines.append(
            "| generated / real accuracy | - | "
            + " | ".join(
                f"{gen[n]['ratio_mean']:.3f} ± {gen[n]['ratio_se'] or 0:.3f}" if n in gen else "-" for n in names[1:]
            )
            + " |"
        )
    cat = blocks.get("cathode", {}).get("results", {})
    for p in cat.values():
        lines.append(
            f"| CATHODE max SIC, S/B {p['sr_s_over_b']:.3f} (random 95th pct {p['random_max_sic'][1]:.2f}) | "
            + " | ".join(_fmt(p["methods"][n]["max_sic"], 2) if n in p["methods"] else "-" for n in names)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME=PATH",
        help="a pretrained model (repeatable, smallest first); PATH 'auto' is the shipped model (default: 100k=auto)",
    )
    ap.add_argument("--only", default=",".join(BLOCKS), help=f"comma-separated blocks of {BLOCKS}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="tagging seeds")
    ap.add_argument("--omnifold-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cathode-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--sampling-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--toptag-jets", type=int, default=3000, help="toptag-mini jets (notebook 02 cpu-quick)")
    ap.add_argument("--toptag-epochs", type=int, default=3)
    ap.add_argument(
        "--toptag-test-jets", type=int, default=None, help="test jets beyond the training pool (default: 20%% of them)"
    )
    ap.add_argument("--zjets-events", type=int, default=4000, help="zjets-mini events per setup (notebook 03)")
    ap.add_argument("--zjets-epochs", type=int, default=4)
    ap.add_argument("--gen-jets", type=int, default=1000, help="fresh ten-class test jets for generation")
    ap.add_argument("--gen-train-jets", type=int, default=2000, help="fresh jets the jet-feature generator fits")
    ap.add_argument("--lhco-events", type=int, default=6000, help="lhco-mini events (notebook 04 cpu-quick)")
    ap.add_argument("--gen-epochs", type=int, default=40, help="CATHODE generator epochs (notebook 04 cpu-quick: 40)")
    ap.add_argument("--jet-gen-epochs", type=int, default=100)
    ap.add_argument("--sb", type=float, nargs="+", default=[0.1, 0.05], help="target S/B in the SR")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, small samples, 1 epoch")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing --json instead of keeping its blocks")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/premise.json")
    args = ap.parse_args(argv)
    blocks = [b.strip() for b in args.only.split(",") if b.strip()]
    if any(b not in BLOCKS for b in blocks):
        ap.error(f"--only: choose from {BLOCKS}, got {blocks}")
    if args.quick:
        args.seeds, args.omnifold_seeds, args.cathode_seeds, args.sampling_seeds = [0], [0], [0], [0, 1]
        args.toptag_jets, args.toptag_epochs, args.zjets_events, args.zjets_epochs = 1000, 1, 1000, 1
        args.gen_jets, args.gen_train_jets, args.lhco_events, args.gen_epochs, args.jet_gen_epochs = (
            200,
            500,
            3000,
            2,
            20,
        )
    specs = dict(m.split("=", 1) for m in (args.model or ["100k=auto"]))
    if "scratch" in specs:
        ap.error("--model: 'scratch' is the from-scratch column's name")

    import torch

    torch.set_num_threads(1)
    models = {n: _resolve_checkpoint(p) for n, p in specs.items()}
    ref_ckpt = models[list(models)[-1]]  # scratch copies this architecture (all recipe models share it)
    argv_used = sys.argv[1:] if argv is None else argv
    header = {
        "command": "python benchmarks/bench_premise.py " + " ".join(_no_local_path(a) for a in argv_used),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, torch {torch.__version__}",
        "load_average_start": list(os.getloadavg()),
        "models": {n: describe(n, specs[n], p) for n, p in models.items()},
        "scratch": "PET of the last model's architecture, randomly initialised (same seeds)",
    }
    res = Results(args.json, header, keep=not args.fresh)
    print(
        "plan: blocks "
        + ", ".join(blocks)
        + "; models scratch, "
        + ", ".join(
            f"{n} ({d['command']}, {d['training_size']} jets, test accuracy {d['test_accuracy']})"
            for n, d in header["models"].items()
        ),
        flush=True,
    )
    t_all = time.perf_counter()
    runners = {
        "tagging": lambda: run_tagging_block(res, models, ref_ckpt, args),
        "omnifold": lambda: run_omnifold_block(res, models, ref_ckpt, args),
        "generation": lambda: run_generation_block(res, models, args),
        "cathode": lambda: run_cathode_block(res, models, args),
    }
    for blk in blocks:
        t0 = time.perf_counter()
        runners[blk]()
        res.doc["blocks"][blk]["seconds_this_run"] = time.perf_counter() - t0
        res.save()
        print(f"block {blk}: {time.perf_counter() - t0:.0f} s", flush=True)
    res.doc["seconds_this_run"] = time.perf_counter() - t_all
    res.save()
    print("\n" + table(res.doc))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
