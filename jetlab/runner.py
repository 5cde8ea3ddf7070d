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
end under papermill) and a heartbeat line during long silent steps (:class:`RunProgress`).
"""

from __future__ import annotations

import ast
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = [
    "DEFAULT_KERNEL",
    "DEFAULT_OUTPUT_ROOT",
    "NotebookExecutionError",
    "NotebookParameter",
    "ParameterError",
    "RunPlan",
    "RunResult",
    "find_notebooks",
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
DEFAULT_OUTPUT_ROOT = "jetlab_output"
PROFILE_DIR = Path(__file__).parent / "profiles"
#: The notebook whose output (``<out>/01_pretraining/checkpoint``) feeds the others in ``--all``.
PRETRAINING_STEM = "01_pretraining"
CHECKPOINT_SUBPATH = "checkpoint"
#: Used only when jetlab.data.generate / jetlab.data.manifests cannot be imported.
_FALLBACK_GENERATORS = ("jetclass-mini", "toptag-mini", "zjets-mini", "lhco-mini")
_FALLBACK_MANIFESTS = ("jetclass", "atlas_toptag", "omnifold_zjets", "lhco_rnd", "aspen_open_jets")
_NOT_A_PATH = ("auto", "", "none")  # see jetlab.notebook.resolve_checkpoint


class ParameterError(ValueError):
    """A notebook parameter (or profile) is invalid; raised before any execution starts."""


class NotebookExecutionError(RuntimeError):
    """A notebook cell raised; the executed notebook with the traceback was still written."""

    def __init__(self, message: str, executed: Path | None = None):
        super().__init__(message)
        self.executed = executed


@dataclass(frozen=True)
class NotebookParameter:
    """One assignment of a ``parameters`` cell. If its value is not a Python literal,
    ``literal`` is False, ``default`` is None and any type is accepted for it."""

    name: str
    default: Any
    line: int
    literal: bool = True

    @property
    def expected(self) -> str | None:
        """Human name of the accepted type, or None when any type is accepted."""
        if not self.literal or self.default is None:
            return None
        return _type_name(self.default)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


# --------------------------------------------------------------------------- reading notebooks
def _load(notebook: str | os.PathLike):
    import nbformat

    path = Path(notebook)
    if not path.is_file():
        raise ParameterError(f"notebook {os.fspath(notebook)!r} does not exist")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # malformed JSON / not a notebook
        raise ParameterError(f"cannot read notebook {path}: {exc}") from exc


def read_parameters(notebook: str | os.PathLike) -> dict[str, NotebookParameter]:
    """Parse the notebook's ``parameters`` cell with :mod:`ast` (no code is executed).

    Only ``name = value`` and ``name: type = value`` statements are allowed; values that are
    not Python literals are accepted but not type-checked."""
    nb = _load(notebook)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ParameterError(f"{notebook}: no cell is tagged 'parameters' (papermill needs exactly one)")
    if len(cells) > 1:
        raise ParameterError(f"{notebook}: {len(cells)} cells are tagged 'parameters'; keep exactly one")
    source = cells[0].source
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(f"{notebook}: parameters cell line {exc.lineno}: {exc.msg}") from exc
    params: dict[str, NotebookParameter] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a bare string used as a comment
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            raise ParameterError(
                f"{notebook}: parameters cell line {node.lineno}: only simple assignments "
                f"'name = value' are allowed, got {ast.unparse(node)!r}"
            )
        try:
            params[name] = NotebookParameter(name, ast.literal_eval(value), node.lineno)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            params[name] = NotebookParameter(name, None, node.lineno, literal=False)
    return params


def find_notebooks(directory: str | os.PathLike = "notebooks") -> list[Path]:
    """The notebooks of a series, sorted by name (``_``-prefixed and checkpoint copies skipped)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ParameterError(f"notebook directory {os.fspath(directory)!r} does not exist")
    return sorted(p for p in directory.glob("*.ipynb") if not p.name.startswith(("_", ".")))


# --------------------------------------------------------------------------- values and types
def parse_cli_value(text: str) -> Any:
    """Interpret a ``-p NAME VALUE`` string like papermill: True/False/None, int, float, then
    any Python literal (lists, dicts, quoted strings); otherwise the text itself."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


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
    got = _type_name(value)
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
    """(generator names, manifest dataset names) that a ``dataset`` parameter may name."""
    try:
        from jetlab.data.generate import GENERATORS

        generators = sorted(GENERATORS)
    except ImportError:
        generators = list(_FALLBACK_GENERATORS)
    try:
        from jetlab.data.manifests import list_datasets

        manifests = sorted(list_datasets())
    except ImportError:
        manifests = list(_FALLBACK_MANIFESTS)
    return generators, manifests


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
        elif _is_checkpoint(name) and isinstance(value, (str, os.PathLike)) and str(value).strip().lower() not in _NOT_A_PATH:
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


# --------------------------------------------------------------------------- profiles
def list_profiles() -> list[str]:
    """Names of the profiles shipped in ``jetlab/profiles``."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(profile: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """A profile by name (``cpu-quick``, ``gpu-full``, ``ci-tiny``) or a path to a YAML file
    mapping notebook stem -> {parameter: value}."""
    import yaml

    candidate = Path(profile)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        path = candidate
        if not path.is_file():
            raise ParameterError(f"profile file {os.fspath(profile)!r} does not exist")
    else:
        path = PROFILE_DIR / f"{profile}.yaml"
        if not path.is_file():
            raise ParameterError(f"unknown profile {os.fspath(profile)!r}; available: {', '.join(list_profiles())}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"profile {path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"profile {path}: expected a mapping notebook-stem -> parameters, got {type(data).__name__}")
    for stem, params in data.items():
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise ParameterError(f"profile {path}: entry {stem!r} must map parameter names to values")
    return {str(k): dict(v) for k, v in data.items()}


def profile_parameters(profile: str | os.PathLike | Mapping | None, notebook: str | os.PathLike) -> dict[str, Any]:
    """The parameters a profile sets for one notebook (empty if the profile has no entry)."""
    if profile is None:
        return {}
    data = profile if isinstance(profile, Mapping) else load_profile(profile)
    return dict(data.get(Path(notebook).stem, {}))


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


#: seconds without any output after which ``jetlab run`` says which cell is still running
HEARTBEAT_SECONDS = 20.0
#: a progress bar redrawn in place (``\\r``) is written as a new line at most this often when
#: the terminal is not a TTY (CI logs, ``| tee``), so a log shows the stage without flooding
BAR_LINE_SECONDS = 10.0
#: the kernel's own tqdm redraw interval in headless runs (fewer messages, same information)
KERNEL_TQDM_MININTERVAL = "1"
#: run at kernel start by ``jetlab run``: the library's ``tqdm.auto`` bars become text bars
#: (a Jupyter widget bar has no front end in papermill, so its stage would never be seen)
KERNEL_STARTUP_LINE = "__import__('jetlab.runner').runner._kernel_text_progress()"


def _kernel_text_progress() -> None:
    """In a headless kernel: make ``tqdm.auto`` (and ``tqdm.autonotebook``) the plain text bar.

    The library imports ``from tqdm.auto import tqdm`` when a bar starts, so replacing the module
    attributes is enough; the text goes to the kernel's stderr stream, which ``jetlab run``
    forwards to the terminal and which is stored in the executed notebook."""
    import tqdm.auto
    import tqdm.autonotebook
    import tqdm.std

    for module in (tqdm.auto, tqdm.autonotebook):
        module.tqdm, module.trange = tqdm.std.tqdm, tqdm.std.trange


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def _visible(line: str) -> str:
    """What a terminal shows of a line redrawn with carriage returns: its last non-empty part."""
    parts = line.split("\r")
    return next((part for part in reversed(parts) if part.strip()), "")


def _same_bar_state(a: str, b: str) -> bool:
    """Two renderings of a tqdm bar at the same count (they differ only in the rate/time part)."""
    return a.split(" [")[0] == b.split(" [")[0]


def _cell_label(source: str, tags: Iterable[str] = ()) -> str:
    """A cell as one short line: its tag if it is the parameters cell, else its first code line."""
    if "injected-parameters" in tags:
        return "(injected parameters)"
    if "parameters" in tags:
        return "(parameters)"
    for line in source.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line if len(line) <= 72 else line[:71] + "…"
    return "(comment only)"


class RunProgress:
    """What ``jetlab run`` prints while a notebook executes (to ``stream``, default stderr).

    * one line per code cell: ``[02_top_tagging 1:05] cell 5/14: <first code line>``, plus the
      cell's duration when it took longer than ``heartbeat`` seconds;
    * the kernel's stdout/stderr as it arrives (indented): the library's stage messages and
      progress bars (data generation, fallback pretraining, training epochs). On a TTY bars
      redraw in place; elsewhere a redrawn bar becomes a new line at most every ``bar_every`` s;
    * after ``heartbeat`` seconds without any of the above, a line naming the running cell, its
      elapsed time and the last output line, so a long silent step is never mistaken for a hang.

    papermill calls :meth:`cell_start` / :meth:`cell_done` (nbclient hooks) and writes kernel
    output through :attr:`stdout` / :attr:`stderr`; a daemon thread does the heartbeat.
    """

    def __init__(self, notebook: str, stream=None, *, cells: bool = True, heartbeat: float | None = None,
                 bar_every: float | None = None) -> None:
        import threading

        self.name = Path(notebook).stem
        self.stream = sys.stderr if stream is None else stream
        self.cells = cells
        self.heartbeat = float(HEARTBEAT_SECONDS if heartbeat is None else heartbeat)
        self.bar_every = float(BAR_LINE_SECONDS if bar_every is None else bar_every)
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self.n_code = 0
        self._numbers: dict[int, int] = {}
        self._lock = threading.RLock()
        self._start = self._last_write = time.monotonic()
        self._cell: tuple[int, str, float] | None = None  # (number, label, start)
        self._last_line = ""
        self._partial = {"stdout": "", "stderr": ""}
        self._bar_written = {"stdout": -float("inf"), "stderr": -float("inf")}
        self._shown = {"stdout": "", "stderr": ""}
        self._at_line_start = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stdout = _StreamSink(self, "stdout")
        self.stderr = _StreamSink(self, "stderr")

    # ------------------------------------------------------------------ lifecycle
    def start(self, notebook=None, **_: Any) -> "RunProgress":
        """Number the code cells of the notebook as executed (parameters injected) and start the
        heartbeat thread (nbclient's ``on_notebook_start`` hook)."""
        import threading

        nb = notebook
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
        self._numbers = {i: k + 1 for k, i in enumerate(code)}
        self.n_code = len(code)
        self._start = self._last_write = time.monotonic()
        if self.cells:
            self.message(f"kernel ready; {self.n_code} code cells")
            self._thread = threading.Thread(target=self._beat, name=f"jetlab-progress-{self.name}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for name in self._partial:
                self._flush_partial(name)
            if not self._at_line_start:
                self._write("\n")

    # ------------------------------------------------------------------ nbclient hooks
    def cell_start(self, cell, cell_index: int, **_: Any) -> None:
        if cell_index not in self._numbers:
            return
        label = _cell_label(cell.source, cell.get("metadata", {}).get("tags", []))
        with self._lock:
            self._cell = (self._numbers[cell_index], label, time.monotonic())
            self._last_line = ""
            if self.cells:
                self.message(f"cell {self._numbers[cell_index]}/{self.n_code}: {label}")

    def cell_done(self, cell, cell_index: int, **_: Any) -> None:
        with self._lock:
            for name in self._partial:
                self._flush_partial(name)
            current, self._cell = self._cell, None
            if self.cells and current is not None and current[0] == self._numbers.get(cell_index):
                took = time.monotonic() - current[2]
                if took >= self.heartbeat:
                    self.message(f"cell {current[0]}/{self.n_code} done in {_clock(took)}")

    # ------------------------------------------------------------------ output
    def _write(self, text: str) -> None:
        if not text:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not fail the run
            return
        self._at_line_start = text.endswith("\n")
        self._last_write = time.monotonic()

    def message(self, message: str) -> None:
        """One progress line of the runner itself, always on a line of its own."""
        with self._lock:
            prefix = "" if self._at_line_start else "\n"
            self._write(f"{prefix}[{self.name} {_clock(time.monotonic() - self._start)}] {message}\n")

    def kernel_output(self, name: str, text: str) -> None:
        """Text the kernel wrote to ``name`` (stdout/stderr), forwarded as it arrives."""
        if not text:
            return
        with self._lock:
            for line in reversed(text.replace("\r", "\n").splitlines()):
                if line.strip() and not line.lstrip().startswith("#"):  # not a banner (FastJet's is all '#')
                    self._last_line = line.strip()
                    break
            if self.tty:  # the terminal redraws bars itself
                self._write(text)
                return
            *lines, rest = (self._partial[name] + text).split("\n")
            for line in lines:
                shown = line.startswith("\r") and _same_bar_state(_visible(line), self._shown[name])
                if _visible(line).strip() and not shown:
                    self._write(f"  {_visible(line)}\n")
            self._partial[name] = rest
            if "\r" in rest:  # a bar redrawn in place: show its state every bar_every seconds
                state, now = _visible(rest), time.monotonic()
                if state.strip() and now - self._bar_written[name] >= self.bar_every:
                    self._write(f"  {state}\n")
                    self._bar_written[name], self._shown[name] = now, state
                    self._partial[name] = "\r" + state  # marks it as shown

    def _flush_partial(self, name: str) -> None:
        rest, self._partial[name] = self._partial[name], ""
        if not self.tty and _visible(rest).strip() and not (rest.startswith("\r") and _same_bar_state(_visible(rest), self._shown[name])):
            self._write(f"  {_visible(rest)}\n")

    def _beat(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                now = time.monotonic()
                if self._cell is None or now - self._last_write < self.heartbeat:
                    continue
                number, label, started = self._cell
                last = f"; last output: {self._last_line[:100]}" if self._last_line else ""
                self.message(f"cell {number}/{self.n_code} still running ({_clock(now - started)} in this cell{last})")


class _StreamSink:
    """File-like object papermill writes the kernel's stream output to (``stdout_file``)."""

    def __init__(self, progress: RunProgress, name: str) -> None:
        self.progress, self.name = progress, name

    def write(self, text: str) -> int:
        self.progress.kernel_output(self.name, text)
        return len(text)

    def flush(self) -> None:
        pass


def _kernel_manager_class(log):
    """An AsyncKernelManager whose kernel process writes its own stdout/stderr to ``log``.

    ipykernel already sends everything a cell prints (Python and C level) over ZMQ, which
    ``jetlab run`` forwards; what the process itself writes is its start-up chatter (the
    "Kernel is running over TCP without encryption" warning) and a second copy of C-level
    output (FastJet's banner). It goes to ``log``, shown only if the run fails."""
    from jupyter_client import AsyncKernelManager

    class _LoggedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super().start_kernel(**kw)

    return _LoggedKernelManager


def _is_ipykernel(kernel: str) -> bool:
    """Whether the kernel is ipykernel (which takes the ``--IPKernelApp`` start-up options)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec(kernel).argv
    except NoSuchKernel:
        return False
    return any("ipykernel" in str(a) for a in argv)


def _tail(log, lines: int = 30) -> str:
    try:
        log.flush()
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


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
        reporter = RunProgress(plan.notebook.name, None if progress in (True, False) else progress,
                               cells=bool(progress))
    hooks: dict[str, Any] = {}
    if reporter is not None:
        if reporter.cells:
            reporter.message(f"starting the {plan.kernel} kernel -> {plan.output_dir}")
        hooks = dict(stdout_file=reporter.stdout, stderr_file=reporter.stderr, on_notebook_start=reporter.start,
                     on_cell_execute=reporter.cell_start, on_cell_executed=reporter.cell_done)
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
            kernel_manager_class=_kernel_manager_class(kernel_log),
            extra_arguments=[f"--IPKernelApp.exec_lines={KERNEL_STARTUP_LINE}"] if _is_ipykernel(plan.kernel) else [],
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
        tail = _tail(kernel_log)
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
) -> RunResult:
    """Validate, then execute ``notebook`` with papermill into ``out``.

    ``parameters`` override the ``profile``'s entry for this notebook; strings (as from the
    command line) are parsed against the declared types. ``out`` defaults to
    ``jetlab_output/<stem>``. With ``prepare_only`` the parameterised notebook is written but
    not executed (used to hand a notebook to nbval)."""
    plan = plan_run(notebook, parameters, profile=profile, out=out, kernel=kernel, check_kernel=not prepare_only)
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
) -> list[RunResult]:
    """Run the series: ``01_pretraining`` first, then every other notebook (sorted) with its
    ``checkpoint`` parameter pointing at ``<out>/01_pretraining/checkpoint``.

    ``parameters`` apply to every notebook that declares them (a name no notebook declares is an
    error). All notebooks are validated before the first one starts."""
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
        raise ParameterError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for --all; valid: {', '.join(valid)}")
    has_pretraining = notebooks[0].stem == PRETRAINING_STEM
    checkpoint = out / PRETRAINING_STEM / CHECKPOINT_SUBPATH
    plans = []
    for nb in notebooks:
        own = {k: v for k, v in parameters.items() if k in declared[nb]}
        if has_pretraining and nb.stem != PRETRAINING_STEM and "checkpoint" in declared[nb] and "checkpoint" not in own:
            own["checkpoint"] = str(checkpoint)
        plans.append(
            plan_run(nb, own, profile=profile, out=out / nb.stem, kernel=kernel, pending=[checkpoint] if has_pretraining else ())
        )
    results = []
    for plan in plans:
        if echo:
            echo(f"running {plan.notebook.name} -> {plan.output_dir}")
        if plan.notebook.stem != PRETRAINING_STEM and has_pretraining and plan.parameters.get("checkpoint") == str(checkpoint):
            if not checkpoint.exists():
                raise NotebookExecutionError(
                    f"{PRETRAINING_STEM}.ipynb finished but wrote no checkpoint at {checkpoint}; "
                    f"{plan.notebook.name} and the following notebooks need it"
                )
        results.append(_execute(plan, progress=progress, log_output=log_output, prepare_only=False))
    return results


# --------------------------------------------------------------------------- data preparation
#: a notebook that names no ``dataset`` parameter but reads this generator (the quickstart)
_IMPLICIT_DATASET = {"00_quickstart": "jetclass-mini"}
#: notebook parameter -> keyword of :func:`jetlab.data.cache.dataset_file` (the generator option)
_GENERATOR_OPTIONS = {"file_signal_fraction": "signal_fraction"}


def notebook_data_plan(notebook_dir: str | os.PathLike = "notebooks",
                       profile: str | os.PathLike | Mapping | None = None) -> list[dict[str, Any]]:
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


def prepare_notebook_data(notebook_dir: str | os.PathLike = "notebooks",
                          profile: str | os.PathLike | Mapping | None = None, *,
                          pretrain: bool = True, cache_dir: str | os.PathLike | None = None,
                          progress: bool = True, echo=print) -> dict[str, Any]:
    """Generate every dataset of :func:`notebook_data_plan` into the cache, and (``pretrain``)
    the fallback tiny pretrained model that notebooks 02-04 use when notebook 01 has not run.

    Binder's ``postBuild`` calls this so a launched session opens with its data ready. Returns
    ``{"files": [paths], "checkpoint": path or None}``; files already cached are reused."""
    from jetlab.data.cache import dataset_file

    files = []
    for entry in notebook_data_plan(notebook_dir, profile):
        if echo:
            echo(f"dataset {entry['dataset']}: {entry['n']} rows, seed {entry['seed']}"
                 + (f", {entry['options']}" if entry["options"] else "") + f" (for {', '.join(entry['notebooks'])})")
        files.append(dataset_file(entry["dataset"], entry["n"], seed=entry["seed"], cache_dir=cache_dir,
                                  progress=progress, **entry["options"]))
    checkpoint = None
    if pretrain:
        from jetlab.tasks.common import resolve_checkpoint

        checkpoint = resolve_checkpoint("auto", train_if_missing=True, cache_dir=cache_dir, device="cpu", progress=progress)
        if echo:
            echo(f"pretrained fallback checkpoint: {checkpoint}")
    return {"files": files, "checkpoint": checkpoint}


def _main() -> int:  # pragma: no cover - convenience: python -m jetlab.runner NOTEBOOK
    from jetlab.cli.main import main

    return main(["run", *sys.argv[1:]])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
