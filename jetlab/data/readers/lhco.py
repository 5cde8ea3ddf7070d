"""LHC Olympics 2020 R&D (Zenodo 4536377): pandas HDF5 events, re-clustered with FastJet.

``events_anomalydetection_v2.h5`` is a pandas DataFrame (key ``df``, 'fixed' format) of
700 massless particles x (pT, eta, phi) = 2100 zero-padded columns plus a label column.
pandas' fixed format stores ``df/axis0`` (column labels), ``df/axis1`` (row index) and the
values in type-homogeneous blocks ``df/block{k}_values`` (rows x columns of the block) whose
column labels are ``df/block{k}_items``; we read those with h5py, slicing rows directly.
pandas' ``format="table"`` files and PyTables compression (blosc, blosc:lz4, zlib, bzip2, ...)
are read too (:class:`PandasFrame`).
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from jetlab.simulator.quiet_fastjet import fastjet_module

from ..preprocess import wrap_phi
from ..schema import KINEMATIC_FEATURES, JetSet, SchemaError
from ._common import (
    DroppedEventsWarning,
    PathLike,
    check_filters,
    check_finite,
    damaged_file_errors,
    existing_file,
    fail,
    finish_particles,
    four_vector_features,
    h5py_with_filters,
    read_dataset,
    resolve_range,
)

LHCO_LABELS: tuple[str, ...] = ("QCD", "signal")
N_PARTICLES = 700
N_COLUMNS = 3 * N_PARTICLES
FEATURE_COLUMNS: tuple[str, ...] = (
    "pxj1", "pyj1", "pzj1", "mj1", "tau1j1", "tau2j1", "tau3j1",
    "pxj2", "pyj2", "pzj2", "mj2", "tau1j2", "tau2j2", "tau3j2",
)  # fmt: skip


def _decode(values) -> list:
    return [v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v for v in values]


class _NoGlobals(pickle.Unpickler):
    """Unpickles only plain lists/tuples/strings/numbers (pandas' table metadata); never code."""

    def find_class(self, module, name):  # noqa: D102
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def _plain_unpickle(data) -> Any:
    return _NoGlobals(io.BytesIO(bytes(data))).load()


class PandasFrame:
    """Row-sliced access to a DataFrame written by ``DataFrame.to_hdf`` without loading it all.

    Both pandas layouts are read with h5py (rows sliced on disk), whatever PyTables
    compression they carry (``hdf5plugin`` registers blosc, blosc2, bzip2, ...):

    * ``format="fixed"``: ``<key>/axis0`` (column labels), ``<key>/block{k}_values`` (rows x
      columns of one dtype) with labels ``<key>/block{k}_items``;
    * ``format="table"``: one compound dataset ``<key>/table`` with fields ``values_block_{k}``
      (rows x columns); the column labels are pandas' pickled metadata, unpickled with globals
      refused (falls back to ``pandas.HDFStore`` for exotic labels).
    """

    def __init__(self, path: PathLike, key: str = "df") -> None:
        h5py = h5py_with_filters()
        self.path = existing_file(path)
        self.key = key
        try:
            f = h5py.File(self.path, "r")
        except OSError as exc:
            raise SchemaError(f"{self.path}: not a readable HDF5 file ({exc})") from None
        with f, damaged_file_errors(self.path, f"pandas frame {key!r}", "HDF5 file"):
            if key not in f:
                raise fail(
                    self.path, key, f"missing (a pandas HDF5 file with key {key!r} was expected; has {list(f.keys())})"
                )
            g = f[key]
            self.table = "table" in g
            self.blocks: list[tuple[str, list]] = []  # (dataset or field name, column labels)
            if self.table:
                self._init_table(g)
            else:
                self._init_fixed(g)

    def _init_fixed(self, g) -> None:
        key = self.key
        if "axis0" not in g or "block0_values" not in g:
            raise fail(
                self.path, key, "not a pandas 'fixed' frame (no axis0/block0_values) nor a 'table' frame (no table)"
            )
        self.columns = _decode(read_dataset(self.path, f"{key}/axis0", g["axis0"]))
        self.n_rows = int(g["block0_values"].shape[0])
        for b in range(int(g.attrs.get("nblocks", 1))):
            vals, items = f"block{b}_values", f"block{b}_items"
            if vals not in g or items not in g:
                raise fail(self.path, f"{key}/{vals}", "missing pandas block")
            if g[vals].ndim != 2 or g[vals].shape[0] != self.n_rows:
                raise fail(
                    self.path, f"{key}/{vals}", f"expected shape ({self.n_rows}, n_columns), got {g[vals].shape}"
                )
            check_filters(self.path, f"{key}/{vals}", g[vals])
            self.blocks.append((vals, _decode(read_dataset(self.path, f"{key}/{items}", g[items]))))

    def _init_table(self, g) -> None:
        key = self.key
        t = g["table"]
        names = t.dtype.names or ()
        fields = sorted((n for n in names if n.startswith("values_block_")), key=lambda n: int(n.rsplit("_", 1)[1]))
        if not fields:
            raise fail(
                self.path, f"{key}/table", f"not a pandas table (fields {list(names)}; expected values_block_0 ...)"
            )
        check_filters(self.path, f"{key}/table", t)
        self.n_rows = int(t.shape[0])
        try:
            labels = [list(_plain_unpickle(t.attrs[f"{fld}_kind"])) for fld in fields]
        except (KeyError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
            labels = self._table_labels_from_pandas(fields)
        for fld, cols in zip(fields, labels):
            width = int(np.prod(t.dtype[fld].shape, dtype=np.int64)) if t.dtype[fld].shape else 1
            if width != len(cols):
                raise fail(
                    self.path, f"{key}/table", f"field {fld!r} holds {width} columns but its labels name {len(cols)}"
                )
            self.blocks.append((fld, _decode(np.asarray(cols, dtype=object))))
        self.columns = [c for _, cols in self.blocks for c in cols]

    def _table_labels_from_pandas(self, fields: list[str]) -> list[list]:
        try:
            import pandas as pd
        except ImportError:
            raise fail(
                self.path, self.key, "a pandas 'table' frame with non-plain column labels: reading them needs pandas"
            ) from None
        with pd.HDFStore(self.path, "r") as store:
            axes = {a.cname: list(a.values) for a in store.get_storer(self.key).values_axes}
        return [axes[f] for f in fields]

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``[start, stop)`` as float64 (n, n_columns) in column order."""
        h5py = h5py_with_filters()
        start, stop = resolve_range(self.path, self.n_rows, start, stop)
        out = np.empty((stop - start, len(self.columns)), dtype=np.float64)
        pos = {c: i for i, c in enumerate(self.columns)}
        with h5py.File(self.path, "r") as f:
            g = f[self.key]
            for name, items in self.blocks:
                if self.table:
                    with damaged_file_errors(
                        self.path, f"key '{self.key}/table'", "HDF5 file"
                    ):  # filters checked on open
                        block = np.asarray(g["table"].fields(name)[start:stop]).reshape(stop - start, -1)
                else:
                    block = read_dataset(self.path, f"{self.key}/{name}", g[name], slice(start, stop))
                idx = [pos[c] for c in items]
                if idx == list(range(idx[0], idx[0] + len(idx))):
                    out[:, idx[0] : idx[0] + len(idx)] = block
                else:
                    out[:, idx] = block
        return out


def lhco_num_events(path: PathLike) -> int:
    return PandasFrame(path).n_rows


def _cluster(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mask: np.ndarray, R: float):
    """Anti-kT over a whole chunk at once; returns per-event jets (px, py, pz, E) and constituent indices."""
    import awkward as ak

    fastjet = fastjet_module()

    counts = mask.sum(1)
    cols = {
        "px": pt[mask] * np.cos(phi[mask]),
        "py": pt[mask] * np.sin(phi[mask]),
        "pz": pt[mask] * np.sinh(eta[mask]),
        "E": pt[mask] * np.cosh(eta[mask]),
    }
    events = ak.unflatten(ak.zip(cols), counts)
    cs = fastjet.ClusterSequence(events, fastjet.JetDefinition(fastjet.antikt_algorithm, R))
    return cs.inclusive_jets(), cs.constituent_index()


def read_lhco(
    path: PathLike, max_particles: int = 279, start: int = 0, stop: int | None = None, R: float = 1.0
) -> dict[str, JetSet]:
    """Cluster LHCO R&D events ``[start, stop)`` with anti-kT ``R`` into ``{"jet1", "jet2"}``.

    The two highest-pT jets of each event are kept and then ordered by mass: ``jet1`` is the
    heavier (the usual LHCO convention, m_J1 >= m_J2). Each collection stores the jet's
    constituents (massless, pT-ordered, truncated to ``max_particles``), jet (pT, eta, phi, m,
    constituent count), ``extra["mjj"]`` (dijet invariant mass) and ``extra["event_index"]``
    (row in the file). Labels: 0 QCD, 1 signal (label column; 0 when the file has none, as
    in the black boxes). Events with fewer than two jets are dropped with a
    :class:`DroppedEventsWarning` carrying the count; ``event_index`` shows which survived.
    """
    path_str, parts, labels, start = _read_rows(path, start, stop)
    n = len(parts)
    pt, eta, phi = parts[..., 0], parts[..., 1], parts[..., 2]
    mask = pt > 0

    jets, cidx = _cluster(pt, eta, phi, mask, R)
    jets, cidx, keep = _two_leading(jets, cidx)
    n_drop = int((~keep).sum())
    if n_drop:
        warnings.warn(
            DroppedEventsWarning(f"{path_str}: dropped {n_drop} of {n} event(s) with fewer than two jets", n_drop),
            stacklevel=2,
        )
    jets, cidx = jets[keep], cidx[keep]
    event_index = np.nonzero(keep)[0] + start
    # real particles of all events in the order fastjet saw them (row-major), for constituent lookup
    nk = int(keep.sum())
    flat = parts[mask]
    offsets = (np.cumsum(mask.sum(1)) - mask.sum(1))[keep]
    (jpt, jeta, jphi, jm), mjj = _dijet_kinematics(jets, nk)
    heavier_second = jm[:, 1] > jm[:, 0]
    slot = np.stack([heavier_second.astype(int), 1 - heavier_second.astype(int)], axis=1)  # [jet1, jet2]

    out = {}
    for name, k in (("jet1", 0), ("jet2", 1)):
        which = slot[:, k]
        rows = np.arange(nk)
        particles, pmask, ncon = _constituents(cidx, which, flat, offsets, max_particles)
        jetf = np.stack([jpt[rows, which], jeta[rows, which], jphi[rows, which], jm[rows, which], ncon], axis=1)
        js = JetSet(
            particles,
            pmask,
            jetf,
            labels[keep].astype(np.int64),
            None,
            KINEMATIC_FEATURES,
            {"mjj": mjj.astype(np.float32), "event_index": event_index.astype(np.int64)},
        )
        out[name] = js.validate(where=f"{path_str}:{name}")
    return out


def _read_rows(path: PathLike, start: int, stop: int | None) -> tuple[Path, np.ndarray, np.ndarray, int]:
    """Rows ``[start, stop)`` of an LHCO table, checked: (file path, particles (n, 700, 3) as
    pT, eta, phi, labels, resolved start)."""
    frame = PandasFrame(path)
    if len(frame.columns) not in (N_COLUMNS, N_COLUMNS + 1):
        raise fail(
            frame.path,
            "df",
            f"expected {N_COLUMNS} particle columns (700 x pT, eta, phi) plus an optional label column, "
            f"got {len(frame.columns)} columns",
        )
    start, stop = resolve_range(frame.path, frame.n_rows, start, stop)
    data = frame.read(start, stop)
    check_finite(frame.path, "df", data, row_offset=start)
    n = len(data)
    parts = data[:, :N_COLUMNS].reshape(n, N_PARTICLES, 3)
    labels = data[:, N_COLUMNS] if data.shape[1] > N_COLUMNS else np.zeros(n)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise fail(frame.path, "df", f"label column must be 0 or 1, got {np.unique(labels)[:5].tolist()}")
    return frame.path, parts, labels, start


def _two_leading(jets, cidx):
    """Each event's two highest-pT jets and their constituent indices, and which events have two."""
    import awkward as ak

    jpt_all = np.hypot(jets.px, jets.py)
    order = ak.argsort(jpt_all, axis=1, ascending=False, stable=True)
    jets, cidx = jets[order][:, :2], cidx[order][:, :2]
    keep = ak.to_numpy(ak.num(jets, axis=1)) >= 2
    return jets, cidx, keep


def _dijet_kinematics(jets, nk: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """(pT, eta, phi, m) of both jets, each shaped (events, 2), and the dijet invariant mass."""
    import awkward as ak

    four = {k: ak.to_numpy(jets[k]).reshape(nk, 2) for k in ("px", "py", "pz", "E")}
    jet_features = four_vector_features(four["px"], four["py"], four["pz"], four["E"])
    tot = {k: v.sum(1) for k, v in four.items()}
    mjj = four_vector_features(tot["px"], tot["py"], tot["pz"], tot["E"])[3]
    return jet_features, mjj


def _constituents(cidx, which: np.ndarray, flat: np.ndarray, offsets: np.ndarray, max_particles: int):
    """Constituents of jet ``which`` (0 or 1) of each event: schema particles, their mask and the
    constituent count. ``flat`` holds every event's real particles, event ``i`` from ``offsets[i]``."""
    import awkward as ak

    nk = len(which)
    idx_k = cidx[ak.from_regular(which[:, None])][:, 0]  # var-list index = jagged: per event, jet `which`
    ncon = ak.to_numpy(ak.num(idx_k, axis=1)).astype(np.int64)
    width = max(int(ncon.max()) if nk else 0, 1)
    idx = ak.to_numpy(ak.fill_none(ak.pad_none(idx_k, width, axis=1), -1)).reshape(nk, width).astype(np.int64)
    cmask = idx >= 0
    cp = flat[np.where(cmask, idx + offsets[:, None], 0)] if len(flat) else np.zeros(idx.shape + (3,))
    c_pt, c_eta, c_phi = cp[..., 0], cp[..., 1], cp[..., 2]
    particles, pmask = finish_particles(
        [c_pt, c_eta, wrap_phi(c_phi), c_pt * np.cosh(c_eta)], cmask & (c_pt > 0), max_particles
    )
    return particles, pmask, ncon


def read_lhco_features(path: PathLike) -> dict[str, np.ndarray]:
    """The R&D ``.features.h5`` table as ``{column: array}`` plus ``mjj`` from the two jets.

    Columns (GeV): ``pxj1, pyj1, pzj1, mj1, tau1j1..3, ...j2, label`` for the two leading
    anti-kT R = 1 jets. ``mjj`` is the invariant mass of their four-vector sum.
    """
    frame = PandasFrame(path)
    cols = [str(c) for c in frame.columns]
    missing = [c for c in FEATURE_COLUMNS if c not in cols]
    if missing:
        raise fail(frame.path, "df", f"missing feature column(s) {missing} (has {cols})")
    data = frame.read()
    check_finite(frame.path, "df", data)
    out = {c: data[:, i] for i, c in enumerate(cols)}
    e = {}
    for j in ("j1", "j2"):
        e[j] = np.sqrt(out[f"px{j}"] ** 2 + out[f"py{j}"] ** 2 + out[f"pz{j}"] ** 2 + out[f"m{j}"] ** 2)
    px, py, pz = (out[f"{a}j1"] + out[f"{a}j2"] for a in ("px", "py", "pz"))
    out["mjj"] = np.sqrt(np.clip((e["j1"] + e["j2"]) ** 2 - px**2 - py**2 - pz**2, 0.0, None))
    if "label" in out:
        out["label"] = out["label"].astype(np.int64)
    return out
