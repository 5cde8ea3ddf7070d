"""The mini datasets' definitions: each one's samples (Pythia settings, labels, truth-matching rules),
collections, detector and jet radius, and zjets-mini's 'data' setup with its z_g stress test.

:mod:`jetlab.simulator.generate` runs them (chunk workers, planning, the file) and re-exports every
name here, so ``from jetlab.simulator.generate import GENERATORS`` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .detector import ATLAS_LIKE, JETCLASS_LIKE, DetectorModel
from .pythia_jets import CHARGED_LEPTONS, GLUONS, QUARKS, DecayRule

__all__ = [
    "GENERATORS",
    "GeneratorSpec",
    "Sample",
    "ZG_STRESS_RECORD",
    "ZG_STRESS_SLOPE",
    "ZJETS_DATA_SETTINGS",
    "zg_stress_weight",
]

_HADRONIC_W = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5")
_HADRONIC_Z = ("23:onMode = off", "23:onIfAny = 1 2 3 4 5")


# ============================================================================ samples
@dataclass(frozen=True)
class Sample:
    """One Pythia configuration feeding one label (or one generator setup)."""

    name: str
    settings: tuple[str, ...]
    label: int
    parent: int = 0  # |PDG id| of the truth-matched parent (0: no matching, e.g. QCD)
    #: visible decay products a matched jet must contain (default: all quarks of a hadronic decay)
    products: tuple[tuple[tuple[int, ...], int], ...] = ()

    @property
    def decay(self) -> DecayRule:
        """The truth-matching rule of this sample (only meaningful when ``parent`` is set)."""
        return DecayRule(self.parent, self.products) if self.products else DecayRule.hadronic(self.parent)


@dataclass(frozen=True)
class GeneratorSpec:
    """A mini dataset: its label names, collections and samples."""

    name: str
    description: str
    label_names: tuple[str, ...]
    collections: tuple[str, ...]
    max_particles: int
    samples: tuple[Sample, ...]  # what a file holds by default (and records in its metadata)
    options: dict[str, Any] = field(default_factory=dict)  # accepted options and defaults
    detector: DetectorModel = JETCLASS_LIKE  # what reconstructs the detector-level particles
    jet_radius: float = 0.8  # anti-kT R of the (detector-level) jets
    #: samples a file holds only when the ``classes`` option names them: their labels follow the default
    #: ones, so a default file keeps its label names (and a model its class count) unchanged
    extra_samples: tuple[Sample, ...] = ()

    @property
    def all_samples(self) -> tuple[Sample, ...]:
        return self.samples + self.extra_samples


def _qcd(pthat: float) -> tuple[str, ...]:
    return ("HardQCD:all = on", f"PhaseSpace:pTHatMin = {pthat}")


def _ttbar(pthat: float) -> tuple[str, ...]:
    return ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", f"PhaseSpace:pTHatMin = {pthat}") + _HADRONIC_W


#: Higgs samples as for Hbb: Z(-> nu nu) H, the Higgs forced into one decay channel.
def _zh(*higgs_decay: str) -> tuple[str, ...]:
    return (
        "HiggsSM:ffbar2HZ = on",
        "PhaseSpace:pTHatMin = 450.",
        "25:onMode = off",
        *higgs_decay,
        "23:onMode = off",
        "23:onIfAny = 12 14 16",
    )


#: The other five JetClass processes (Qu, Li, Qu, arXiv:2202.03772), labels 5-9; ``classes="all"``
#: (or their names) asks for them. The visible decay products a matched jet must contain follow
#: JetClass: all of the parent's decay products but neutrinos. H -> W W* -> l nu q q' and t -> b l nu
#: match on their charged lepton (e, mu or tau); the process-level veto keeps only the events with one
#: such decay, so Pythia showers no event that cannot give a matched jet.
_JETCLASS_EXTRA = (
    Sample("Hcc", _zh("25:onIfMatch = 4 -4"), 5, parent=25),
    Sample("Hgg", _zh("25:onIfMatch = 21 21"), 6, parent=25, products=((GLUONS, 2),)),
    Sample("H4q", _zh("25:onIfMatch = 24 -24") + _HADRONIC_W, 7, parent=25, products=((QUARKS, 4),)),
    # W decays left free: the veto keeps the one-leptonic, one-hadronic H -> W W* decays (~44%)
    Sample("Hqql", _zh("25:onIfMatch = 24 -24"), 8, parent=25, products=((QUARKS, 2), (CHARGED_LEPTONS, 1))),
    Sample(
        "Tbl",
        (
            "Top:gg2ttbar = on",
            "Top:qqbar2ttbar = on",
            "PhaseSpace:pTHatMin = 450.",
            "24:onMode = off",
            "24:onIfAny = 11 13 15",
        ),
        9,
        parent=6,
        products=((QUARKS, 1), (CHARGED_LEPTONS, 1)),
    ),
)

_JETCLASS = GeneratorSpec(
    name="jetclass-mini",
    description="JetClass-like: QCD, t->bqq', W->qq', Z->qq, H->bb; anti-kT R=0.8, 500<pT<1000 GeV, |eta|<2, CMS-like PF with PID",
    label_names=("QCD", "Tbqq", "Wqq", "Zqq", "Hbb"),
    collections=("jets",),
    max_particles=128,
    samples=(
        Sample("QCD", _qcd(450.0), 0),
        Sample("Tbqq", _ttbar(450.0), 1, parent=6),
        Sample("Wqq", ("WeakDoubleBoson:ffbar2WW = on", "PhaseSpace:pTHatMin = 450.") + _HADRONIC_W, 2, parent=24),
        Sample(
            "Zqq",
            ("WeakDoubleBoson:ffbar2gmZgmZ = on", "WeakZ0:gmZmode = 2", "PhaseSpace:pTHatMin = 450.") + _HADRONIC_Z,
            3,
            parent=23,
        ),
        Sample(
            "Hbb",
            (
                "HiggsSM:ffbar2HZ = on",
                "PhaseSpace:pTHatMin = 450.",
                "25:onMode = off",
                "25:onIfMatch = 5 -5",
                "23:onMode = off",
                "23:onIfAny = 12 14 16",
            ),
            4,
            parent=25,
        ),
    ),
    options={"max_particles": 128, "chunk_size": 500, "classes": None},
    extra_samples=_JETCLASS_EXTRA,
)

_TOPTAG = GeneratorSpec(
    name="toptag-mini",
    description="ATLAS-top-tagging-like: top vs QCD, calorimeter clusters with pileup, trimmed anti-kT R=1.0, 350<pT<1000 GeV, no PID",
    label_names=("QCD", "Top"),
    collections=("jets",),
    max_particles=120,
    samples=(Sample("QCD", _qcd(320.0), 0), Sample("Top", _ttbar(320.0), 1, parent=6)),
    options={"max_particles": 120, "chunk_size": 500, "classes": None},
    detector=ATLAS_LIKE,
    jet_radius=1.0,
)

_ZJETS_BASE = (
    "WeakBosonAndParton:qqbar2gmZg = on",
    "WeakBosonAndParton:qg2gmZq = on",
    "WeakZ0:gmZmode = 2",
    "23:onMode = off",
    "23:onIfAny = 12 14 16",
    "PhaseSpace:pTHatMin = 200.",
)
#: zjets-mini "data": Monash with a different final-state shower (alpha_s in the CMW scheme, as
#: Herwig's shower uses it) and a different string fragmentation (softer Lund z: a = 2.0, b = 0.3;
#: wider string pT: sigma = 0.5 GeV). Chosen by measurement among single changes and combinations
#: (benchmarks/README.md, "zjets-mini sim vs data"): with 4000 events per setup it separates mass,
#: N, width, log rho and tau21 from sim well beyond statistics; no Pythia setting tried moves z_g.
ZJETS_DATA_SETTINGS: tuple[str, ...] = (
    "Tune:pp = 14",
    "TimeShower:alphaSuseCMW = on",
    "StringZ:aLund = 2.0",
    "StringZ:bLund = 0.3",
    "StringPT:sigma = 0.5",
)
#: Strength of the z_g stress test (see :func:`zg_stress_weight`): the weight falls linearly from
#: 1 at z_g = 0 to 1 - ZG_STRESS_SLOPE at z_g = 0.5.
ZG_STRESS_SLOPE = 0.8


def zg_stress_weight(zg: np.ndarray) -> np.ndarray:
    """Acceptance probability of a zjets-mini 'data' event given its particle-level z_g: the z_g stress test.

    No Pythia setting tried moves soft-drop z_g (beta = 0, z_cut = 0.1, R0 = 0.4, of the leading
    particle-level jet) beyond the noise (benchmarks/README.md, "zjets-mini sim vs data"), so without
    help the sixth OmniFold observable has no truth to unfold. The stress test makes one: 'data' events
    are kept with probability ``w(z_g) = 1 - ZG_STRESS_SLOPE * z_g / 0.5`` (accept-reject, so the
    sample stays unweighted), a smooth, known reweighting in z_g and nothing else; every other
    observable changes only through its correlation with z_g. The truth is therefore known exactly:
    'data' = the 'data' setup's particle level times w(z_g). It stands in for what a different
    generator (Herwig against Pythia, as in the OmniFold paper) would do in the real case; it is not a
    physics model of the splitting function. ``generate("zjets-mini", ..., zg_stress=False)`` turns it off.
    """
    z = np.clip(np.asarray(zg, dtype=np.float64), 0.0, 0.5)
    return 1.0 - ZG_STRESS_SLOPE * z / 0.5


#: how a zjets-mini file with the stress test records it (in ``info["samples"]["data"]``)
ZG_STRESS_RECORD = (
    f"jetlab zg_stress: 'data' events kept with probability 1 - {ZG_STRESS_SLOPE} * z_g / 0.5 "
    "(particle-level leading jet, soft drop beta 0, z_cut 0.1, R0 0.4)"
)

_ZJETS = GeneratorSpec(
    name="zjets-mini",
    description="OmniFold-Z+jets-like: Z(->nunu)+jet, leading R=0.4 jets at gen and reco level; 'sim' = Monash tune, "
    "'data' = Monash with CMW shower alphaS and softer, wider Lund string fragmentation (a Herwig-like difference)",
    label_names=("sim", "data"),
    collections=("sim_gen", "sim_reco", "data_gen", "data_reco"),
    max_particles=101,
    samples=(Sample("sim", _ZJETS_BASE + ("Tune:pp = 14",), 0), Sample("data", _ZJETS_BASE + ZJETS_DATA_SETTINGS, 1)),
    options={"max_particles": 101, "chunk_size": 500, "zg_stress": True},
    jet_radius=0.4,
)

_LHCO = GeneratorSpec(
    name="lhco-mini",
    description="LHCO-R&D-like: QCD dijets + W'(3.5 TeV)->X(500)Y(100)->(qq)(qq); anti-kT R=1.0, leading jet pT>1.2 TeV",
    label_names=("background", "signal"),
    collections=("jet1", "jet2"),
    max_particles=279,
    samples=(
        Sample("background", _qcd(1100.0), 0),
        Sample(
            "signal",
            (
                "NewGaugeBoson:ffbar2Wprime = on",
                "Wprime:coup2WZ = 1.",
                "34:m0 = 3500.",
                "34:doForceWidth = on",
                "34:mWidth = 35.",
                "34:mMin = 3000.",
                "34:mMax = 4000.",
                "34:onMode = off",
                "34:onIfMatch = 23 24",
                "24:m0 = 500.",
                "23:m0 = 100.",
            )
            + _HADRONIC_W
            + _HADRONIC_Z,
            1,
        ),
    ),
    options={"max_particles": 279, "chunk_size": 500, "signal_fraction": 0.1},
    jet_radius=1.0,
)

#: Registry of the mini datasets, by name.
GENERATORS: dict[str, GeneratorSpec] = {s.name: s for s in (_JETCLASS, _TOPTAG, _ZJETS, _LHCO)}
