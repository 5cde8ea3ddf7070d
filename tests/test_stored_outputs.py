"""``jetlab run --in-place`` / :func:`jetlab.stored_outputs.store_outputs`: executed outputs stored in
the notebook beside its jupytext source, PNG only and downscaled, and never onto edited cells."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import jupytext
import nbformat
import pytest
from PIL import Image

from jetlab.cli.main import main as cli_main
from jetlab.stored_outputs import MAX_PNG_WIDTH, store_outputs

SOURCE = '''\
# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A pair

# %% tags=["parameters"]
n_jets = 100
output_dir = "jetlab_output/pair"

# %%
import jetlab.notebook as jnb

run = jnb.setup(dict(n_jets=n_jets, output_dir=output_dir))

# %% tags=["plot"]
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(20, 4), dpi=100)
ax.plot([0, 1], [0, n_jets])
jnb.save_figure(fig, "wide");

# %%
print("twice", 2 * n_jets)
'''


def _png(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _width(b64: str) -> int:
    return Image.open(io.BytesIO(base64.b64decode(b64))).width


def test_cli_in_place_stores_outputs_and_keeps_the_pair_in_sync(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    py = tmp_path / "pair.py"
    py.write_text(SOURCE)
    nb_path = tmp_path / "pair.ipynb"
    jupytext.write(jupytext.read(py), nb_path)
    before = nbformat.read(nb_path, as_version=4)
    assert all(not c.get("outputs") for c in before.cells if c.cell_type == "code")

    out = tmp_path / "out"
    assert cli_main(["run", str(nb_path), "-p", "n_jets", "21", "--out", str(out), "--in-place"]) == 0
    assert "outputs stored in" in capsys.readouterr().out

    stored = nbformat.read(nb_path, as_version=4)
    assert py.read_text() == SOURCE  # the source keeps no outputs
    cells = lambda nb: [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]  # noqa: E731
    assert cells(stored) == cells(jupytext.read(py)) == cells(before)  # no injected cell, same sources
    text = "".join(o.get("text", "") for c in stored.cells if c.cell_type == "code" for o in c.outputs)
    assert "twice 42" in text and "n_jets" in text  # the -p value (the default gives "twice 200")
    pngs = [o.data["image/png"] for c in stored.cells if c.cell_type == "code" for o in c.outputs
            if "image/png" in o.get("data", {})]
    assert len(pngs) == 1
    saved_width = Image.open(out / "wide.png").width
    assert saved_width > MAX_PNG_WIDTH and _width(pngs[0]) == MAX_PNG_WIDTH
    assert stored.metadata["jetlab"]["outputs"]["profile"] is None
    assert stored.metadata["jupytext"]["formats"] == "ipynb,py:percent"


def _executed_pair(tmp_path: Path, outputs: list) -> tuple[Path, Path]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("x = 1\nx")]
    target = tmp_path / "t.ipynb"
    nbformat.write(nb, target)
    injected = nbformat.v4.new_code_cell("x = 2")
    injected.metadata["tags"] = ["injected-parameters"]
    run = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("x = 1\nx", outputs=outputs, execution_count=3)
    code.metadata["papermill"] = {"duration": 0.1}
    run.cells = [nbformat.v4.new_markdown_cell("# t"), injected, code]
    executed = tmp_path / "t_run.ipynb"
    nbformat.write(run, executed)
    return executed, target


def test_only_png_text_and_html_are_kept_and_png_is_downscaled(tmp_path: Path) -> None:
    wide = _png(1600, 400)
    outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="hello\n"),
        nbformat.v4.new_output("display_data", data={"image/png": wide, "image/svg+xml": "<svg/>",
                                                     "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "a"},
                                                     "text/plain": "Widget()"}),
        nbformat.v4.new_output("execute_result", data={"text/html": "<table></table>", "text/plain": "t"},
                               execution_count=3),
    ]
    executed, target = _executed_pair(tmp_path, outputs)
    store_outputs(executed, target, profile="cpu-quick")
    nb = nbformat.read(target, as_version=4)
    code = nb.cells[1]
    assert [o.output_type for o in code.outputs] == ["stream", "display_data", "execute_result"]
    assert code.outputs[0].text == "hello\n"
    assert set(code.outputs[1].data) == {"image/png", "text/plain"}  # svg dropped, widget view dropped
    assert _width(code.outputs[1].data["image/png"]) == MAX_PNG_WIDTH
    assert Image.open(io.BytesIO(base64.b64decode(code.outputs[1].data["image/png"]))).height == 200
    assert code.outputs[2].data["text/html"] == "<table></table>"
    assert code.execution_count == 3 and "papermill" not in code.metadata
    assert nb.metadata["jetlab"]["outputs"]["profile"] == "cpu-quick"


def test_refuses_edited_cells_and_error_outputs(tmp_path: Path) -> None:
    executed, target = _executed_pair(tmp_path, [])
    nb = nbformat.read(target, as_version=4)
    nb.cells[1].source = "x = 5\nx"  # edited while it ran
    nbformat.write(nb, target)
    before = target.read_bytes()
    with pytest.raises(ValueError, match=r"cell 1 of .*t\.ipynb differs from the executed"):
        store_outputs(executed, target)
    assert target.read_bytes() == before

    error = nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])
    executed, target = _executed_pair(tmp_path, [error])
    with pytest.raises(ValueError, match="error output \\(ValueError\\)"):
        store_outputs(executed, target)
