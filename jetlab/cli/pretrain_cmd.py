"""``jetlab pretrain``: pretrain a PET foundation model on a schema file or a generated dataset.

Runs single-process or under ``torchrun --nproc_per_node=N -m jetlab.cli.main pretrain ...``
(or ``torchrun $(which jetlab) pretrain ...``); resumes from ``OUT/trainer/last.pt`` by default.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain a PET foundation model",
        description="Pretrain PET (classifier + jet regression + diffusion loss) and save OUT/model "
        "(weights + model card). Resumable: rerun the same command after an interruption.",
    )
    p.add_argument("--data", default=None, help="schema file (.h5) or dataset name, e.g. jetclass-mini")
    p.add_argument(
        "--recipe",
        default=None,
        help="run a named, reproducible recipe instead (jetlab.train.recipes: data, model and settings fixed; "
        "e.g. jetlab-foundation, the model jetlab ships; it generates with every core); only --out, --fraction, "
        "--device, --no-progress apply",
    )
    p.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="with --recipe: run it on this fraction of its jets (e.g. 0.05 to check determinism and resuming)",
    )
    p.add_argument("--out", required=True, help="output directory (OUT/model, OUT/trainer/last.pt)")
    p.add_argument("--model", default="tiny", choices=("tiny", "small", "paper"), help="model size preset")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--batch-size", type=int, default=128, help="per-process batch size")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--optimizer", default="adamw", choices=("adamw", "lion"))
    p.add_argument("--n-jets", type=int, default=None, help="jets to generate when --data is a dataset name")
    p.add_argument("--n-val", type=int, default=None, help="validation jets (default 10%%, at most 50k)")
    p.add_argument("--max-particles", type=int, default=None, help="truncate jets to this many particles")
    p.add_argument("--collection", default=None, help="collection in the file (default: 'jets' or the only one)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY", help="EMA decay, e.g. 0.999")
    p.add_argument(
        "--diffusion-weight",
        type=float,
        default=1.0,
        metavar="W",
        help="weight of the diffusion v-loss (1 = OmniLearn at GPU scale; 3 with --batch-size 32 "
        "is jetlab's CPU recipe, see jetlab.train.CPU_RECIPE)",
    )
    p.add_argument(
        "--streaming",
        choices=("auto", "yes", "no"),
        default="auto",
        help="stream the training data from disk (auto: for files over 2M jets)",
    )
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from OUT/trainer/last.pt if present",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from jetlab.cli.main import CLIError
    from jetlab.train.pretrain import pretrain

    if args.recipe is not None:
        return _run_recipe(args, CLIError)
    if args.data is None:
        raise CLIError("jetlab pretrain: pass --data (a schema file or dataset name) or --recipe NAME")
    choices: dict[str, bool | str] = {"auto": "auto", "yes": True, "no": False}
    streaming = choices[args.streaming]
    try:
        model, history = pretrain(
            args.data,
            args.out,
            model_config=args.model,
            epochs=args.epochs,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            lr=args.lr,
            optimizer=args.optimizer,
            n_jets=args.n_jets,
            n_val=args.n_val,
            max_particles=args.max_particles,
            collection=args.collection,
            ema_decay=args.ema,
            streaming=streaming,
            num_workers=args.workers,
            checkpoint_every=args.checkpoint_every,
            device=args.device,
            seed=args.seed,
            resume=args.resume,
            progress=args.progress,
            loss_weights={"diffusion": args.diffusion_weight},
        )
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    card = getattr(model, "card", None)
    if int(os.environ.get("RANK", "0")) == 0 and card is not None:
        m = card.metrics
        acc = m.get("val_accuracy")
        print(
            f"saved {args.out}/model: {len(history.epochs)} epoch(s), {len(history.steps)} steps, "
            f"best val loss {m.get('best_val_loss'):.4f}" + (f", val accuracy {acc:.3f}" if acc is not None else "")
        )
    return 0


def _run_recipe(args: argparse.Namespace, error: type[Exception]) -> int:
    import os
    import subprocess
    import sys

    from jetlab.model import read_card
    from jetlab.train.recipes import REPRODUCIBLE_ENV, in_reproducible_environment, recipe, run_recipe

    if not in_reproducible_environment():
        # MKL reads its reproducibility mode when it loads: run the recipe in a process started with it
        cmd = [sys.executable, "-m", "jetlab.cli.main", "pretrain", "--recipe", args.recipe, "--out", str(args.out)]
        cmd += ["--fraction", repr(args.fraction), "--device", args.device] + (
            [] if args.progress else ["--no-progress"]
        )
        return subprocess.run(cmd, env={**os.environ, **REPRODUCIBLE_ENV}, check=False).returncode
    try:
        chosen = recipe(args.recipe)
        model_dir = run_recipe(
            chosen,
            args.out,
            fraction=args.fraction,
            device=args.device,
            progress=args.progress,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise error(str(exc)) from exc
    m = read_card(model_dir).metrics
    print(
        f"saved {model_dir}: recipe {chosen.name}, {m.get('epochs')} epoch(s), best val loss "
        f"{m.get('best_val_loss'):.4f}, test accuracy {m.get('test_accuracy'):.3f} on {m.get('test_jets')} jets"
    )
    return 0
