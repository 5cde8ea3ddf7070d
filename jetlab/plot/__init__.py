"""jetlab.plot: mplhep-styled figures for jets, classifiers, unfolding and anomaly detection.

Every function returns a :class:`matplotlib.figure.Figure` (never calls ``plt.show()``); save
it with :func:`save_figure`. Axes carry units, the corner label reads "jetlab Simulation".
"""

from jetlab.plot._style import COLORS, label_axes, new_figure, save_figure, style, use_style
from jetlab.plot.curves import confusion_matrix, loss_curves, rejection_curves, roc_curves, sic_curves
from jetlab.plot.hists import JET_OBSERVABLES, compare_hist, compare_jets, jet_image, mjj_spectrum
from jetlab.plot.tables import ResultsTable, results_table

__all__ = [
    "COLORS",
    "JET_OBSERVABLES",
    "ResultsTable",
    "compare_hist",
    "compare_jets",
    "confusion_matrix",
    "jet_image",
    "label_axes",
    "loss_curves",
    "mjj_spectrum",
    "new_figure",
    "rejection_curves",
    "results_table",
    "roc_curves",
    "save_figure",
    "sic_curves",
    "style",
    "use_style",
]
