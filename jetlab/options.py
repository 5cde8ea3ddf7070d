"""The special values of path-like parameters (``checkpoint``, ``device``), defined once.

A notebook or task parameter that names a file can also say "find it for me" (:data:`AUTO`) or
"there is none" (:data:`NONE`). Every resolver asks :func:`is_auto` / :func:`is_none` instead of
keeping its own tuple of spellings, so ``"Auto"``, ``" none "`` and ``None`` mean the same
everywhere. This module imports nothing heavy (the runner validates parameters without torch).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AUTO", "AUTO_VALUES", "DEFAULT_OUTPUT_ROOT", "NONE", "NONE_VALUES", "is_auto", "is_none", "is_special"]

#: "find it for me": the checkpoint search, or CUDA when available
AUTO = "auto"
#: "there is none": no checkpoint (train from scratch only)
NONE = "none"
#: spellings of :data:`AUTO` after ``strip().lower()`` (an empty notebook parameter means auto)
AUTO_VALUES: tuple[str, ...] = (AUTO, "")
#: spellings of :data:`NONE` after ``strip().lower()``; Python ``None`` is accepted too
NONE_VALUES: tuple[str, ...] = (NONE,)
#: where runs write their outputs when no ``output_dir`` is given (notebooks, ``jetlab run``, and the
#: checkpoint search for notebook 01's output)
DEFAULT_OUTPUT_ROOT = "jetlab_output"


def _key(value: Any) -> str | None:
    return None if value is None else str(value).strip().lower()


def is_auto(value: Any) -> bool:
    """True for ``"auto"`` and ``""`` (any case, surrounding blanks ignored)."""
    return value is not None and _key(value) in AUTO_VALUES


def is_none(value: Any) -> bool:
    """True for Python ``None`` and ``"none"`` (any case)."""
    return value is None or _key(value) in NONE_VALUES


def is_special(value: Any) -> bool:
    """True when ``value`` is :data:`AUTO` or :data:`NONE` in any spelling, i.e. not a path."""
    return is_auto(value) or is_none(value)
