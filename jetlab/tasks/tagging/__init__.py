"""Top tagging (notebook 02): :mod:`.pipeline` runs the study (:func:`run_tagging`), :mod:`.results` holds
what it returns (:class:`TaggingResults`: the runs, the Table-I-like summary, the figures)."""

from __future__ import annotations

from .pipeline import TaggingSettings, run_tagging
from .results import METRICS, MODEL_LABELS, PAPER_TABLE_I, TaggingResults, TaggingRun, plot_learning_curve

__all__ = [
    "METRICS",
    "MODEL_LABELS",
    "PAPER_TABLE_I",
    "TaggingResults",
    "TaggingRun",
    "TaggingSettings",
    "plot_learning_curve",
    "run_tagging",
]
