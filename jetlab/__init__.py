"""jetlab: a jet foundation model (PET / OmniLearn) for notebooks, teaching and analysis."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
