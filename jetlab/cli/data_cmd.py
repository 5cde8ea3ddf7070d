"""``jetlab data list|info|fetch|verify``: the public datasets and their local copies."""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap

CONVERT_MODULE = "jetlab.cli.convert_cmd"


def _load(name: str):
    from jetlab.cli.main import CLIError
    from jetlab.data.manifests import ManifestError, load_manifest

    try:
        return load_manifest(name)
    except ManifestError as exc:
        raise CLIError(str(exc)) from exc


def _cmd_list(args: argparse.Namespace) -> int:
    from jetlab.cli.main import CLIError
    from jetlab.data.manifests import ManifestError, list_datasets, load_manifest

    rows = [("NAME", "FILES", "SIZE (default subsets)", "SIZE (all files)")]
    for name in list_datasets():
        try:
            m = load_manifest(name)
        except ManifestError as exc:
            raise CLIError(str(exc)) from exc
        default = m.files_for()
        rows.append((m.name, f"{len(default)}/{len(m.files)}", m.size_summary(default).text(), m.size_summary().text()))
    if len(rows) == 1:
        print("no dataset manifests found (check $JETLAB_MANIFESTS)")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
    print(
        "FILES = in the default subsets / in all subsets; ~ = rounded sizes quoted by a public source; "
        "`jetlab data info NAME` for details"
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    m = _load(args.name)
    wrap = lambda text, indent="  ": textwrap.fill(text, 88, initial_indent=indent, subsequent_indent=indent)  # noqa: E731
    print(f"{m.name}: {m.title}")
    print(wrap(m.description))
    record = " ".join(x for x in (m.publisher, f"record {m.record_id}" if m.record_id else None) if x)
    print(f"record:   {record or '-'}" + (f"  {m.record_url}" if m.record_url else ""))
    print(f"doi:      {m.doi or '-'}")
    print(f"license:  {m.license or 'not recorded (see the record page)'}")
    print(f"format:   {m.format}")
    print(f"reader:   jetlab.data.readers.{m.reader}")
    print("subsets:")
    for s in m.subsets.values():
        files = m.files_for(s.name)
        flag = "default" if s.default else "optional"
        with_sum = sum(1 for f in files if f.checksum)
        algos = ", ".join(sorted({f.algorithm for f in files if f.algorithm}))
        unpack = ", ".join(sorted({f.unpack for f in files if f.unpack}))
        print(
            f"  {s.name:<14} {flag:<8} {len(files):>5} files  {m.size_summary(files).text(detail=True):<28} "
            f"{with_sum}/{len(files)} with checksum"
            + (f" ({algos})" if algos else "")
            + (f", unpack: {unpack}" if unpack else "")
        )
        if s.description:
            print(wrap(s.description, " " * 18))
    schema_keys = ", ".join(m.schema)
    print("schema:   " + (schema_keys if len(schema_keys) < 80 else schema_keys[:77] + "..."))
    if "max_particles" in m.schema:
        print(f"max particles: {m.schema['max_particles']}")
    if m.notes:
        print("notes:")
        for n in m.notes:
            print(textwrap.fill(n, 88, initial_indent="  - ", subsequent_indent="    "))
    print("citation:")
    print(textwrap.indent(m.citation, "  "))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from jetlab.cli.main import CLIError
    from jetlab.data.archives import ArchiveError
    from jetlab.data.download import CONFIRM_ABOVE_BYTES, DownloadError, fetch, fetch_plan
    from jetlab.data.manifests import ManifestError, format_bytes

    m = _load(args.name)
    try:
        plan = fetch_plan(m, subset=args.subset, dest=args.dest)
        print(plan.describe())
        if plan.needs_confirmation and not args.yes:
            why = (
                f"size unknown for {plan.size.n_unknown} of them"
                if plan.size.n_unknown
                else f"above the {format_bytes(CONFIRM_ABOVE_BYTES)} confirmation threshold"
            )
            raise CLIError(
                f"not downloading {len(plan.to_download)} file(s) of {m.name} ({plan.size.text()}): {why}; "
                f"check the disk space in {plan.directory} and rerun with --yes to start"
                + (
                    ""
                    if args.subset
                    else f" (or choose fewer files with --subset; `jetlab data info {m.name}` lists the subsets)"
                )
            )
        paths = fetch(m, subset=args.subset, dest=args.dest, progress=not args.no_progress, retries=args.retries)
    except (ManifestError, DownloadError, ArchiveError) as exc:
        raise CLIError(str(exc)) from exc
    for p in paths:
        print(p)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from jetlab.cli.main import CLIError
    from jetlab.data.download import verify
    from jetlab.data.manifests import ManifestError

    m = _load(args.name)
    try:
        report = verify(m, dest=args.dest, subset=args.subset)
    except ManifestError as exc:
        raise CLIError(str(exc)) from exc
    print(report)
    return 0 if report.complete else 1


def _cmd_prepare(args: argparse.Namespace) -> int:
    from jetlab.cli.main import CLIError
    from jetlab.runner import ParameterError, notebook_data_plan, prepare_notebook_data

    if args.name is not None:  # a published dataset: convert its fetched files once, on --workers processes
        from jetlab.data.sources import DatasetNotReadyError, dataset_names, resolve

        if args.name not in dataset_names()[1]:
            raise CLIError(f"data prepare: {args.name!r} is not a published dataset ({', '.join(dataset_names()[1])})")
        try:
            source = resolve(args.name, workers=args.workers, progress=True)
        except DatasetNotReadyError as exc:
            raise CLIError(str(exc)) from exc
        for split, files in source.splits.items():
            print(
                f"{args.name} {split}: {source.n_rows(split):,} rows in {len(files)} schema file(s) under {files[0].parent}"
            )
        return 0
    try:
        if args.dry_run:
            for e in notebook_data_plan(args.notebooks, args.profile):
                opts = "".join(f" {k}={v}" for k, v in e["options"].items())
                print(f"{e['dataset']} n={e['n']} seed={e['seed']}{opts}  <- {', '.join(e['notebooks'])}")
            return 0
        prepare_notebook_data(args.notebooks, args.profile, pretrain=args.pretrain)
    except ParameterError as exc:
        raise CLIError(str(exc)) from exc
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``jetlab data`` and its sub-commands to the top-level parser."""
    parser = subparsers.add_parser(
        "data",
        help="list, describe, download and verify the public datasets",
        description="Public jet datasets: manifests (data_manifests/*.yaml), verified downloads, local checks.",
    )
    parser.set_defaults(func=lambda a: (parser.print_help(), 1)[1])
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    p = sub.add_parser("list", help="table of the datasets with a manifest")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="manifest summary, schema and citation of a dataset")
    p.add_argument("name", help="dataset name (see `jetlab data list`)")
    p.set_defaults(func=_cmd_info)

    _add_fetch(sub)
    _add_verify(sub)
    _add_prepare(sub)
    _add_convert(sub)


#: the --subset help of ``fetch`` and ``verify``
_SUBSET_HELP = "subset to use (repeatable; 'all' for every file; default: the manifest's default subsets)"


def _add_fetch(sub: argparse._SubParsersAction) -> None:
    """``jetlab data fetch``: download, verify and unpack."""
    p = sub.add_parser(
        "fetch",
        help="download, verify and unpack a dataset (resumable)",
        description="Download the files of a dataset (default subsets unless --subset), verify "
        "size and checksum, and unpack those the manifest marks (unpack: gunzip|tar). "
        "Prints the total first and refuses without --yes above 10 GB or when some "
        "sizes are unknown.",
    )
    p.add_argument("name", help="dataset name (see `jetlab data list`)")
    p.add_argument("--subset", action="append", metavar="S", help=_SUBSET_HELP)
    p.add_argument(
        "--dest", metavar="DIR", help="target directory (default: $JETLAB_DATA/<name> or ~/.cache/jetlab/data/<name>)"
    )
    p.add_argument("--retries", type=int, default=3, help="retries per file for transient errors (default: 3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="download even above 10 GB or when some sizes are unknown (never prompts)",
    )
    p.set_defaults(func=_cmd_fetch)


def _add_verify(sub: argparse._SubParsersAction) -> None:
    """``jetlab data verify``: local size and checksum checks."""
    p = sub.add_parser(
        "verify",
        help="check size and checksum of the local files (no network)",
        description="Check every local file against its published checksum and size. Files "
        "with only a published size are reported as 'size only', files with "
        "nothing published as 'unchecked', never as verified.",
    )
    p.add_argument("name", help="dataset name (see `jetlab data list`)")
    p.add_argument("--subset", action="append", metavar="S", help=_SUBSET_HELP)
    p.add_argument("--dest", metavar="DIR", help="directory holding the files")
    p.set_defaults(func=_cmd_verify)


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    """``jetlab data prepare``: the notebooks' offline datasets, or one published dataset converted."""
    p = sub.add_parser(
        "prepare",
        help="generate the datasets the notebooks read, or convert a fetched published dataset",
        description="Without NAME: generate into the cache every offline dataset that the notebooks in DIR "
        "read with their default (or --profile) parameters, so they start without waiting for "
        "Pythia (Binder's postBuild runs this). With NAME (a published dataset fetched with "
        "`jetlab data fetch NAME`): convert each raw file to jetlab's schema once, on --workers "
        "processes, as the first task to read it would.",
    )
    p.add_argument("name", nargs="?", default=None, help="a published dataset to convert (e.g. jetclass)")
    p.add_argument("--workers", type=int, default=1, help="processes converting raw files of NAME (default 1)")
    p.add_argument("--notebooks", default="notebooks", metavar="DIR", help="notebook directory (default: notebooks)")
    p.add_argument("--profile", default=None, help="parameter profile, e.g. cpu-quick (default: notebook defaults)")
    p.add_argument(
        "--no-pretrain",
        dest="pretrain",
        action="store_false",
        help="skip resolving checkpoint='auto' (only an installation without the shipped foundation "
        "model pretrains a fallback tiny PET there, once)",
    )
    p.add_argument("--dry-run", action="store_true", help="only list what would be generated")
    p.set_defaults(func=_cmd_prepare)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    """``jetlab data convert`` lives in its own module (readers); plug it in when it exists."""
    try:
        convert = importlib.import_module(CONVERT_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != CONVERT_MODULE:
            raise
    else:
        convert.register(sub)


if __name__ == "__main__":  # pragma: no cover
    from jetlab.cli.main import main

    sys.exit(main(["data", *sys.argv[1:]]))
