"""The events of the search: mass windows in ``mjj``, dijet events from the resolver, signal injection.

Units: ``mjj`` in TeV everywhere in this package (files store GeV; :func:`load_dijets` converts).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from jetlab.data.preprocess import jet_inputs
from jetlab.data.schema import JetSet, SchemaError, sort_and_truncate
from jetlab.data.sources import resolve

__all__ = [
    "DEFAULT_SB",
    "DEFAULT_SR",
    "JET_FEATURE_NAMES",
    "AnomalySplit",
    "DijetEvents",
    "MassWindows",
    "inject_signal",
    "load_dijets",
]

DEFAULT_SR: tuple[float, float] = (3.3, 3.7)
DEFAULT_SB: tuple[tuple[float, float], tuple[float, float]] = ((2.3, 3.3), (3.7, 5.0))
#: the 8 jet-level features of an event modelled by the jet-level generator (GeV)
JET_FEATURE_NAMES: tuple[str, ...] = ("pt1", "eta1", "m1", "n1", "pt2", "eta2", "m2", "n2")


@dataclass(frozen=True)
class MassWindows:
    """Signal region and sidebands in ``mjj`` [TeV]; ``scale`` maps the full window to [-1, 1]."""

    sr: tuple[float, float] = DEFAULT_SR
    sb: tuple[tuple[float, float], tuple[float, float]] = DEFAULT_SB

    def __post_init__(self) -> None:
        sr = tuple(float(v) for v in self.sr)
        sb = tuple(tuple(float(v) for v in s) for s in self.sb)
        if len(sr) != 2 or len(sb) != 2 or any(len(s) != 2 for s in sb):
            raise ValueError(
                f"MassWindows: sr must be (lo, hi) and sb ((lo, hi), (lo, hi)), got sr={self.sr}, sb={self.sb}"
            )
        if not (sb[0][0] < sb[0][1] <= sr[0] < sr[1] <= sb[1][0] < sb[1][1]):
            raise ValueError(f"MassWindows: need sb_low < sr < sb_high without overlap, got sr={sr}, sb={sb} (TeV)")
        object.__setattr__(self, "sr", sr)
        object.__setattr__(self, "sb", sb)

    @property
    def lo(self) -> float:
        return self.sb[0][0]

    @property
    def hi(self) -> float:
        return self.sb[1][1]

    def scale(self, mjj) -> np.ndarray:
        """``mjj`` [TeV] -> [-1, 1] over the full window (the generator's condition)."""
        return (2.0 * (np.asarray(mjj, dtype=np.float64) - self.lo) / (self.hi - self.lo) - 1.0).astype(np.float32)

    def unscale(self, x) -> np.ndarray:
        return (self.lo + 0.5 * (np.asarray(x, dtype=np.float64) + 1.0) * (self.hi - self.lo)).astype(np.float32)

    def in_sr(self, mjj) -> np.ndarray:
        m = np.asarray(mjj)
        return (m >= self.sr[0]) & (m < self.sr[1])

    def in_sb(self, mjj) -> np.ndarray:
        m = np.asarray(mjj)
        return ((m >= self.sb[0][0]) & (m < self.sb[0][1])) | ((m >= self.sb[1][0]) & (m < self.sb[1][1]))

    def in_window(self, mjj) -> np.ndarray:
        m = np.asarray(mjj)
        return (m >= self.lo) & (m < self.hi)


@dataclass
class DijetEvents:
    """Row-aligned dijet events: ``jet1`` (heavier), ``jet2``, ``mjj`` [TeV], ``labels`` (1 = signal)."""

    jet1: JetSet
    jet2: JetSet
    mjj: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.mjj = np.asarray(self.mjj, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.mjj)
        if not (len(self.jet1) == len(self.jet2) == len(self.labels) == n):
            raise ValueError(
                f"DijetEvents: jet1 ({len(self.jet1)}), jet2 ({len(self.jet2)}), mjj ({n}) and "
                f"labels ({len(self.labels)}) must have the same length"
            )

    def __len__(self) -> int:
        return len(self.mjj)

    def subset(self, index) -> "DijetEvents":
        return DijetEvents(self.jet1.subset(index), self.jet2.subset(index), self.mjj[index], self.labels[index])

    @staticmethod
    def concatenate(parts: Sequence["DijetEvents"]) -> "DijetEvents":
        parts = list(parts)
        if not parts:
            raise ValueError("DijetEvents.concatenate needs at least one part")
        return DijetEvents(
            JetSet.concatenate([p.jet1 for p in parts]),
            JetSet.concatenate([p.jet2 for p in parts]),
            np.concatenate([p.mjj for p in parts]),
            np.concatenate([p.labels for p in parts]),
        )

    def jet_features(self) -> np.ndarray:
        """``(N, 8)`` physical jet features, :data:`JET_FEATURE_NAMES` (GeV)."""
        return np.concatenate([jet_inputs(self.jet1), jet_inputs(self.jet2)], axis=1)


def _truncate(js: JetSet, max_particles: int | None) -> JetSet:
    if max_particles is None or max_particles >= js.max_particles:
        return js
    p, m = sort_and_truncate(js.particles, js.mask, int(max_particles))
    return JetSet(p, m, js.jets, js.labels, js.weights, js.particle_features, dict(js.extra))


def load_dijets(
    source: str | os.PathLike = "lhco-mini",
    n_events: int | None = None,
    *,
    seed: int = 0,
    signal_fraction: float = 0.15,
    max_particles: int | None = None,
    order: str = "mass",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> DijetEvents:
    """Dijet events from the one resolver (:func:`jetlab.data.sources.resolve`): a generator name
    (``"lhco-mini"``, cached), ``"lhco_rnd"`` (the LHC Olympics R&D data from ``jetlab data fetch``,
    clustered once on first use) or a schema file / directory.

    ``max_particles`` keeps the leading-pT particles of each jet (the jet features keep the full
    multiplicity). ``order="mass"`` makes ``jet1`` the heavier jet (LHCO convention), ``"pt"``
    keeps the file's order. ``mjj`` is returned in TeV.
    """
    if order not in ("mass", "pt"):
        raise ValueError(f"load_dijets: order must be 'mass' or 'pt', got {order!r}")
    stop = None if n_events is None or n_events < 0 else int(n_events)
    data = resolve(
        source, n_jets=stop, seed=seed, cache_dir=cache_dir, progress=progress, signal_fraction=float(signal_fraction)
    )
    path = data.sources[0] if len(data.sources) == 1 else f"{data.name} ({len(data.sources)} files)"
    sets = {c: data.read(c, stop=None if data.kind == "generated" else stop) for c in data.collections}
    missing = [c for c in ("jet1", "jet2") if c not in sets]
    if missing:
        raise SchemaError(
            f"{path}: dijet file needs collections 'jet1' and 'jet2', missing {missing} (has {sorted(sets)})"
        )
    j1, j2 = (_truncate(sets[c], max_particles) for c in ("jet1", "jet2"))
    if "mjj" not in j1.extra:
        raise SchemaError(f"{path}: collection 'jet1' has no extra['mjj'] (the dijet mass)")
    mjj = np.asarray(j1.extra["mjj"], dtype=np.float64) / 1000.0
    if order == "mass":
        swap = j2.jets[:, 3] > j1.jets[:, 3]
        if swap.any():
            a, b = j1.subset(slice(None)), j2.subset(slice(None))
            for name in ("particles", "mask", "jets"):
                getattr(a, name)[swap] = getattr(j2, name)[swap]
                getattr(b, name)[swap] = getattr(j1, name)[swap]
            j1, j2 = a, b
    return DijetEvents(j1, j2, mjj, j1.labels)


@dataclass
class AnomalySplit:
    """``data``: background + injected signal (what an analysis sees); ``background``: held-out true
    background (idealised template, supervised training, closeness tests); ``signal``: the signal
    not injected (supervised training only)."""

    data: DijetEvents
    background: DijetEvents
    signal: DijetEvents
    n_injected: int

    def summary(self, windows: MassWindows) -> dict[str, Any]:
        d = self.data
        sr = windows.in_sr(d.mjj)
        n_s, n_b = int((d.labels[sr] == 1).sum()), int((d.labels[sr] == 0).sum())
        return {
            "n_data": len(d),
            "n_injected": self.n_injected,
            "sr_signal": n_s,
            "sr_background": n_b,
            "sr_s_over_b": n_s / max(n_b, 1),
            "sr_s_over_sqrt_b": n_s / math.sqrt(max(n_b, 1)),
            "n_background_reference": len(self.background),
            "n_signal_reference": len(self.signal),
        }


def inject_signal(
    events: DijetEvents, n_signal: int, *, data_background_fraction: float = 0.5, seed: int = 0
) -> AnomalySplit:
    """Build the pseudo-data: ``data_background_fraction`` of the background plus ``n_signal``
    randomly chosen signal events; the rest are kept apart as labelled references."""
    if not 0.0 < data_background_fraction < 1.0:
        raise ValueError(f"inject_signal: data_background_fraction must be in (0, 1), got {data_background_fraction}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 404]))
    bkg = np.nonzero(events.labels == 0)[0]
    sig = np.nonzero(events.labels == 1)[0]
    if n_signal < 0 or n_signal > len(sig):
        raise ValueError(
            f"inject_signal: n_signal={n_signal} but the events hold {len(sig)} signal events (labels == 1)"
        )
    if len(bkg) < 2:
        raise ValueError(f"inject_signal: need background events (labels == 0), got {len(bkg)}")
    bkg, sig = rng.permutation(bkg), rng.permutation(sig)
    n_data_bkg = int(round(data_background_fraction * len(bkg)))
    data_idx = np.sort(np.concatenate([bkg[:n_data_bkg], sig[:n_signal]]))
    return AnomalySplit(
        events.subset(data_idx),
        events.subset(np.sort(bkg[n_data_bkg:])),
        events.subset(np.sort(sig[n_signal:])),
        int(n_signal),
    )
