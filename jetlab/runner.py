"""Execute jetlab notebooks headless with validated parameters (``jetlab run``).

A notebook declares its parameters in the one cell tagged ``parameters`` (papermill's
convention) as simple assignments ``name = literal``. Everything the user passes (``-p`` values,
a profile from ``jetlab/profiles/*.yaml``) is checked against those declarations *before* a
kernel starts, so a typo in a parameter name, a wrong type, a missing checkpoint or an unknown
dataset fails in a second with a message naming the parameter, instead of an hour into a run.

Execution goes through :func:`papermill.execute_notebook` with the notebook's own directory as
working directory (as in Jupyter); every path parameter is made absolute first. The executed
notebook is written to ``<out>/<stem>.ipynb`` and the notebook writes its figures, metrics and
``run_info.json`` into ``<out>`` (passed as the ``output_dir`` parameter).

While it runs, ``progress`` shows which cell is running with the elapsed time, the kernel's own
output (the library's tqdm bars, started as text bars in the kernel: a widget bar has no front
end under papermill) and a heartbeat line during long silent steps (:class:`jetlab.progress.RunProgress`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from jetlab.notebook_params import (
    NotebookParameter,
    ParameterError,
    find_notebooks,
    list_profiles,
    load_profile,
    parse_cli_value,
    profile_fetch,
    profile_parameters,
    read_parameters,
    type_name,
)
from jetlab.options import DEFAULT_OUTPUT_ROOT, is_special
from jetlab.progress import (
    HEARTBEAT_SECONDS,
    KERNEL_STARTUP_LINE,
    KERNEL_TQDM_MININTERVAL,
    RunProgress,
    is_ipykernel,
    log_tail,
    logged_kernel_manager,
)

__all__ = [
    "HEARTBEAT_SECONDS",
    "DEFAULT_KERNEL",
    "NotebookExecutionError",
    "NotebookParameter",
    "ParameterError",
    "RunPlan",
    "RunProgress",
    "RunResult",
    "estimate_costs",
    "find_notebooks",
    "gate_on_cost",
    "known_datasets",
    "list_profiles",
    "load_profile",
    "notebook_data_plan",
    "parse_cli_value",
    "plan_run",
    "prepare_notebook_data",
    "profile_parameters",
    "read_parameters",
    "run_all",
    "run_notebook",
    "validate_parameters",
]

DEFAULT_KERNEL = "python3"
#: The notebook whose output (``<out>/01_pretraining/checkpoint``) feeds the others in ``--all``.
PRETRAINING_STEM = "01_pretraining"
CHECKPOINT_SUBPATH = "checkpoint"


class NotebookExecutionError(RuntimeError):
    """A notebook cell raised; the executed notebook with the traceback was still written."""

    def __init__(self, message: str, executed: Path | None = None):
        super().__init__(message)
        self.executed = executed


# --------------------------------------------------------------------------- values and types
def _coerce(notebook: Path, name: str, value: Any, param: NotebookParameter, source: str) -> Any:
    expected = param.expected
    if isinstance(value, str) and expected != "str":
        # CLI values are always text; YAML also leaves e.g. "1e-4" as text.
        if expected == "bool" and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        else:
            value = parse_cli_value(value)
    if expected is None:
        return value
    got = type_name(value)
    if expected == "float" and got == "int":
        return float(value)
    if expected == "list" and isinstance(value, tuple):
        return list(value)
    if got != expected:
        raise ParameterError(
            f"{notebook.name}: parameter {name!r} ({source}) expects {expected} "
            f"(default {param.default!r}), got {got} {value!r}"
        )
    return value


def known_datasets() -> tuple[list[str], list[str]]:
    """(generator names, published dataset names) that a ``dataset`` parameter may name."""
    from jetlab.data.sources import dataset_names

    return dataset_names()


def _is_checkpoint(name: str) -> bool:
    return name == "checkpoint" or name.endswith("_checkpoint")


def _is_dataset(name: str) -> bool:
    return name == "dataset" or name.endswith("_dataset")


def validate_parameters(
    notebook: str | os.PathLike,
    parameters: Mapping[str, Any],
    *,
    source: str = "-p",
    declared: Mapping[str, NotebookParameter] | None = None,
    pending: Iterable[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Check ``parameters`` against the notebook's declarations; return them coerced.

    Raises :class:`ParameterError` for an unknown name (listing the valid ones), a wrong type,
    a checkpoint path that does not exist (``"auto"``/empty/``"none"`` are fine; paths in ``pending`` will
    be written by an earlier notebook), or a dataset that is neither a generator, a manifest
    dataset nor an existing file. Existing paths are made absolute, since the notebook runs in
    its own directory.
    """
    notebook = Path(notebook)
    declared = read_parameters(notebook) if declared is None else declared
    pending_paths = {Path(p).expanduser().resolve() for p in pending}
    out: dict[str, Any] = {}
    for name, raw in parameters.items():
        if name not in declared:
            valid = ", ".join(sorted(declared)) or "(none)"
            raise ParameterError(f"{notebook.name}: unknown parameter {name!r} ({source}); valid parameters: {valid}")
        value = _coerce(notebook, name, raw, declared[name], source)
        if _is_checkpoint(name) and isinstance(value, str) and value.strip().lower().startswith("omnilearned:"):
            from jetlab.model.omnilearned_convert import resolve_omnilearned

            try:  # a published OmniLearned checkpoint: fetched (converted on first use)?
                resolve_omnilearned(value, convert=False)
            except (ValueError, FileNotFoundError) as exc:
                raise ParameterError(f"{notebook.name}: parameter {name!r} ({source}): {exc}") from None
        elif _is_checkpoint(name) and isinstance(value, (str, os.PathLike)) and not is_special(value):
            path = Path(value).expanduser().resolve()
            if not path.exists() and path not in pending_paths:
                raise ParameterError(
                    f"{notebook.name}: parameter {name!r} ({source}): checkpoint {os.fspath(value)!r} does not exist; "
                    "give an existing checkpoint path, 'auto' (notebook 01's output if present) or 'none'"
                )
            value = str(path)
        if _is_dataset(name) and isinstance(value, str) and value:
            generators, manifests = known_datasets()
            if value not in generators and value not in manifests:
                path = Path(value).expanduser()
                if not path.is_file():
                    raise ParameterError(
                        f"{notebook.name}: parameter {name!r} ({source}): dataset {value!r} is neither a generator "
                        f"({', '.join(generators)}), a manifest dataset ({', '.join(manifests)}) nor an existing file"
                    )
                value = str(path.resolve())
        out[name] = value
    return out


# --------------------------------------------------------------------------- running
@dataclass
class RunPlan:
    """A validated run: what will be executed, with which parameters, into which directory."""

    notebook: Path
    output_dir: Path
    executed: Path
    parameters: dict[str, Any]
    kernel: str = DEFAULT_KERNEL


@dataclass
class RunResult:
    """The outcome of :func:`run_notebook`."""

    notebook: Path
    output_dir: Path
    executed: Path
    parameters: dict[str, Any]
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)


def _check_kernel(kernel: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(kernel)
    except NoSuchKernel:
        available = ", ".join(sorted(manager.find_kernel_specs())) or "(none)"
        raise ParameterError(
            f"Jupyter kernel {kernel!r} is not installed (available: {available}); "
            "install one with 'python -m ipykernel install --user --name python3'"
        ) from None


def plan_run(
    notebook: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    *,
    profile: str | os.PathLike | Mapping | None = None,
    out: str | os.PathLike | None = None,
    kernel: str = DEFAULT_KERNEL,
    pending: Iterable[str | os.PathLike] = (),
    check_kernel: bool = True,
) -> RunPlan:
    """Validate everything about a run without executing it (see :func:`run_notebook`)."""
    notebook = Path(notebook)
    declared = read_parameters(notebook)
    if "output_dir" not in declared:
        raise ParameterError(
            f"{notebook.name}: the parameters cell must declare 'output_dir' (jetlab run passes the output directory in it)"
        )
    parameters = dict(parameters or {})
    if "output_dir" in parameters:
        raise ParameterError(f"{notebook.name}: set the output directory with --out, not as parameter 'output_dir'")
    pending = list(pending)
    merged = validate_parameters(
        notebook, profile_parameters(profile, notebook), source=f"profile {profile}", declared=declared, pending=pending
    )
    merged.update(validate_parameters(notebook, parameters, source="-p", declared=declared, pending=pending))
    out_dir = Path(out) if out is not None else Path(DEFAULT_OUTPUT_ROOT) / notebook.stem
    out_dir = out_dir.expanduser().resolve()
    merged["output_dir"] = str(out_dir)
    if check_kernel:
        _check_kernel(kernel)
    return RunPlan(notebook.resolve(), out_dir, out_dir / notebook.name, merged, kernel)


def _execute(plan: RunPlan, *, progress: bool | Any, log_output: bool, prepare_only: bool) -> RunResult:
    """Execute one plan. ``progress`` (True or a stream): per-cell lines, heartbeat and the
    kernel's output; ``log_output`` alone: only the kernel's output (see :class:`RunProgress`)."""
    import tempfile

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    plan.output_dir.mkdir(parents=True, exist_ok=True)
    before = set(plan.output_dir.rglob("*"))
    start = time.perf_counter()
    # widgets render static figures in executed notebooks (see jetlab.widgets); the kernel
    # inherits this process's environment
    env_was = {k: os.environ.get(k) for k in ("JETLAB_HEADLESS", "TQDM_MININTERVAL")}
    os.environ.setdefault("JETLAB_HEADLESS", "1")
    os.environ.setdefault("TQDM_MININTERVAL", KERNEL_TQDM_MININTERVAL)
    reporter = None
    if (progress or log_output) and not prepare_only:
        reporter = RunProgress(
            plan.notebook.name, None if progress in (True, False) else progress, cells=bool(progress)
        )
    hooks: dict[str, Any] = {}
    if reporter is not None:
        if reporter.cells:
            reporter.message(f"starting the {plan.kernel} kernel -> {plan.output_dir}")
        hooks = dict(
            stdout_file=reporter.stdout,
            stderr_file=reporter.stderr,
            on_notebook_start=reporter.start,
            on_cell_execute=reporter.cell_start,
            on_cell_executed=reporter.cell_done,
        )
    kernel_log = tempfile.TemporaryFile(prefix="jetlab-kernel-", suffix=".log")
    try:
        pm.execute_notebook(
            str(plan.notebook),
            str(plan.executed),
            parameters=plan.parameters,
            kernel_name=plan.kernel,
            cwd=str(plan.notebook.parent),
            progress_bar=False,
            prepare_only=prepare_only,
            request_save_on_cell_execute=not prepare_only,
            kernel_manager_class=logged_kernel_manager(kernel_log),
            extra_arguments=[f"--IPKernelApp.exec_lines={KERNEL_STARTUP_LINE}"] if is_ipykernel(plan.kernel) else [],
            coalesce_streams=True,
            **hooks,
        )
    except PapermillExecutionError as exc:
        raise NotebookExecutionError(
            f"{plan.notebook.name} failed in cell [{exc.exec_count}]: {exc.ename}: {exc.evalue}\n"
            f"the executed notebook with the full traceback is {plan.executed}",
            executed=plan.executed,
        ) from exc
    except Exception as exc:  # the kernel died or did not start: its own log says why
        tail = log_tail(kernel_log)
        if tail and hasattr(exc, "add_note"):
            exc.add_note(f"kernel log (last lines):\n{tail}")
        raise
    finally:
        kernel_log.close()
        if reporter is not None:
            reporter.close()
        for key, value in env_was.items():
            if value is None:
                os.environ.pop(key, None)
    seconds = time.perf_counter() - start
    files = sorted(p for p in set(plan.output_dir.rglob("*")) - before if p.is_file())
    return RunResult(plan.notebook, plan.output_dir, plan.executed, plan.parameters, seconds, files)


def run_notebook(
    notebook: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    *,
    profile: str | os.PathLike | Mapping | None = None,
    out: str | os.PathLike | None = None,
    kernel: str = DEFAULT_KERNEL,
    progress: bool = False,
    log_output: bool = False,
    prepare_only: bool = False,
    before_execute: Callable[[list[RunPlan]], bool | None] | None = None,
) -> RunResult | None:
    """Validate, then execute ``notebook`` with papermill into ``out``.

    ``parameters`` override the ``profile``'s entry for this notebook; strings (as from the
    command line) are parsed against the declared types. ``out`` defaults to
    ``jetlab_output/<stem>``. With ``prepare_only`` the parameterised notebook is written but
    not executed (used to hand a notebook to nbval). ``before_execute(plans)`` sees the validated
    plan before anything runs (the CLI prints the cost there); returning False runs nothing (None)."""
    plan = plan_run(notebook, parameters, profile=profile, out=out, kernel=kernel, check_kernel=not prepare_only)
    if before_execute is not None and not prepare_only and before_execute([plan]) is False:
        return None
    return _execute(plan, progress=progress, log_output=log_output, prepare_only=prepare_only)


def run_all(
    notebook_dir: str | os.PathLike = "notebooks",
    parameters: Mapping[str, Any] | None = None,
    *,
    profile: str | os.PathLike | Mapping | None = None,
    out: str | os.PathLike = DEFAULT_OUTPUT_ROOT,
    kernel: str = DEFAULT_KERNEL,
    progress: bool = False,
    log_output: bool = False,
    echo=None,
    before_execute: Callable[[list[RunPlan]], bool | None] | None = None,
    check_kernel: bool = True,
) -> list[RunResult]:
    """Run the series: ``01_pretraining`` first, then every other notebook (sorted) with its
    ``checkpoint`` parameter pointing at ``<out>/01_pretraining/checkpoint``.

    ``parameters`` apply to every notebook that declares them (a name no notebook declares is an
    error). All notebooks are validated before the first one starts; then ``before_execute(plans)``
    (the CLI's cost table and ``--yes`` gate) may stop the series (False: nothing runs)."""
    notebooks = find_notebooks(notebook_dir)
    if not notebooks:
        raise ParameterError(f"no notebooks found in {os.fspath(notebook_dir)!r}")
    notebooks.sort(key=lambda p: (p.stem != PRETRAINING_STEM, p.name))
    out = Path(out).expanduser().resolve()
    parameters = dict(parameters or {})
    declared = {nb: read_parameters(nb) for nb in notebooks}
    unknown = [n for n in parameters if not any(n in d for d in declared.values())]
    if unknown:
        valid = sorted(set().union(*declared.values()) - {"output_dir"})
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for --all; valid: {', '.join(valid)}"
        )
    has_pretraining = notebooks[0].stem == PRETRAINING_STEM
    checkpoint = out / PRETRAINING_STEM / CHECKPOINT_SUBPATH
    plans = []
    for nb in notebooks:
        own = {k: v for k, v in parameters.items() if k in declared[nb]}
        if has_pretraining and nb.stem != PRETRAINING_STEM and "checkpoint" in declared[nb] and "checkpoint" not in own:
            own["checkpoint"] = str(checkpoint)
        plans.append(
            plan_run(
                nb,
                own,
                profile=profile,
                out=out / nb.stem,
                kernel=kernel,
                pending=[checkpoint] if has_pretraining else (),
                check_kernel=check_kernel,
            )
        )
    if before_execute is not None and before_execute(plans) is False:
        return []
    results = []
    for plan in plans:
        if echo:
            echo(f"running {plan.notebook.name} -> {plan.output_dir}")
        if (
            plan.notebook.stem != PRETRAINING_STEM
            and has_pretraining
            and plan.parameters.get("checkpoint") == str(checkpoint)
        ):
            if not checkpoint.exists():
                raise NotebookExecutionError(
                    f"{PRETRAINING_STEM}.ipynb finished but wrote no checkpoint at {checkpoint}; "
                    f"{plan.notebook.name} and the following notebooks need it"
                )
        results.append(_execute(plan, progress=progress, log_output=log_output, prepare_only=False))
    return results


# --------------------------------------------------------------------------- cost
def estimate_costs(plans: Sequence[RunPlan], profile: str | os.PathLike | Mapping | None = None):
    """:func:`jetlab.plan.estimate` of validated plans: each notebook's defaults, then the plan's
    parameters (profile and ``-p``); the profile's ``fetch`` names the subsets to size."""
    from jetlab.plan import estimate

    runs = []
    for plan in plans:
        params = {k: p.default for k, p in read_parameters(plan.notebook).items()}
        params.update(plan.parameters)
        runs.append((plan.notebook.stem, params))
    return estimate(runs, fetch=profile_fetch(profile))


def gate_on_cost(
    plans: Sequence[RunPlan],
    profile: str | os.PathLike | Mapping | None = None,
    *,
    yes: bool = False,
    echo=None,
):
    """Print the cost table (``echo``), then refuse (:class:`ParameterError`, nothing has run) a run
    estimated above :data:`jetlab.plan.CONFIRM_ABOVE_GPU_HOURS` H100 GPU-hours without ``yes``, or
    one that would read other data than its profile names (:func:`jetlab.plan.check_release`)."""
    from jetlab.plan import CONFIRM_ABOVE_GPU_HOURS, check_release, format_plan, needs_confirmation

    costs = estimate_costs(plans, profile)
    if echo:
        echo(format_plan(costs, profile=profile))
    problems = check_release(profile_fetch(profile))
    if problems:
        raise ParameterError("; ".join(problems))
    if needs_confirmation(costs) and not yes:
        total = sum(c.h100_gpu_hours for c in costs)
        raise ParameterError(
            f"this run is estimated at {total:,.1f} H100 GPU-hours (over {CONFIRM_ABOVE_GPU_HOURS:g}); "
            "nothing was started. Read the plan above and run again with --yes to start it, or choose "
            "a smaller profile (gpu-hour: about one GPU-hour per notebook)"
        )
    return costs


# --------------------------------------------------------------------------- data preparation
#: a notebook that names no ``dataset`` parameter but reads this generator (the quickstart)
_IMPLICIT_DATASET = {"00_quickstart": "jetclass-mini"}
#: notebook parameter -> generator option of :func:`jetlab.data.sources.resolve`
_GENERATOR_OPTIONS = {"file_signal_fraction": "signal_fraction"}


def notebook_data_plan(
    notebook_dir: str | os.PathLike = "notebooks", profile: str | os.PathLike | Mapping | None = None
) -> list[dict[str, Any]]:
    """The generated (offline) datasets the series reads with its default or ``profile`` parameters.

    One entry per distinct file: ``{"dataset", "n", "seed", "options", "notebooks"}``, where ``n``
    is the notebook's ``n_jets`` (or ``n_events``) and ``options`` the generator options it
    passes (``file_signal_fraction`` -> ``signal_fraction``). Downloaded datasets and
    non-positive sizes are skipped: they are not generated."""
    generators, _ = known_datasets()
    plan: dict[tuple, dict[str, Any]] = {}
    for nb in find_notebooks(notebook_dir):
        params = {k: p.default for k, p in read_parameters(nb).items()}
        params.update(profile_parameters(profile, nb) if profile is not None else {})
        dataset = params.get("dataset", _IMPLICIT_DATASET.get(nb.stem))
        n = params.get("n_jets", params.get("n_events"))
        if dataset not in generators or not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            continue
        options = {kw: params[p] for p, kw in _GENERATOR_OPTIONS.items() if p in params}
        seed = int(params.get("seed", 0))
        key = (dataset, n, seed, tuple(sorted(options.items())))
        entry = plan.setdefault(key, {"dataset": dataset, "n": n, "seed": seed, "options": options, "notebooks": []})
        entry["notebooks"].append(nb.name)
    return [plan[k] for k in sorted(plan, key=lambda k: (k[0], k[1], k[2], repr(k[3])))]


def prepare_notebook_data(
    notebook_dir: str | os.PathLike = "notebooks",
    profile: str | os.PathLike | Mapping | None = None,
    *,
    pretrain: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    echo=print,
) -> dict[str, Any]:
    """Generate every dataset of :func:`notebook_data_plan` into the cache, and (``pretrain``)
    resolve ``checkpoint="auto"``: the shipped foundation model, or, in an installation without
    it, the fallback tiny model pretrained once.

    Binder's ``postBuild`` calls this so a launched session opens with its data ready. Returns
    ``{"files": [paths], "checkpoint": path or None}``; files already cached are reused."""
    from jetlab.data.sources import resolve

    files: list[Path] = []
    for entry in notebook_data_plan(notebook_dir, profile):
        if echo:
            echo(
                f"dataset {entry['dataset']}: {entry['n']} rows, seed {entry['seed']}"
                + (f", {entry['options']}" if entry["options"] else "")
                + f" (for {', '.join(entry['notebooks'])})"
            )
        files.extend(
            resolve(
                entry["dataset"],
                n_jets=entry["n"],
                seed=entry["seed"],
                cache_dir=cache_dir,
                progress=progress,
                **entry["options"],
            ).files()
        )
    checkpoint = None
    if pretrain:
        from jetlab.tasks.checkpoint_resolver import resolve_checkpoint

        checkpoint = resolve_checkpoint(
            "auto", train_if_missing=True, cache_dir=cache_dir, device="cpu", progress=progress
        )
        if echo:
            echo(f"checkpoint='auto' resolves to {checkpoint}")
    return {"files": files, "checkpoint": checkpoint}
