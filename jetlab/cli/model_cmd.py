"""``jetlab model convert-omnilearned IN.pt --out DIR``: an OmniLearned checkpoint -> jetlab checkpoint."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "model", help="model checkpoints: convert OmniLearned checkpoints", description="Model checkpoint tools."
    )
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")
    c = sub.add_parser(
        "convert-omnilearned",
        help="convert an OmniLearned .pt checkpoint into a jetlab checkpoint directory",
        description=(
            "Read an OmniLearned checkpoint (torch.load weights_only=True), infer its settings from tensor "
            "names and shapes, load every tensor strictly into OmniLearned's PET2, and write "
            "model.safetensors + model_card.json (architecture omnilearned-pet2). Needs jetlab[omnilearned]."
        ),
    )
    c.add_argument("source", metavar="IN.pt", help="OmniLearned checkpoint (e.g. best_model_pretrain_s.pt)")
    c.add_argument("--out", "-o", required=True, metavar="DIR", help="output checkpoint directory")
    c.add_argument(
        "--size",
        choices=("small", "medium", "large"),
        default=None,
        help="check the file against this OmniLearned size preset (refused by setting name if it differs)",
    )
    c.add_argument("--ema", action="store_true", help="use the EMA weights (ema_body / ema_generator)")
    c.add_argument(
        "--num-heads", type=int, default=None, help="attention heads (only needed without interaction blocks)"
    )
    c.add_argument("--k", type=int, default=None, help="kNN neighbours the model was trained with (default 10)")
    c.add_argument("--num-coord", type=int, default=None, help="coordinates of the kNN distance (default 2)")
    c.add_argument(
        "--deta-flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the model was trained with delta-eta sign-flipped for jets with eta < 0 (OmniLearn v1); "
        "default --no-deta-flip: delta-eta = eta - eta_jet as OmniLearned's README defines it",
    )
    c.set_defaults(func=run_convert)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])
    return p


def run_convert(args: argparse.Namespace) -> int:
    from jetlab.cli.main import CLIError

    try:
        from jetlab.model.omnilearned_convert import convert_omnilearned

        out = convert_omnilearned(
            args.source,
            args.out,
            size=args.size,
            use_ema=args.ema,
            num_heads=args.num_heads,
            K=args.k,
            num_coord=args.num_coord,
            deta_flip=args.deta_flip,
        )
    except (ImportError, FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    from jetlab.model import load

    load(out).describe()
    print(f"wrote {out}")
    return 0
