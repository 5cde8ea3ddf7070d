"""The one on-disk / in-memory schema that every jetlab dataset is converted to.

Every source (the public datasets' readers and the offline generator) produces
:class:`JetSet` objects; every consumer (torch datasets, tasks, plots) reads them.

A *file* holds one or more named, row-aligned collections of jets:

* single-jet datasets (JetClass, ATLAS top tagging): one collection ``"jets"``;
* OmniFold Z+jets: ``"gen"`` (particle level) and ``"reco"`` (detector level), row ``i`` of
  both belongs to the same event;
* LHC Olympics: ``"jet1"`` and ``"jet2"`` (leading / sub-leading by mass or pT), with the
  event-level dijet mass in ``extra["mjj"]`` of both.

HDF5 layout (``schema_version`` 1)::

    /                      attrs: jetlab_schema=1, dataset, label_names (json), jetlab_version,
                                  collections (json list), info (json)
    /<collection>/particles   float32 (N, P, F)   columns named by attr particle_features
    /<collection>/mask        bool    (N, P)      True for real particles, pT-ordered, front-packed
    /<collection>/jets        float32 (N, 5)      JET_FEATURES
    /<collection>/labels      int64   (N,)        index into label_names
    /<collection>/weights     float32 (N,)        per-jet (event) weights, 1 if none
    /<collection>/extra/<k>   any     (N, ...)    per-row extras, e.g. mjj

Units: GeV, radians. ``particles[..., :4]`` are always (pT, eta, phi, E); optional columns follow.

Impact parameters ``d0``, ``d0err``, ``dz``, ``dzerr`` are in mm. A particle without a track
(a neutral, or a candidate stored without track details) has all four equal to 0, as JetClass
stores them; every reader maps its producer's own "no track" value to that (Aspen Open Jets:
-1 cm), so no dataset carries negative errors or sentinel lengths.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from jetlab._io import atomic_path

SCHEMA_VERSION = 1

#: Kinematic columns present in every dataset, in this order.
KINEMATIC_FEATURES: tuple[str, ...] = ("pt", "eta", "phi", "energy")
#: Charge and particle-ID flags: the PID columns here and PET's last six inputs (jetlab.data.preprocess).
PID_FEATURES: tuple[str, ...] = (
    "charge",
    "is_charged_hadron",
    "is_neutral_hadron",
    "is_photon",
    "is_electron",
    "is_muon",
)
#: Optional particle columns a dataset may carry (after the kinematic ones, in this order).
OPTIONAL_PARTICLE_FEATURES: tuple[str, ...] = PID_FEATURES + ("d0", "d0err", "dz", "dzerr")
ALL_PARTICLE_FEATURES: tuple[str, ...] = KINEMATIC_FEATURES + OPTIONAL_PARTICLE_FEATURES
#: Jet-level columns, in this order.
JET_FEATURES: tuple[str, ...] = ("pt", "eta", "phi", "mass", "n_particles")


class SchemaError(ValueError):
    """Raised when data does not follow the jetlab schema; the message names file and field."""


#: Low-level exceptions h5py / uproot raise on damaged files: a bad chunk or a short read is an
#: ``OSError``, a zeroed object header a ``KeyError``, some HDF5 internals a ``RuntimeError``.
DAMAGED_FILE_ERRORS: tuple[type[BaseException], ...] = (OSError, KeyError, RuntimeError)


@contextmanager
def damaged_file_errors(
    path: str | os.PathLike,
    what: str,
    kind: str = "file",
    errors: tuple[type[BaseException], ...] = DAMAGED_FILE_ERRORS,
) -> Iterator[None]:
    """Re-raise low-level read errors (``errors``) inside the block as a SchemaError naming ``path``.

    A truncated, zero-filled or bit-flipped file otherwise surfaces as a bare h5py/uproot
    ``OSError``/``KeyError`` deep in a traceback; users need to know *which* file is damaged
    and what was being read. ``SchemaError`` and ``FileNotFoundError`` pass through unchanged.
    """
    try:
        yield
    except (SchemaError, FileNotFoundError):
        raise
    except errors as exc:
        detail = str(exc).strip().replace("\n", " ") or type(exc).__name__
        raise SchemaError(f"{path}: {kind} truncated or corrupt (while reading {what}: {detail})") from exc


@dataclass(init=False)
class JetSet:
    """A padded, masked batch of jets in the common schema (see module docstring)."""

    particles: np.ndarray
    mask: np.ndarray
    jets: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    particle_features: tuple[str, ...]
    extra: dict[str, np.ndarray]

    # A hand-written __init__ so that ``weights=None`` (unit weights) is accepted while the
    # attribute is always an array (a generated one would give both the same type).
    def __init__(
        self,
        particles: np.ndarray,
        mask: np.ndarray,
        jets: np.ndarray,
        labels: np.ndarray,
        weights: np.ndarray | None = None,
        particle_features: Sequence[str] = KINEMATIC_FEATURES,
        extra: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.particles = np.asarray(particles, dtype=np.float32)
        self.mask = np.asarray(mask, dtype=bool)
        self.jets = np.asarray(jets, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        if weights is None:
            weights = np.ones(len(self.labels), dtype=np.float32)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.particle_features = tuple(particle_features)
        self.extra = {k: np.asarray(v) for k, v in (extra or {}).items()}

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.particles.shape[0])

    @property
    def max_particles(self) -> int:
        return int(self.particles.shape[1])

    def feature(self, name: str) -> np.ndarray:
        """Column ``name`` of the particle array, shape (N, P)."""
        try:
            return self.particles[..., self.particle_features.index(name)]
        except ValueError:
            raise KeyError(
                f"particle feature {name!r} not in this JetSet (has {list(self.particle_features)})"
            ) from None

    def jet_feature(self, name: str) -> np.ndarray:
        return self.jets[:, JET_FEATURES.index(name)]

    def has(self, name: str) -> bool:
        return name in self.particle_features

    def subset(self, index) -> "JetSet":
        """Rows selected by a slice, integer array or boolean mask (copies)."""
        return JetSet(
            particles=self.particles[index],
            mask=self.mask[index],
            jets=self.jets[index],
            labels=self.labels[index],
            weights=self.weights[index],
            particle_features=self.particle_features,
            extra={k: v[index] for k, v in self.extra.items()},
        )

    @staticmethod
    def concatenate(sets: Iterable["JetSet"]) -> "JetSet":
        sets = list(sets)
        if not sets:
            raise ValueError("JetSet.concatenate needs at least one JetSet")
        feats = sets[0].particle_features
        pmax = max(s.max_particles for s in sets)
        for s in sets:
            if s.particle_features != feats:
                raise SchemaError(
                    f"cannot concatenate JetSets with different particle features: {feats} vs {s.particle_features}"
                )
        keys = set(sets[0].extra)
        return JetSet(
            particles=np.concatenate([pad_particles(s.particles, pmax) for s in sets]),
            mask=np.concatenate([pad_particles(s.mask, pmax) for s in sets]),
            jets=np.concatenate([s.jets for s in sets]),
            labels=np.concatenate([s.labels for s in sets]),
            weights=np.concatenate([s.weights for s in sets]),
            particle_features=feats,
            extra={k: np.concatenate([s.extra[k] for s in sets]) for k in keys},
        )

    # -------------------------------------------------------------- validation
    def validate(self, where: str = "JetSet") -> "JetSet":
        """Check shapes, dtypes, finiteness and ordering; raise SchemaError naming ``where``."""
        n = len(self)
        if self.particles.ndim != 3:
            raise SchemaError(f"{where}: particles must be (N, P, F), got shape {self.particles.shape}")
        if self.particles.shape[2] != len(self.particle_features):
            raise SchemaError(
                f"{where}: particles has {self.particles.shape[2]} columns but "
                f"{len(self.particle_features)} feature names {self.particle_features}"
            )
        if self.particle_features[:4] != KINEMATIC_FEATURES:
            raise SchemaError(
                f"{where}: the first particle features must be {KINEMATIC_FEATURES}, got {self.particle_features[:4]}"
            )
        unknown = set(self.particle_features) - set(ALL_PARTICLE_FEATURES)
        if unknown:
            raise SchemaError(f"{where}: unknown particle features {sorted(unknown)}")
        if self.mask.shape != self.particles.shape[:2]:
            raise SchemaError(f"{where}: mask shape {self.mask.shape} != particles {self.particles.shape[:2]}")
        if self.jets.shape != (n, len(JET_FEATURES)):
            raise SchemaError(f"{where}: jets must be (N, {len(JET_FEATURES)}) {JET_FEATURES}, got {self.jets.shape}")
        for name, arr in (("labels", self.labels), ("weights", self.weights)):
            if arr.shape != (n,):
                raise SchemaError(f"{where}: {name} must have shape ({n},), got {arr.shape}")
        for k, v in self.extra.items():
            if len(v) != n:
                raise SchemaError(f"{where}: extra[{k!r}] has {len(v)} rows, expected {n}")
        for name, arr in (("particles", self.particles), ("jets", self.jets), ("weights", self.weights)):
            bad = ~np.isfinite(arr)
            if bad.any():
                rows = np.unique(np.nonzero(bad)[0])[:5]
                raise SchemaError(f"{where}: {name} has NaN/inf values (first bad rows {rows.tolist()})")
        # padding is front-packed: no real particle after a padded slot
        if self.mask.size and (np.diff(self.mask.astype(np.int8), axis=1) > 0).any():
            raise SchemaError(f"{where}: mask is not front-packed (real particles after padding)")
        return self


def pad_particles(arr: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad (or truncate) axis 1 of ``arr`` to ``n``."""
    if arr.shape[1] == n:
        return arr
    if arr.shape[1] > n:
        return arr[:, :n]
    pad = [(0, 0)] * arr.ndim
    pad[1] = (0, n - arr.shape[1])
    return np.pad(arr, pad)


def sort_and_truncate(particles: np.ndarray, mask: np.ndarray, max_particles: int):
    """Order particles by decreasing pT (column 0), pack real ones first, keep ``max_particles``."""
    pt = np.where(mask, particles[..., 0], -np.inf)
    order = np.argsort(-pt, axis=1, kind="stable")[:, :max_particles]
    p = np.take_along_axis(particles, order[..., None], axis=1)
    m = np.take_along_axis(mask, order, axis=1)
    p = np.where(m[..., None], p, 0.0).astype(np.float32)
    if p.shape[1] < max_particles:
        p = pad_particles(p, max_particles)
        m = pad_particles(m, max_particles)
    return p, m


#: Relative difference |E - |p|| / E below which a float32-stored energy cannot resolve a mass:
#: a few float32 ulps (2^-23 each), covering the rounding of E, pT and eta on any CPU.
_FLOAT32_MASS_RESOLUTION = 4.0 * 2.0**-23


def jet_features_from_particles(particles: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(pT, eta, phi, m, n) of the four-vector sum of the (massless-or-not) particles.

    Sums run in float64. A particle whose stored energy equals its momentum to float32 precision
    carries no resolvable mass (the float32 energy cannot hold it), so its energy is taken as |p|
    in float64: otherwise the rounding of E alone gives a single massless particle a "mass" of
    sqrt(2 E dE) ~ 0.03 GeV at 80 GeV, which cancellation in E^2 - p^2 turns into a CPU-dependent value.
    """
    pt, eta, phi, e = (np.where(mask, particles[..., i], 0.0).astype(np.float64) for i in range(4))
    p_abs = pt * np.cosh(eta)
    e = np.where(np.abs(e - p_abs) <= _FLOAT32_MASS_RESOLUTION * np.abs(e), p_abs, e)
    px = (pt * np.cos(phi)).sum(1)
    py = (pt * np.sin(phi)).sum(1)
    pz = (pt * np.sinh(eta)).sum(1)
    en = e.sum(1)
    jpt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        jeta = np.where(jpt > 0, np.arcsinh(np.where(jpt > 0, pz / np.where(jpt > 0, jpt, 1), 0)), 0.0)
    jphi = np.arctan2(py, px)
    m2 = en**2 - px**2 - py**2 - pz**2
    jm = np.sqrt(np.clip(m2, 0, None))
    n = mask.sum(1)
    return np.stack([jpt, jeta, jphi, jm, n], axis=1).astype(np.float32)


# ---------------------------------------------------------------------- files
def check_collections(collections: Mapping[str, JetSet], where: str) -> None:
    """What the collections of one file (or one chunk of it) must be: at least one, row-aligned,
    each a valid JetSet; else a SchemaError naming ``where``."""
    if not collections:
        raise SchemaError(f"{where}: nothing to write (no collections)")
    lengths = {name: len(js) for name, js in collections.items()}
    if len(set(lengths.values())) != 1:
        raise SchemaError(f"{where}: collections must be row-aligned, got lengths {lengths}")
    for name, js in collections.items():
        js.validate(where=f"{where}:{name}")


def write_jetsets(
    path: str | os.PathLike,
    collections: Mapping[str, JetSet],
    *,
    dataset: str,
    label_names: Iterable[str],
    info: Mapping | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write named, row-aligned JetSets to ``path`` atomically (temp file + rename)."""
    import h5py

    path = Path(path)
    check_collections(collections, str(path))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        write_header(f, dataset=dataset, label_names=label_names, collections=list(collections), info=info)
        for name, js in collections.items():
            g = f.create_group(name)
            g.attrs["particle_features"] = json.dumps(list(js.particle_features))
            g.attrs["jet_features"] = json.dumps(list(JET_FEATURES))
            chunk_rows = min(max(len(js), 1), 1024)
            kw = dict(compression=compression) if compression else {}
            for key in ("particles", "mask"):
                arr = getattr(js, key)
                g.create_dataset(key, data=arr, chunks=(chunk_rows,) + arr.shape[1:] if len(js) else None, **kw)
            g.create_dataset("jets", data=js.jets)
            g.create_dataset("labels", data=js.labels)
            g.create_dataset("weights", data=js.weights)
            if js.extra:
                e = g.create_group("extra")
                for k, v in js.extra.items():
                    e.create_dataset(k, data=v)
    return path


def write_header(f, *, dataset: str, label_names: Iterable[str], collections: list[str], info: Mapping | None) -> None:
    """The root attributes that make an HDF5 file a jetlab schema file (see module docstring)."""
    from jetlab import __version__

    f.attrs["jetlab_schema"] = SCHEMA_VERSION
    f.attrs["dataset"] = dataset
    f.attrs["label_names"] = json.dumps(list(label_names))
    f.attrs["jetlab_version"] = __version__
    f.attrs["collections"] = json.dumps(list(collections))
    f.attrs["info"] = json.dumps(dict(info or {}), default=str)


def write_jetset(path, jetset: JetSet, *, dataset: str, label_names, info=None, collection="jets") -> Path:
    """Single-collection shortcut for :func:`write_jetsets`."""
    return write_jetsets(path, {collection: jetset}, dataset=dataset, label_names=label_names, info=info)


@dataclass
class FileInfo:
    path: Path
    dataset: str
    label_names: tuple[str, ...]
    collections: tuple[str, ...]
    n_rows: int
    particle_features: dict[str, tuple[str, ...]]
    max_particles: dict[str, int]
    jetlab_version: str
    info: dict


def inspect_file(path: str | os.PathLike) -> FileInfo:
    """Read a jetlab file's header without loading arrays; clear errors for foreign files."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such jetlab file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise SchemaError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f, damaged_file_errors(path, "the jetlab header", "HDF5 file"):
        if "jetlab_schema" not in f.attrs:
            raise SchemaError(f"{path}: not a jetlab file (missing root attribute 'jetlab_schema')")
        version = int(f.attrs["jetlab_schema"])
        if version != SCHEMA_VERSION:
            raise SchemaError(f"{path}: jetlab schema version {version}, this jetlab reads {SCHEMA_VERSION}")
        cols = tuple(json.loads(f.attrs["collections"]))
        feats, pmax, n = {}, {}, None
        for c in cols:
            if c not in f:
                raise SchemaError(f"{path}: collection {c!r} listed but missing")
            for key in ("particles", "mask", "jets", "labels", "weights"):
                if key not in f[c]:
                    raise SchemaError(f"{path}: collection {c!r} lacks dataset {key!r}")
            feats[c] = tuple(json.loads(f[c].attrs["particle_features"]))
            pmax[c] = int(f[c]["particles"].shape[1])
            n = int(f[c]["labels"].shape[0])
        return FileInfo(
            path=path,
            dataset=str(f.attrs["dataset"]),
            label_names=tuple(json.loads(f.attrs["label_names"])),
            collections=cols,
            n_rows=int(n or 0),
            particle_features=feats,
            max_particles=pmax,
            jetlab_version=str(f.attrs.get("jetlab_version", "?")),
            info=json.loads(f.attrs.get("info", "{}")),
        )


def read_jetset(
    path: str | os.PathLike,
    collection: str | None = None,
    start: int = 0,
    stop: int | None = None,
    *,
    validate: bool = True,
) -> JetSet:
    """Read rows ``[start, stop)`` of one collection (the only one if ``collection`` is None)."""
    import h5py

    meta = inspect_file(path)
    if collection is None:
        if len(meta.collections) != 1:
            raise SchemaError(f"{path}: holds collections {list(meta.collections)}; pass collection=...")
        collection = meta.collections[0]
    if collection not in meta.collections:
        raise SchemaError(f"{path}: no collection {collection!r} (has {list(meta.collections)})")
    reading = damaged_file_errors(path, f"collection {collection!r} rows [{start}:{stop}]", "HDF5 file")
    with reading, h5py.File(path, "r") as f:
        g = f[collection]
        sl = slice(start, stop)
        js = JetSet(
            particles=g["particles"][sl],
            mask=g["mask"][sl],
            jets=g["jets"][sl],
            labels=g["labels"][sl],
            weights=g["weights"][sl],
            particle_features=meta.particle_features[collection],
            extra={k: g["extra"][k][sl] for k in g["extra"]} if "extra" in g else {},
        )
    if validate:
        js.validate(where=f"{path}:{collection}")
    return js


def read_jetsets(path, start: int = 0, stop: int | None = None) -> dict[str, JetSet]:
    """All collections of a file, row-aligned."""
    meta = inspect_file(path)
    return {c: read_jetset(path, c, start, stop) for c in meta.collections}
