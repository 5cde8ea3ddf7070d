"""jetlab: a jet foundation model (PET / OmniLearn) for notebooks, teaching and analysis."""

from __future__ import annotations

import logging

# library etiquette: jetlab shows nothing unless the program (or jetlab's CLI and notebook setup) asks
logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = ["__version__"]
