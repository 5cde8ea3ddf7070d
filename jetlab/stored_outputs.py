"""Executed outputs stored in the committed notebooks (``jetlab run --in-place``).

Why: on GitHub, nbviewer or a fresh Binder a reader should see the figures and numbers before
running anything. The jupytext ``.py`` source holds no outputs; the ``.ipynb`` beside it takes the
outputs of an executed copy, cell by cell, after checking that both hold the same cells (a notebook
edited while it ran is refused, so stored outputs always belong to the code above them). To keep
the repository small only PNG images are kept (at most :data:`MAX_PNG_WIDTH` pixels wide), with
the text and HTML of printed metrics and tables; widget views, vector copies and execution
metadata are dropped. nbval (``tests/test_notebooks.py``) re-executes the cells marked
``# NBVAL_CHECK_OUTPUT`` and compares them with what is stored here.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

#: the MIME types kept in stored outputs (everything else, e.g. widget views or SVG, is dropped)
KEEP_MIMETYPES = ("image/png", "text/html", "text/markdown", "text/plain")
#: wider PNG outputs are downscaled to this width (pixels): legible on GitHub, ~tens of kB each
MAX_PNG_WIDTH = 800


def _shrink_png(data: str, max_width: int) -> str:
    """Downscale a base64 PNG to ``max_width`` pixels (aspect kept) and recompress it."""
    from PIL import Image

    img: Image.Image = Image.open(io.BytesIO(base64.b64decode(data)))
    if img.width > max_width:
        img = img.resize((max_width, round(img.height * max_width / img.width)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    small = base64.b64encode(buf.getvalue()).decode("ascii")
    return small if len(small) < len(data) else data


def _clean(output: Any, where: str, max_width: int) -> Any | None:
    """The part of one output worth storing, or None if nothing is."""
    import nbformat

    kind = output.get("output_type")
    if kind == "error":
        raise ValueError(
            f"{where}: the executed cell has an error output ({output.get('ename')}); "
            "fix the notebook before storing its outputs"
        )
    if kind == "stream":
        return nbformat.v4.new_output("stream", name=output["name"], text=output["text"])
    data = {k: v for k, v in output.get("data", {}).items() if k in KEEP_MIMETYPES}
    if "image/png" in data:
        data["image/png"] = _shrink_png(data["image/png"], max_width)
    if not set(data) - {"text/plain"} and kind == "display_data":
        return None  # only the repr of a figure or widget whose view was dropped
    if not data:
        return None
    if kind == "execute_result":
        return nbformat.v4.new_output(kind, data=data, execution_count=output.get("execution_count"))
    return nbformat.v4.new_output(kind, data=data)


def store_outputs(
    executed: str | os.PathLike,
    notebook: str | os.PathLike,
    *,
    profile: str | None = None,
    max_png_width: int = MAX_PNG_WIDTH,
) -> Path:
    """Copy the outputs of ``executed`` (a papermill run of ``notebook``) into ``notebook``.

    The cells must match one to one (papermill's injected-parameters cell aside): same types and
    sources, else ``ValueError`` names the first difference. The notebook's metadata records the
    ``profile`` and the jetlab version that produced the outputs. Written atomically."""
    import nbformat

    import jetlab
    from jetlab._io import atomic_path

    executed, notebook = Path(executed), Path(notebook)
    run = nbformat.read(executed, as_version=4)
    target = nbformat.read(notebook, as_version=4)
    ran = [c for c in run.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if len(ran) != len(target.cells):
        raise ValueError(
            f"store_outputs: {executed} has {len(ran)} cells but {notebook} has {len(target.cells)}; "
            f"was {notebook.name} edited while it ran? Run it again"
        )
    for i, (r, t) in enumerate(zip(ran, target.cells)):
        if (r.cell_type, r.source) != (t.cell_type, t.source):
            raise ValueError(
                f"store_outputs: cell {i} of {notebook} differs from the executed {executed} "
                f"({t.source.splitlines()[:1]} vs {r.source.splitlines()[:1]}); run it again"
            )
        if t.cell_type != "code":
            continue
        outs = [_clean(o, f"{notebook.name} cell {i}", max_png_width) for o in r.get("outputs", [])]
        t.outputs = [o for o in outs if o is not None]
        t.execution_count = r.get("execution_count")
        for key in ("execution", "papermill"):
            t.metadata.pop(key, None)
    target.metadata["jetlab"] = {"outputs": {"profile": profile, "jetlab": jetlab.__version__}}
    nbformat.validate(target)
    with atomic_path(notebook) as tmp:
        nbformat.write(target, tmp)
    return notebook
