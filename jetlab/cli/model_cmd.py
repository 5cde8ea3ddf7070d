"""``jetlab model list|info|convert-omnilearned``: the named checkpoints, one card, OmniLearned -> jetlab."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "model",
        help="model checkpoints: list, info, convert OmniLearned checkpoints",
        description="Model checkpoint tools.",
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
    lst = sub.add_parser(
        "list", help="the named checkpoints: shipped with jetlab, then in $JETLAB_CHECKPOINTS and the cache"
    )
    lst.set_defaults(func=run_list)
    info = sub.add_parser("info", help="a checkpoint's card: data, recipe, command, metrics; verifies its checksum")
    info.add_argument(
        "name", nargs="?", default="jetlab-foundation", help="name or directory (default: jetlab-foundation)"
    )
    info.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])
    return p


def run_list(args: argparse.Namespace) -> int:
    from jetlab.model import available_checkpoints, read_card, shipped_checkpoints

    shipped = shipped_checkpoints()
    named = available_checkpoints()
    if not named:
        print("no named checkpoints (none shipped with this jetlab, none in $JETLAB_CHECKPOINTS or the cache)")
        return 0
    for name, path in named.items():
        card = read_card(path)
        where = "shipped" if name in shipped else str(path)
        acc = card.metrics.get("test_accuracy", card.metrics.get("val_accuracy"))
        accuracy = f", accuracy {acc:.3f}" if isinstance(acc, (int, float)) else ""
        print(
            f"{name}: {card.architecture}, trained on {card.training_data} ({card.training_size} jets){accuracy} [{where}]"
        )
    return 0


def run_info(args: argparse.Namespace) -> int:
    import json

    from jetlab.cli.main import CLIError
    from jetlab.model.checkpoint import CheckpointError, read_card, resolve_checkpoint_path, verify_weights

    try:
        path = resolve_checkpoint_path(args.name)
        card = read_card(path)
        verify_weights(path, card)
    except (FileNotFoundError, CheckpointError) as exc:
        raise CLIError(str(exc)) from exc
    recipe = card.recipe or {}
    print(f"{args.name}: {path}")
    print(
        f"  architecture {card.architecture}, classes {card.class_names}, jetlab {card.jetlab_version}, {card.created}"
    )
    print(f"  trained on {card.training_data} ({card.training_size} jets)")
    if recipe:
        print(f"  made by: {recipe.get('command')}  (on {recipe.get('hardware')})")
        print(f"  recipe: {json.dumps({k: v for k, v in recipe.items() if k not in ('command', 'hardware')})}")
    print(f"  metrics: {json.dumps(card.metrics)}")
    print(f"  weights SHA-256 {card.weights_sha256 or 'not recorded'}" + (" (verified)" if card.weights_sha256 else ""))
    return 0


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
