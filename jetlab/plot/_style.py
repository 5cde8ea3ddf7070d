"""The jetlab figure style, figure creation and atomic saving.

Figures are created with :class:`matplotlib.figure.Figure` directly instead of ``pyplot``: they
work under any backend (Agg in headless/papermill runs, inline in Jupyter), are never shown
twice in a notebook cell, and are freed when the last reference goes away instead of piling up
in pyplot's global registry during long parameter scans.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jetlab._io import atomic_path

#: Label drawn in the top-left corner: the software, not an experiment.
EXPERIMENT_LABEL = "jetlab"

#: Colours used for samples, in order (the mplhep/CMS colour-blind-friendly cycle).
COLORS: tuple[str, ...] = ("#5790fc", "#f89c20", "#e42536", "#964a8b", "#9c9ca1", "#7a21dd", "#2ca02c", "#8c564b")


def _style_dict() -> dict:
    """mplhep's CMS look (inward ticks on all sides, sans-serif fonts) scaled to notebook size."""
    import mplhep

    rc = dict(mplhep.style.CMS)
    rc.update(
        {
            "figure.figsize": (7.0, 6.0),
            "figure.dpi": 100,
            "font.size": 15,
            "axes.linewidth": 1.2,
            "xtick.major.size": 7,
            "xtick.minor.size": 3.5,
            "ytick.major.size": 7,
            "ytick.minor.size": 3.5,
            "xtick.major.pad": 5,
            "lines.linewidth": 1.8,
            "savefig.dpi": 120,
            "savefig.bbox": "tight",
            "savefig.facecolor": "white",
            "figure.facecolor": "white",
            "image.cmap": "viridis",
        }
    )
    return rc


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context manager applying the jetlab style (mplhep-based, no experiment claimed)."""
    with mpl.rc_context(_style_dict()):
        yield


def use_style() -> None:
    """Apply the jetlab style globally (e.g. at the top of a notebook)."""
    mpl.rcParams.update(_style_dict())


def new_figure(**subplots_kw) -> tuple[Figure, object]:
    """A pyplot-free figure and its axes (call inside :func:`style`)."""
    figsize = subplots_kw.pop("figsize", None)
    fig = Figure(figsize=figsize, layout=subplots_kw.pop("layout", None))
    axes = fig.subplots(**subplots_kw)
    return fig, axes


def label_axes(ax: Axes, rlabel: str | None = None, llabel: str = "Simulation") -> None:
    """Draw the neutral 'jetlab Simulation' label (plus an optional right label) above ``ax``."""
    import matplotlib.pyplot as plt
    import mplhep

    before = set(plt.get_fignums())
    mplhep.label.exp_label(exp=EXPERIMENT_LABEL, llabel=llabel, rlabel=rlabel or "", loc=0, ax=ax, fontsize=13)
    # mplhep calls plt.gca() internally, which opens a blank pyplot figure when none exists:
    # close it so notebooks do not show an empty extra figure.
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a figure can be displayed inline)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover
        return False
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int | None = None, display: bool = False) -> Path:
    """Write ``fig`` as PNG (or the format named by the suffix) atomically; return the path.

    The image is written to a temporary file in the target directory and renamed, so a notebook
    or a parallel job never sees a half-written file. With ``display`` the figure is also shown
    once when running in a notebook (pyplot figures are closed after, so Jupyter does not show
    them a second time).
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"save_figure: expected a matplotlib Figure, got {type(fig).__name__}")
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    fmt = path.suffix.lstrip(".").lower()
    with atomic_path(path) as tmp, style():
        fig.savefig(tmp, format=fmt, dpi=dpi)
    if display and in_notebook():
        from IPython.display import display as _display  # optional (jetlab[notebooks]): only inside Jupyter

        _display(fig)
        if getattr(fig.canvas, "manager", None) is not None:  # pyplot-managed figure
            import matplotlib.pyplot as plt

            plt.close(fig)
    return path
