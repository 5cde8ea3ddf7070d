"""OmniFold: unbinned, multi-dimensional unfolding by iterative classifier reweighting (notebook 03).

* :mod:`.classifiers` - what OmniFold trains: :class:`PETClassifier` (fine-tuned or scratch, built by
  :func:`jetlab.model.factory.build_pet`), :class:`ObservableClassifier` (an MLP on jet observables),
  :func:`make_classifier`;
* :mod:`.algorithm` - :func:`omnifold` itself (pull and push steps, warm starts, held-out
  validation, weight clipping; the algorithm and its choices are described there) and :class:`OmniFoldResult`;
* :mod:`.convergence` - step-1 validation-loss curves over seeds (:func:`step1_curves`,
  :class:`ConvergenceStudy`, :func:`convergence_ratio`);
* :mod:`.evaluation` - triangular discriminators vs the truth with IBU (:func:`unfold_observables`);
* :mod:`.data` - :func:`load_omnifold_data`;
* :mod:`.pipeline` - :func:`run_omnifold`, the whole study as one call;
* :mod:`.results` - what it returns (:class:`OmniFoldResults`).
"""

from __future__ import annotations

from .algorithm import OmniFoldResult, omnifold
from .classifiers import ClassifierSpec, ObservableClassifier, PETClassifier, make_classifier
from .convergence import ConvergenceStudy, convergence_ratio, epochs_to_reach, step1_curves
from .data import OMNIFOLD_DATA, OMNIFOLD_SIM, load_omnifold_data
from .evaluation import UnfoldingSummary, unfold_observables, weighted_histogram
from .pipeline import OmniFoldSettings, run_omnifold
from .results import CLASSIFIERS, OmniFoldResults

__all__ = [
    "CLASSIFIERS",
    "OMNIFOLD_DATA",
    "OMNIFOLD_SIM",
    "ClassifierSpec",
    "ConvergenceStudy",
    "ObservableClassifier",
    "OmniFoldResult",
    "OmniFoldResults",
    "OmniFoldSettings",
    "PETClassifier",
    "UnfoldingSummary",
    "convergence_ratio",
    "epochs_to_reach",
    "load_omnifold_data",
    "make_classifier",
    "omnifold",
    "run_omnifold",
    "step1_curves",
    "unfold_observables",
    "weighted_histogram",
]
