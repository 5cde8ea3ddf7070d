"""jetlab.widgets: interactive notebook explorers with static (headless) fallbacks.

Every explorer has ``.widget`` (an ipywidgets container), ``.figure()`` (a static matplotlib
figure of the current state), ``.state`` (the displayed numbers as a dict), ``.set(...)`` and
``.display()``, which shows the widget when :func:`is_interactive` and the static figure
otherwise (papermill/nbval runs: set ``JETLAB_HEADLESS=1``; or pass ``mode="static"``).
"""

from jetlab.widgets._base import Explorer, is_interactive, resolve_mode
from jetlab.widgets.cutscan import CutScanExplorer, fit_sidebands, mass_bins
from jetlab.widgets.event_display import JetEventDisplay
from jetlab.widgets.iterations import IterationExplorer
from jetlab.widgets.monitor import TrainingMonitor
from jetlab.widgets.threshold import ThresholdExplorer

__all__ = [
    "CutScanExplorer",
    "Explorer",
    "IterationExplorer",
    "JetEventDisplay",
    "ThresholdExplorer",
    "TrainingMonitor",
    "fit_sidebands",
    "is_interactive",
    "mass_bins",
    "resolve_mode",
]
