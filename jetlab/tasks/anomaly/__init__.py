"""Weakly supervised resonant anomaly detection on LHCO dijets, CATHODE-style, with PET.

The search looks for a localised excess in the dijet mass ``mjj``. A *signal region* (SR)
window is compared with the *sidebands* (SB) around it:

1. a conditional generative model of the background is fitted on sideband events, conditioned
   on the (scaled) ``mjj``: first the jet-level features of both jets
   (:class:`jetlab.model.jet_generator.JetFeatureGenerator`), then the particles of each jet
   (PET's diffusion generator head, conditioned on the jet features, the jet index and ``mjj``);
2. it is *interpolated* into the SR by sampling ``mjj`` from the SR data, giving an
   (oversampled) synthetic background set;
3. a classifier learns SR data vs synthetic background. Without signal both are the same
   distribution and the classifier learns nothing; with signal the score approximates the
   likelihood ratio ``p_data / p_bkg``, i.e. it finds the anomaly without ever seeing a label.
   k-fold training scores every SR event with a model that did not train on it.

Baselines: the *idealised* detector (same classifier, but the template is held-out TRUE
background in the SR) and the *fully supervised* classifier (signal vs background labels).
``mjj`` is never a classifier input, so cuts on the score do not sculpt a bump by construction
(checked by :func:`sculpting_check`).

Units: ``mjj`` in TeV everywhere in this package (files store GeV; :func:`load_dijets` converts).

Modules: :mod:`.events` (windows, events, signal injection), :mod:`.training` (the dijet classifier's
training, k-fold), :mod:`.background` (the background model), :mod:`.metrics` (SIC, closeness, sculpting),
:mod:`.detectors` (CATHODE, idealised, supervised for one seed), :mod:`.pipeline` (:func:`run_anomaly`,
every seed as one call), :mod:`.results` (what it returns), :mod:`.scan` (:func:`scan_signal_fraction`: max SIC against the injected S/B). The
networks are :mod:`jetlab.model.dijet_classifier` and :mod:`jetlab.model.mjj_generator` (re-exported here).
"""

from __future__ import annotations

from jetlab.model.dijet_classifier import DijetClassifier
from jetlab.model.mjj_generator import MjjConditionedGenerator

from .background import (
    CATHODE_GEN_PT_INPUT,
    PARTICLE_FEATURE_NAMES,
    BackgroundGenerator,
    fit_background_generator,
)
from .detectors import AnomalyRun, run_cathode, run_idealised, run_supervised
from .events import (
    DEFAULT_SB,
    DEFAULT_SR,
    JET_FEATURE_NAMES,
    AnomalySplit,
    DijetEvents,
    MassWindows,
    inject_signal,
    load_dijets,
)
from .metrics import anomaly_metrics, closeness_metrics, raw_particles, sculpting_check
from .pipeline import AnomalySettings, run_anomaly
from .results import AnomalyResults
from .scan import SignalFractionScan, find_saved_scan, random_max_sic, scan_signal_fraction, signal_fraction_scan
from .training import (
    KFoldResult,
    TrainingSettings,
    dijet_inputs,
    kfold_indices,
    kfold_scores,
    predict_dijet,
    supervised_scores,
    train_dijet_classifier,
)

__all__ = [
    "DEFAULT_SB",
    "DEFAULT_SR",
    "JET_FEATURE_NAMES",
    "PARTICLE_FEATURE_NAMES",
    "AnomalyResults",
    "AnomalySettings",
    "AnomalyRun",
    "AnomalySplit",
    "BackgroundGenerator",
    "CATHODE_GEN_PT_INPUT",
    "DijetClassifier",
    "DijetEvents",
    "KFoldResult",
    "MassWindows",
    "MjjConditionedGenerator",
    "SignalFractionScan",
    "TrainingSettings",
    "anomaly_metrics",
    "closeness_metrics",
    "dijet_inputs",
    "fit_background_generator",
    "inject_signal",
    "kfold_indices",
    "kfold_scores",
    "load_dijets",
    "find_saved_scan",
    "random_max_sic",
    "scan_signal_fraction",
    "predict_dijet",
    "raw_particles",
    "run_anomaly",
    "run_cathode",
    "run_idealised",
    "run_supervised",
    "sculpting_check",
    "signal_fraction_scan",
    "supervised_scores",
    "train_dijet_classifier",
]
