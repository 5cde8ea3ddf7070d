"""The committed notebooks show a reader (GitHub, nbviewer, a fresh Binder) what a run gives before
anything is run: figures and printed results from one cpu-quick run (``jetlab run --all --profile
cpu-quick --in-place``), and the parameters that run used, matching the shipped profile."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from jetlab.notebook_params import load_profile

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: set by ``jetlab run --all`` rather than by the profile (the checkpoint notebook 01 wrote, the
#: per-notebook output directory)
SET_BY_THE_RUNNER = {"checkpoint", "output_dir"}


def _outputs(book):
    for cell in book.cells:
        if cell.cell_type == "code":
            yield from ((cell, o) for o in cell.get("outputs", []))


def _setup_record(book) -> str:
    cells = [c for c in book.cells if c.cell_type == "code" and "jnb.setup(" in c.source]
    assert len(cells) == 1, "one jnb.setup(...) cell per notebook"
    return "".join(o.get("text", "") for o in cells[0].get("outputs", []) if o.get("output_type") == "stream")


def test_every_notebook_is_checked():
    assert [p.stem for p in NOTEBOOKS] == sorted(load_profile("cpu-quick"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_holds_figures_from_its_cpu_quick_run(notebook: Path):
    from PIL import Image

    book = nbformat.read(notebook, as_version=4)
    assert not [o for _, o in _outputs(book) if o.get("output_type") == "error"]
    pngs = [o["data"]["image/png"] for _, o in _outputs(book) if "image/png" in o.get("data", {})]
    assert pngs, f"{notebook.name} stores no figure: run jetlab run --all --profile cpu-quick --in-place"
    for data in pngs:
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"), dtype=float)
        # a drawn figure, not an empty canvas: axes, lines and text leave dark pixels on white
        assert img.std() > 5 and (img < 128).mean() > 0.002, f"{notebook.name}: a blank figure"

    record = _setup_record(book)
    assert record.startswith("jetlab ") and "parameters:" in record, record[:500]
    profile = load_profile("cpu-quick")[notebook.stem]
    for name, value in profile.items():
        if name in SET_BY_THE_RUNNER:
            continue
        line = re.search(rf"^\s+{re.escape(name)}\s+= (.*)$", record, re.M)
        assert line is not None and line.group(1) == repr(value), (notebook.name, name, value, line and line.group(1))
