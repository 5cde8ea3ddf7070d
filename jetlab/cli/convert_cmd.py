"""``jetlab data convert NAME SOURCE... --out FILE``: public dataset files -> one schema file.

Registered by ``jetlab.cli.data_cmd`` under the ``data`` command via :func:`register`.
"""

from __future__ import annotations

import argparse

#: kept in sync with jetlab.data.readers.DATASETS (not imported here so --help stays fast)
CONVERTIBLE = ("jetclass", "atlas_toptag", "omnifold_zjets", "lhco_rnd", "aspen_open_jets")


def register(data_subparsers) -> argparse.ArgumentParser:
    """Add ``convert`` to the ``jetlab data`` sub-command parsers."""
    p = data_subparsers.add_parser(
        "convert",
        help="convert downloaded public dataset files to one jetlab schema file",
        description=(
            "Read the files of a public dataset (as published) chunk by chunk and write one "
            "jetlab schema HDF5 file. JetClass accepts directories of .root files."
        ),
    )
    p.add_argument("name", choices=CONVERTIBLE, metavar="NAME", help=f"dataset: {', '.join(CONVERTIBLE)}")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="input files (or directories for jetclass)")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output schema file (.h5)")
    p.add_argument(
        "--max-particles",
        type=int,
        default=None,
        metavar="N",
        help="particles kept per jet (default: the PET/OmniLearn value for the dataset)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=100_000,
        metavar="N",
        help="jets read per chunk (bounds memory; default 100000)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from jetlab.cli.main import CLIError
    from jetlab.data.readers import convert
    from jetlab.data.schema import SchemaError, inspect_file

    if args.max_particles is not None and args.max_particles < 1:
        raise CLIError(f"--max-particles must be >= 1, got {args.max_particles}")
    if args.chunk_size < 1:
        raise CLIError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    try:
        out = convert(args.name, args.sources, args.out, max_particles=args.max_particles, chunk_size=args.chunk_size)
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    meta = inspect_file(out)
    pmax = ", ".join(f"{c}: {meta.max_particles[c]}" for c in meta.collections)
    print(
        f"wrote {out}: {meta.n_rows} rows, collections {list(meta.collections)} (max particles {pmax}), labels {list(meta.label_names)}"
    )
    return 0
