"""What ``jetlab run`` prints while a notebook executes: a line per code cell, the kernel's output
as it arrives (tqdm bars as text) and a heartbeat during long silent steps (:class:`RunProgress`);
the kernel process's own chatter goes to a log (:func:`logged_kernel_manager`, :func:`log_tail`).

Split from :mod:`jetlab.runner` (which re-exports :class:`RunProgress` and the constants) so the
runner reads as parameters -> plan -> execute, and this terminal bookkeeping on its own.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable

__all__ = [
    "BAR_LINE_SECONDS",
    "HEARTBEAT_SECONDS",
    "KERNEL_STARTUP_LINE",
    "KERNEL_TQDM_MININTERVAL",
    "RunProgress",
    "is_ipykernel",
    "kernel_text_progress",
    "log_tail",
    "logged_kernel_manager",
]

#: seconds without any output after which ``jetlab run`` says which cell is still running
HEARTBEAT_SECONDS = 20.0
#: a progress bar redrawn in place (``\\r``) is written as a new line at most this often when
#: the terminal is not a TTY (CI logs, ``| tee``), so a log shows the stage without flooding
BAR_LINE_SECONDS = 10.0
#: the kernel's own tqdm redraw interval in headless runs (fewer messages, same information)
KERNEL_TQDM_MININTERVAL = "1"
#: run at kernel start by ``jetlab run``: the library's ``tqdm.auto`` bars become text bars
#: (a Jupyter widget bar has no front end in papermill, so its stage would never be seen)
KERNEL_STARTUP_LINE = "__import__('jetlab.progress').progress.kernel_text_progress()"


def kernel_text_progress() -> None:
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
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


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

    def __init__(
        self,
        notebook: str,
        stream=None,
        *,
        cells: bool = True,
        heartbeat: float | None = None,
        bar_every: float | None = None,
    ) -> None:
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
        if (
            not self.tty
            and _visible(rest).strip()
            and not (rest.startswith("\r") and _same_bar_state(_visible(rest), self._shown[name]))
        ):
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


def logged_kernel_manager(log):
    """An AsyncKernelManager whose kernel process writes its own stdout/stderr to ``log``.

    ipykernel already sends everything a cell prints (Python and C level) over ZMQ, which
    ``jetlab run`` forwards; what the process itself writes is its start-up chatter (the
    "Kernel is running over TCP without encryption" warning) and a second copy of C-level
    output (FastJet's banner). It goes to ``log``, shown only if the run fails."""
    from jupyter_client import AsyncKernelManager

    class _LoggedKernelManager(AsyncKernelManager):
        # jupyter_client types start_kernel by KernelManager's sync wrapper; the async manager's is a coroutine
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super().start_kernel(**kw)

    return _LoggedKernelManager


def is_ipykernel(kernel: str) -> bool:
    """Whether the kernel is ipykernel (which takes the ``--IPKernelApp`` start-up options)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec(kernel).argv
    except NoSuchKernel:
        return False
    return any("ipykernel" in str(a) for a in argv)


def log_tail(log, lines: int = 30) -> str:
    """The last ``lines`` lines of the kernel log (empty if it cannot be read)."""
    try:
        log.flush()
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
