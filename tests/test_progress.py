"""What a person sees while notebooks run: ``jetlab run``'s per-cell progress, the kernel's stage
output and heartbeat (and ``--quiet``), and the notice before a dataset is generated the first
time."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from jetlab import runner
from jetlab.data import cache

CELLS = [
    # a library-style stage bar: tqdm.auto, as jetlab.simulator.generate and jetlab.train use it
    'from tqdm.auto import tqdm\nfor _ in tqdm(range(n), desc="stage A"):\n    pass\nprint("after the bar", n)',
    # C-level output (like FastJet's banner): must reach the terminal once, not twice. ipykernel
    # forwards it from a pipe-reading thread, so the cell waits for that before it ends
    'import ctypes, time\nlibc = ctypes.CDLL(None)\nlibc.puts(b"written by C code")\nlibc.fflush(None)\n'
    'time.sleep(2)\nprint("end")',
]


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('n = 5\noutput_dir = "out"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# progress"), params] + [nbformat.v4.new_code_cell(c) for c in CELLS]
    nbformat.write(nb, path)
    return path


def _jetlab_run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "jetlab.cli.main", "run", *args]
    # ipykernel does not capture C-level output when it sees PYTEST_CURRENT_TEST; run as a user does
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_jetlab_run_shows_cells_stages_and_outputs_and_quiet_shows_none(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "prog.ipynb")
    loud = _jetlab_run(str(nb), "-p", "n", "7", "--out", str(tmp_path / "loud"), cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    err = loud.stderr
    # 4 code cells once papermill has injected the parameters: parameters, injected, 2 of ours
    for line in ("[prog 0:00] starting the python3 kernel -> ", "kernel ready; 4 code cells", "cell 1/4: (parameters)", "cell 2/4: (injected parameters)",
                 "cell 3/4: from tqdm.auto import tqdm", "cell 4/4: import ctypes"):
        assert line in err, f"{line!r} missing from:\n{err}"
    assert "stage A: 100%" in err and "7/7" in err  # the kernel's bar reached the terminal as text
    assert "after the bar 7" in err
    assert err.count("written by C code") == 1
    assert "without encryption" not in err + loud.stdout
    assert "prog.ipynb: executed in" in loud.stdout and "cell 1/4" not in loud.stdout

    # the executed notebook keeps the bar as one text output in its final state (no widget)
    executed = nbformat.read(tmp_path / "loud" / "prog.ipynb", as_version=4)
    bar_cell = executed.cells[3]
    assert [o.output_type for o in bar_cell.outputs].count("display_data") == 0
    stderr = [o.text for o in bar_cell.outputs if o.output_type == "stream" and o.name == "stderr"]
    assert len(stderr) == 1 and "7/7" in stderr[0] and "\r" not in stderr[0]

    quiet = _jetlab_run(str(nb), "--quiet", "--out", str(tmp_path / "quiet"), cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    for text in ("cell ", "stage A", "after the bar", "written by C code", "without encryption", "[prog"):
        assert text not in quiet.stderr + quiet.stdout, f"--quiet printed {text!r}"
    assert quiet.stdout.startswith("prog.ipynb: executed in")


def _cell(source: str):
    return nbformat.v4.new_code_cell(source)


def test_heartbeat_names_the_running_cell_and_its_last_output() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("x"), _cell("a = 1"), _cell("# load\ntrain(model)")]
    out = io.StringIO()
    prog = runner.RunProgress("demo.ipynb", out, heartbeat=0.2).start(notebook=nb)
    try:
        prog.cell_start(nb.cells[2], 2)
        prog.kernel_output("stdout", "jetlab: pretraining a tiny PET\n")
        prog.kernel_output("stdout", "#-------\n#  FastJet release 3.5.2\n#-------\n")  # a banner is no stage
        deadline = time.monotonic() + 60
        while "still running" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        prog.close()
    text = out.getvalue()
    assert "2 code cells" in text and "cell 2/2: train(model)" in text
    assert "  jetlab: pretraining a tiny PET\n" in text
    beat = next(line for line in text.splitlines() if "still running" in line)
    assert beat.startswith("[demo ") and "cell 2/2 still running" in beat
    assert "last output: jetlab: pretraining a tiny PET" in beat


def test_redrawn_bar_becomes_throttled_lines_off_a_tty() -> None:
    out = io.StringIO()  # not a TTY
    prog = runner.RunProgress("nb.ipynb", out, cells=False, bar_every=3600)
    for k in range(1, 11):
        prog.kernel_output("stderr", f"\rtrain: {10 * k:3d}%|#| {k}/10 [00:0{k % 10}<00:00]")
    prog.kernel_output("stderr", "\rtrain: 100%|#| 10/10 [00:11<00:00]\n")
    prog.kernel_output("stdout", "epoch 1: loss 0.5\n")
    prog.close()
    # the first state at once, then (throttled) nothing until the bar finishes with its final state
    assert out.getvalue().splitlines() == ["  train:  10%|#| 1/10 [00:01<00:00]", "  train: 100%|#| 10/10 [00:11<00:00]",
                                           "  epoch 1: loss 0.5"]


def test_finished_bar_not_repeated_when_its_last_state_was_shown() -> None:
    out = io.StringIO()
    prog = runner.RunProgress("nb.ipynb", out, cells=False, bar_every=0)
    prog.kernel_output("stderr", "\rgen: 50%| 1/2 [00:01<00:01]")
    prog.kernel_output("stderr", "\rgen: 100%| 2/2 [00:02<00:00]")
    prog.kernel_output("stderr", "\rgen: 100%| 2/2 [00:02<00:00, 1.0it/s]\n")  # tqdm's close: same count
    prog.close()
    assert out.getvalue().splitlines() == ["  gen: 50%| 1/2 [00:01<00:01]", "  gen: 100%| 2/2 [00:02<00:00]"]


# --------------------------------------------------------------------------- first-run notice
def test_estimate_is_rate_times_rows_over_parallel_chunks() -> None:
    rate = cache.SECONDS_PER_ROW["lhco-mini"]
    # 4000 events, 10% signal, 500-row chunks: 400 signal (1 chunk) + 3600 background (8 chunks)
    assert cache.estimate_seconds("lhco-mini", 4000, workers=2) == pytest.approx(rate * 4000 / 2)
    assert cache.estimate_seconds("lhco-mini", 4000, workers=1) == pytest.approx(rate * 4000)
    # 300 events = one background and one signal chunk: 4 workers cannot do better than 2
    assert cache.estimate_seconds("lhco-mini", 300, workers=4) == pytest.approx(rate * 300 / 2)
    rate = cache.SECONDS_PER_ROW["jetclass-mini"]
    # one class only: a single chunk whatever the workers
    assert cache.estimate_seconds("jetclass-mini", 100, workers=8, classes=("QCD",)) == pytest.approx(rate * 100)


def test_notice_wording() -> None:
    rate = cache.SECONDS_PER_ROW["lhco-mini"]
    n = int(round(6 * 60 / rate))  # six minutes with one worker
    text = cache.generation_notice("lhco-mini", n, workers=1, path=Path("/c/x.h5"))
    assert text == (f"jetlab: generating lhco-mini, {n} dijet events, about 6 minutes on this machine (1 worker); "
                    "cached afterwards in /c/x.h5")
    assert "about 10 s" in cache.generation_notice("toptag-mini", 10, workers=1)
    assert "events per generator setup" in cache.generation_notice("zjets-mini", 10, workers=1)


def jetlab_messages(caplog) -> list[str]:
    """The messages jetlab's loggers emitted so far (the CLI and notebooks show them as plain lines)."""
    return [r.getMessage() for r in caplog.records if r.name.startswith("jetlab")]


def test_fallback_pretraining_is_announced_before_it_starts_and_not_when_cached(tmp_path: Path, caplog,
                                                                              monkeypatch, without_shipped_model) -> None:
    from jetlab.model.checkpoint import CARD_FILE, WEIGHTS_FILE
    from jetlab.tasks import checkpoint_resolver as checkpoints

    caplog.set_level(logging.INFO, logger="jetlab")
    logged_before = []

    def pretrain(dataset, work, **kw):  # stands in for minutes of training: what was logged by then, and its files
        logged_before.append(jetlab_messages(caplog))
        (Path(work) / "model").mkdir(parents=True)
        for name in (CARD_FILE, WEIGHTS_FILE):
            (Path(work) / "model" / name).write_text("{}")

    monkeypatch.setattr(checkpoints, "pretrain", pretrain)
    monkeypatch.delenv(checkpoints.CHECKPOINT_ENV, raising=False)
    rate = checkpoints.PRETRAIN_SECONDS_PER_JET_EPOCH
    n = int(round(7 * 60 / (rate * 3)))  # seven minutes at 3 epochs
    kw = dict(train_if_missing=True, n_jets=n, epochs=3, cache_dir=tmp_path / "cache", device="cpu")
    target = tmp_path / "cache" / "checkpoints" / f"pet-tiny-jetclass-mini-n{n}-s0-r{checkpoints.PRETRAIN_RECIPE_VERSION}"
    assert checkpoints.resolve_checkpoint("auto", tmp_path / "run", **kw) == target
    assert logged_before == [[f"jetlab: no pretrained checkpoint found; pretraining the fallback tiny PET once ({n} "
                              f"jetclass-mini jets x 3 epochs), about 7 minutes on this machine; cached afterwards "
                              f"in {target}"]]
    assert jetlab_messages(caplog)[1:] == [f"jetlab: pretrained checkpoint written to {target}"]
    caplog.clear()
    assert checkpoints.resolve_checkpoint("auto", tmp_path / "run", **kw) == target  # cached: silent, not retrained
    assert jetlab_messages(caplog) == [] and len(logged_before) == 1
    assert "about 10 s" in checkpoints.pretraining_notice(1, 1)


def test_first_generation_is_announced_and_a_cached_run_is_not(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="jetlab")
    kw = dict(cache_dir=tmp_path, workers=1, progress=False, classes=("Zqq",))
    path = cache.dataset_file("jetclass-mini", 12, seed=3, **kw)
    first, done = jetlab_messages(caplog)
    assert first.startswith("jetlab: generating jetclass-mini, 12 jets, about ")
    assert first.endswith(f"cached afterwards in {path}")
    assert re.fullmatch(r"jetlab: generated jetclass-mini in \d+:\d\d", done)
    caplog.clear()
    assert cache.dataset_file("jetclass-mini", 12, seed=3, **kw) == path
    assert jetlab_messages(caplog) == []
