"""Jet substructure observables on the common schema, vectorised over jets.

Every function takes either a :class:`~jetlab.data.schema.JetSet`, a padded particle array
``(N, P, F>=4)`` whose first columns are ``(pT, eta, phi, E)`` (the schema order), or a tuple of
four ``(N, P)`` arrays ``(pt, eta, phi, E)``; plus an optional ``(N, P)`` boolean mask (default:
the JetSet's mask, or ``pT > 0`` for bare arrays). All maths is done in float64.

Conventions (chosen to match FastJet and the OmniFold Z+jets observables):

* The jet is the E-scheme four-vector sum of its (masked) constituents.
* Angular distances are ``Delta R = sqrt(Delta y^2 + Delta phi^2)`` in *rapidity* ``y`` and
  azimuth, as FastJet does; for massless particles ``y`` equals the pseudorapidity.
* Jets without constituents give 0 for every observable (never NaN).

Observables needing a reclustering (N-subjettiness axes, soft drop) use FastJet's awkward
interface in bulk (one ``ClusterSequence`` per chunk of jets, no per-jet Python loop). FastJet
is an optional dependency (``pip install 'jetlab[gen]'``); it is imported on first use.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from jetlab.data.schema import JetSet
from jetlab.simulator.quiet_fastjet import fastjet_module

__all__ = [
    "DEFAULT_OBSERVABLES",
    "OBSERVABLES",
    "ObservableSpec",
    "compute_observables",
    "jet_mass",
    "jet_pt",
    "jet_width",
    "log_rho",
    "multiplicity",
    "nsubjettiness",
    "observable_bins",
    "soft_drop",
    "tau21",
    "tau32",
    "zg",
]

#: FastJet's largest allowed radius: with it every particle is merged pairwise before any
#: beam merging, so ``exclusive_jets(n)`` partitions *all* constituents into n subjets.
_MAX_R = 1000.0
#: Default number of jets handed to one FastJet ClusterSequence (bounds peak memory).
_CHUNK = 10000


# ----------------------------------------------------------------------------- inputs
class _Kin(NamedTuple):
    pt: np.ndarray
    y: np.ndarray
    phi: np.ndarray
    e: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    mask: np.ndarray


def _rapidity(pt: np.ndarray, pz: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Rapidity robust to float rounding: ``asinh(pz / mT)`` with ``mT >= pT``."""
    mt = np.sqrt(np.maximum(e * e - pz * pz, pt * pt))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mt > 0, np.arcsinh(np.divide(pz, mt, out=np.zeros_like(pz), where=mt > 0)), 0.0)


def _delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def _kinematics(jets, mask=None, where: str = "jets") -> _Kin:
    """Normalise the accepted inputs to float64 kinematic arrays with padding zeroed."""
    if isinstance(jets, _Kin):  # already normalised (internal reuse)
        return jets
    if isinstance(jets, JetSet):
        p = jets.particles
        pt, eta, phi, e = (np.asarray(p[..., i], dtype=np.float64) for i in range(4))
        m = jets.mask if mask is None else mask
    elif isinstance(jets, (tuple, list)):
        if len(jets) != 4:
            raise ValueError(f"{where}: a tuple input must be (pt, eta, phi, E), got {len(jets)} arrays")
        pt, eta, phi, e = (np.asarray(a, dtype=np.float64) for a in jets)
        shapes = {a.shape for a in (pt, eta, phi, e)}
        if len(shapes) != 1 or pt.ndim != 2:
            raise ValueError(f"{where}: (pt, eta, phi, E) must be four (N, P) arrays, got shapes {sorted(shapes)}")
        m = mask
    else:
        p = np.asarray(jets)
        if p.ndim != 3 or p.shape[-1] < 4:
            raise ValueError(
                f"{where}: expected a JetSet, a (N, P, F>=4) particle array with columns "
                f"(pt, eta, phi, E, ...) or a (pt, eta, phi, E) tuple; got an array of shape {p.shape}"
            )
        pt, eta, phi, e = (np.asarray(p[..., i], dtype=np.float64) for i in range(4))
        m = mask
    if m is None:
        m = pt > 0
    m = np.asarray(m, dtype=bool)
    if m.shape != pt.shape:
        raise ValueError(f"{where}: mask shape {m.shape} does not match particles {pt.shape}")
    pt = np.where(m, pt, 0.0)
    eta = np.where(m, eta, 0.0)
    phi = np.where(m, phi, 0.0)
    e = np.where(m, e, 0.0)
    px = pt * np.cos(phi)
    py = pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    y = np.where(m, _rapidity(pt, pz, e), 0.0)
    return _Kin(pt, y, phi, e, px, py, pz, m)


class _Jet(NamedTuple):
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pt: np.ndarray
    y: np.ndarray
    phi: np.ndarray
    mass: np.ndarray


def _jet_vector(k: _Kin) -> _Jet:
    px, py, pz, e = k.px.sum(1), k.py.sum(1), k.pz.sum(1), k.e.sum(1)
    pt = np.hypot(px, py)
    m2 = e * e - px * px - py * py - pz * pz
    return _Jet(px, py, pz, e, pt, _rapidity(pt, pz, e), np.arctan2(py, px), np.sqrt(np.clip(m2, 0, None)))


# ------------------------------------------------------------------------ simple ones
def jet_pt(jets, mask=None) -> np.ndarray:
    """Transverse momentum of the constituent four-vector sum, shape (N,)."""
    return _jet_vector(_kinematics(jets, mask, "jet_pt")).pt


def jet_mass(jets, mask=None) -> np.ndarray:
    """Invariant mass of the constituent sum, ``sqrt(max(E^2 - |p|^2, 0))``, shape (N,).

    Computed from the particles (not the stored jet row) so it is defined identically for
    every source; for two massless particles it equals ``sqrt(2 pT1 pT2 (cosh dy - cos dphi))``.
    """
    return _jet_vector(_kinematics(jets, mask, "jet_mass")).mass


def multiplicity(jets, mask=None) -> np.ndarray:
    """Number of (masked-in) constituents, shape (N,), int64."""
    return _kinematics(jets, mask, "multiplicity").mask.sum(1).astype(np.int64)


def jet_width(jets, mask=None) -> np.ndarray:
    """pT-weighted mean distance to the jet axis, ``sum_i pT_i dR_i / sum_i pT_i`` (N,).

    The axis is the E-scheme jet direction; ``dR`` is measured in (y, phi). This is the
    beta = 1 angularity of the OmniFold paper (not divided by the jet radius).
    """
    k = _kinematics(jets, mask, "jet_width")
    j = _jet_vector(k)
    dr = np.hypot(k.y - j.y[:, None], _delta_phi(k.phi, j.phi[:, None]))
    num = (k.pt * dr * k.mask).sum(1)
    den = k.pt.sum(1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


# ---------------------------------------------------------------------------- fastjet
def _fastjet():
    try:
        import awkward as ak

        fastjet = fastjet_module()
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "jetlab.physics: N-subjettiness and soft drop recluster constituents with FastJet; "
            "install it with `pip install 'jetlab[gen]'` (needs the `fastjet` and `awkward` packages)"
        ) from exc
    return ak, fastjet


def _to_awkward(k: _Kin, rows: np.ndarray):
    """Jagged Momentum4D array of the constituents of ``rows`` (FastJet's input format)."""
    ak, _ = _fastjet()
    m = k.mask[rows]
    counts = m.sum(1)
    flat = {
        "px": k.px[rows][m],
        "py": k.py[rows][m],
        "pz": k.pz[rows][m],
        "E": k.e[rows][m],
    }
    arr = ak.zip(flat, with_name="Momentum4D")
    return ak.unflatten(arr, counts)


def _cluster(k: _Kin, rows: np.ndarray, algorithm: str):
    ak, fastjet = _fastjet()
    algo = {"kt": fastjet.kt_algorithm, "ca": fastjet.cambridge_algorithm}[algorithm]
    return fastjet.ClusterSequence(_to_awkward(k, rows), fastjet.JetDefinition(algo, _MAX_R))


def _chunks(n: int, chunk_size: int) -> Iterable[slice]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def _subset(k: _Kin, sl: slice | np.ndarray) -> _Kin:
    return _Kin(*(a[sl] for a in k))


# ------------------------------------------------------------------ N-subjettiness
def nsubjettiness(
    jets,
    mask=None,
    *,
    n: Sequence[int] = (1, 2, 3),
    beta: float = 1.0,
    R0: float = 0.4,
    chunk_size: int = _CHUNK,
) -> np.ndarray:
    """Normalised N-subjettiness ``tau_N`` for each ``N`` in ``n``, shape (N_jets, len(n)).

    ``tau_N = sum_i pT_i min_k dR_ik^beta / sum_i pT_i R0^beta`` with the axes ``k`` given by
    the exclusive-kT subjets (FastJet ``kt_algorithm``, ``exclusive_jets(n_jets=N)``) of the
    constituents; ``tau_1`` uses the E-scheme jet axis, which is the same thing. Jets with at
    most ``N`` constituents have ``tau_N = 0`` (every particle can be its own axis).
    Ratios (``tau21``, ``tau32``) do not depend on ``R0``.
    """
    ns = [int(v) for v in np.atleast_1d(n)]
    if not ns or min(ns) < 1:
        raise ValueError(f"nsubjettiness: n must be positive integers, got {list(n)!r}")
    if R0 <= 0:
        raise ValueError(f"nsubjettiness: R0 must be > 0, got {R0}")
    k = _kinematics(jets, mask, "nsubjettiness")
    out = np.zeros((len(k.pt), len(ns)), dtype=np.float64)
    for sl in _chunks(len(k.pt), chunk_size):
        kc = _subset(k, sl)
        counts = kc.mask.sum(1)
        denom = kc.pt.sum(1) * R0**beta
        for col, nn in enumerate(ns):
            rows = np.nonzero(counts > nn)[0]
            if rows.size == 0:
                continue
            if nn == 1:
                j = _jet_vector(_subset(kc, rows))
                ay, aphi = j.y[:, None], j.phi[:, None]
            else:
                ak, _ = _fastjet()
                cs = _cluster(kc, rows, "kt")
                with warnings.catch_warnings():
                    # fastjet-python mis-detects kT as a non-kT algorithm here and warns.
                    warnings.filterwarnings("ignore", message="dcut and exclusive jets")
                    axes = cs.exclusive_jets(n_jets=nn)
                comp = [
                    np.asarray(ak.flatten(axes[f]), dtype=np.float64).reshape(rows.size, nn)
                    for f in ("px", "py", "pz", "E")
                ]
                apt = np.hypot(comp[0], comp[1])
                ay, aphi = _rapidity(apt, comp[2], comp[3]), np.arctan2(comp[1], comp[0])
            y, phi = kc.y[rows][:, :, None], kc.phi[rows][:, :, None]
            dr = np.hypot(y - ay[:, None, :], _delta_phi(phi, aphi[:, None, :]))
            dmin = dr.min(axis=2) ** beta
            num = (kc.pt[rows] * dmin * kc.mask[rows]).sum(1)
            out[sl.start + rows, col] = num / denom[rows]
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def tau21(jets, mask=None, *, beta: float = 1.0, R0: float = 0.4) -> np.ndarray:
    """``tau_2 / tau_1`` (0 where ``tau_1 = 0``, i.e. single-particle jets). Small = 2-prong."""
    t = nsubjettiness(jets, mask, n=(1, 2), beta=beta, R0=R0)
    return _ratio(t[:, 1], t[:, 0])


def tau32(jets, mask=None, *, beta: float = 1.0, R0: float = 0.4) -> np.ndarray:
    """``tau_3 / tau_2`` (0 where ``tau_2 = 0``). Small = 3-prong (top-like)."""
    t = nsubjettiness(jets, mask, n=(2, 3), beta=beta, R0=R0)
    return _ratio(t[:, 1], t[:, 0])


# ------------------------------------------------------------------------ soft drop
def soft_drop(
    jets,
    mask=None,
    *,
    beta: float = 0.0,
    z_cut: float = 0.1,
    R0: float = 0.4,
    chunk_size: int = _CHUNK,
) -> dict[str, np.ndarray]:
    """Soft-drop grooming of each jet; returns ``{"zg", "rg", "mass", "pt"}`` arrays (N,).

    The constituents are reclustered with Cambridge/Aachen and declustered from the top,
    dropping the softer branch until ``min(pT1, pT2) / (pT1 + pT2) > z_cut (dR12 / R0)^beta``
    (FastJet contrib SoftDrop via ``exclusive_jets_softdrop_grooming``, scalar-z symmetry,
    follow the harder branch). ``zg`` and ``rg`` are the momentum fraction and opening angle of
    the first splitting that passes; ``mass`` and ``pt`` are those of the groomed jet.
    Jets where no splitting passes (groomed down to one constituent) get ``zg = rg = 0``;
    empty jets get zeros everywhere.
    """
    if z_cut < 0:
        raise ValueError(f"soft_drop: z_cut must be >= 0, got {z_cut}")
    if R0 <= 0:
        raise ValueError(f"soft_drop: R0 must be > 0, got {R0}")
    k = _kinematics(jets, mask, "soft_drop")
    n = len(k.pt)
    out = {key: np.zeros(n, dtype=np.float64) for key in ("zg", "rg", "mass", "pt")}
    for sl in _chunks(n, chunk_size):
        kc = _subset(k, sl)
        rows = np.nonzero(kc.mask.sum(1) > 0)[0]
        if rows.size == 0:
            continue
        cs = _cluster(kc, rows, "ca")
        sd = cs.exclusive_jets_softdrop_grooming(njets=1, beta=float(beta), symmetry_cut=float(z_cut), R0=float(R0))
        idx = sl.start + rows
        zgs = np.asarray(sd["symmetrysoftdrop"], dtype=np.float64)
        rgs = np.asarray(sd["deltaRsoftdrop"], dtype=np.float64)
        # FastJet reports -1 when nothing passed: the groomed jet is a single constituent.
        out["zg"][idx] = np.where(zgs > 0, zgs, 0.0)
        out["rg"][idx] = np.where(rgs > 0, rgs, 0.0)
        out["mass"][idx] = np.asarray(sd["msoftdrop"], dtype=np.float64)
        out["pt"][idx] = np.asarray(sd["ptsoftdrop"], dtype=np.float64)
    return out


def zg(jets, mask=None, *, beta: float = 0.0, z_cut: float = 0.1, R0: float = 0.4) -> np.ndarray:
    """Groomed momentum fraction ``z_g`` (soft drop, default beta = 0, z_cut = 0.1)."""
    return soft_drop(jets, mask, beta=beta, z_cut=z_cut, R0=R0)["zg"]


def _log_rho_from(m_sd: np.ndarray, pt: np.ndarray, fill_value: float) -> np.ndarray:
    ok = (m_sd > 0) & (pt > 0)
    out = np.full(m_sd.shape, float(fill_value))
    out[ok] = 2.0 * np.log(m_sd[ok] / pt[ok])
    return out


def log_rho(
    jets,
    mask=None,
    *,
    beta: float = 0.0,
    z_cut: float = 0.1,
    R0: float = 0.4,
    fill_value: float = 0.0,
) -> np.ndarray:
    """``log rho = log(m_SD^2 / pT^2)`` with the soft-drop groomed mass and the *ungroomed* pT.

    Jets whose groomed mass is zero (a single massless constituent survives) have an undefined
    logarithm; they get ``fill_value`` (default 0, outside the physical range ``log rho < 0``,
    the OmniFold/OmniLearn convention, so they fall outside the usual [-14, -2] binning).
    """
    k = _kinematics(jets, mask, "log_rho")
    sd = soft_drop(k, beta=beta, z_cut=z_cut, R0=R0)
    return _log_rho_from(sd["mass"], _jet_vector(k).pt, fill_value)


# ------------------------------------------------------------------ the OmniFold set
@dataclass(frozen=True)
class ObservableSpec:
    """Plot metadata of an observable: axis label, default range, integer-valued or not."""

    name: str
    label: str
    range: tuple[float, float]
    integer: bool = False


#: Known observables with plot labels and the OmniLearn OmniFold binning ranges.
OBSERVABLES: dict[str, ObservableSpec] = {
    s.name: s
    for s in (
        ObservableSpec("mass", "Jet mass [GeV]", (0.0, 75.0)),
        ObservableSpec("multiplicity", "Constituent multiplicity", (0.0, 80.0), integer=True),
        ObservableSpec("width", "Jet width $w$", (0.0, 0.6)),
        ObservableSpec("log_rho", r"$\log\rho = \log(m_\mathrm{SD}^2/p_\mathrm{T}^2)$", (-14.0, -2.0)),
        ObservableSpec("tau21", r"$\tau_{21}$", (0.0, 1.2)),
        ObservableSpec("zg", r"$z_g$", (0.0, 0.5)),
        ObservableSpec("pt", r"Jet $p_\mathrm{T}$ [GeV]", (0.0, 1000.0)),
        ObservableSpec("tau32", r"$\tau_{32}$", (0.0, 1.2)),
        ObservableSpec("sd_mass", "Soft-drop mass [GeV]", (0.0, 75.0)),
        ObservableSpec("rg", r"$R_g$", (0.0, 0.4)),
    )
}
#: The six OmniFold observables, in the order of the OmniFold/OmniLearn papers' figures.
DEFAULT_OBSERVABLES: tuple[str, ...] = ("mass", "multiplicity", "width", "log_rho", "tau21", "zg")


def observable_bins(name: str, n_bins: int = 50) -> np.ndarray:
    """Default bin edges for ``name``: ``n_bins`` equal bins over its range, or unit-width bins
    centred on integers for integer observables (multiplicity)."""
    if name not in OBSERVABLES:
        raise KeyError(f"unknown observable {name!r}; known: {sorted(OBSERVABLES)}")
    spec = OBSERVABLES[name]
    lo, hi = spec.range
    if spec.integer:
        return np.arange(lo - 0.5, hi + 1.0, 1.0)
    if n_bins < 1:
        raise ValueError(f"observable_bins: n_bins must be >= 1, got {n_bins}")
    return np.linspace(lo, hi, n_bins + 1)


def compute_observables(
    jets,
    names: Iterable[str] | None = None,
    R0: float = 0.4,
    *,
    mask=None,
    z_cut: float = 0.1,
    beta_sd: float = 0.0,
) -> dict[str, np.ndarray]:
    """Compute several observables at once, sharing the reclusterings between them.

    ``names`` defaults to :data:`DEFAULT_OBSERVABLES` (jet mass, constituent multiplicity,
    width, log rho, tau21, z_g); any key of :data:`OBSERVABLES` is accepted. Soft drop uses
    ``beta_sd`` / ``z_cut`` / ``R0`` (OmniFold: 0 / 0.1 / 0.4).
    """
    names = list(DEFAULT_OBSERVABLES if names is None else names)
    unknown = [n for n in names if n not in OBSERVABLES]
    if unknown:
        raise KeyError(f"compute_observables: unknown observable(s) {unknown}; known: {sorted(OBSERVABLES)}")
    k = _kinematics(jets, mask, "compute_observables")
    jet = _jet_vector(k)
    sd: dict[str, np.ndarray] = {}  # filled only when a groomed observable is asked for
    if {"log_rho", "zg", "sd_mass", "rg"} & set(names):
        sd = soft_drop(k, beta=beta_sd, z_cut=z_cut, R0=R0)
    taus: dict[int, np.ndarray] = {}
    need = sorted({n for name in names for n in {"tau21": (1, 2), "tau32": (2, 3)}.get(name, ())})
    if need:
        t = nsubjettiness(k, n=need, R0=R0)
        taus = {nn: t[:, i] for i, nn in enumerate(need)}
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "mass":
            out[name] = jet.mass
        elif name == "pt":
            out[name] = jet.pt
        elif name == "multiplicity":
            out[name] = k.mask.sum(1).astype(np.int64)
        elif name == "width":
            out[name] = jet_width(k)
        elif name == "log_rho":
            out[name] = _log_rho_from(sd["mass"], jet.pt, 0.0)
        elif name == "zg":
            out[name] = sd["zg"]
        elif name == "sd_mass":
            out[name] = sd["mass"]
        elif name == "rg":
            out[name] = sd["rg"]
        elif name == "tau21":
            out[name] = _ratio(taus[2], taus[1])
        elif name == "tau32":
            out[name] = _ratio(taus[3], taus[2])
    return out
