"""Histogram figures: sample comparisons with ratio panels, jet observables, dijet mass, jet images."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jetlab.data.preprocess import wrap_phi
from jetlab.plot._numeric import as_1d, auto_edges, check_weights, weighted_hist
from jetlab.plot._style import COLORS, label_axes, style

Bins = int | Sequence[float] | np.ndarray


def _edges(bins: Bins, arrays, where: str, range_: tuple[float, float] | None = None) -> np.ndarray:
    if isinstance(bins, (int, np.integer)):
        if bins < 1:
            raise ValueError(f"{where}: bins must be >= 1, got {bins}")
        if range_ is not None:
            return np.linspace(float(range_[0]), float(range_[1]), int(bins) + 1)
        return auto_edges(arrays, int(bins))
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"{where}: bins must be an int or increasing bin edges (>= 2 values)")
    return edges


def _ratio_axes(fig: Figure, spec=None, ratio: bool = True) -> tuple[Axes, Axes | None]:
    """Main axes and (optionally) a ratio axes below it sharing x."""
    if spec is None:
        gs = fig.add_gridspec(2 if ratio else 1, 1, height_ratios=[3, 1] if ratio else [1], hspace=0.06)
    else:
        gs = spec.subgridspec(2 if ratio else 1, 1, height_ratios=[3, 1] if ratio else [1], hspace=0.06)
    ax = fig.add_subplot(gs[0])
    if not ratio:
        return ax, None
    rax = fig.add_subplot(gs[1], sharex=ax)
    ax.tick_params(labelbottom=False)
    return ax, rax


def _draw_comparison(
    ax: Axes,
    rax: Axes | None,
    samples: Mapping[str, np.ndarray],
    weights: Mapping[str, np.ndarray | None],
    edges: np.ndarray,
    *,
    xlabel: str,
    reference: str,
    density: bool,
    logy: bool,
    ratio_range: tuple[float, float],
    ylabel: str | None = None,
    legend_fontsize: str | float = "small",
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import mplhep

    filled = {}
    for i, (label, vals) in enumerate(samples.items()):
        v, e = weighted_hist(vals, edges, weights.get(label), density=density)
        filled[label] = (v, e)
        color = COLORS[i % len(COLORS)]
        is_ref = label == reference
        mplhep.histplot(
            v,
            bins=edges,
            yerr=e,
            histtype="fill" if is_ref and len(samples) > 1 else "step",
            alpha=0.35 if is_ref and len(samples) > 1 else 1.0,
            color=color,
            label=f"{label} (ref.)" if is_ref and rax is not None and len(samples) > 1 else label,
            ax=ax,
            flow=None,
        )
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel or ("Normalised entries" if density else "Entries"))
    ax.legend(fontsize=legend_fontsize)
    ax.set_xlim(edges[0], edges[-1])
    bottom = rax if rax is not None else ax
    bottom.set_xlabel(xlabel)
    if rax is not None:
        ref_v, ref_e = filled[reference]
        with np.errstate(divide="ignore", invalid="ignore"):
            band = np.where(ref_v > 0, ref_e / ref_v, np.nan)
            rax.stairs(1 + band, edges, baseline=1 - band, fill=True, color="grey", alpha=0.3, label="stat. unc.")
            rax.axhline(1.0, color="black", lw=1, ls="--")
            centers = 0.5 * (edges[1:] + edges[:-1])
            for i, (label, (v, e)) in enumerate(filled.items()):
                if label == reference:
                    continue
                r = np.where(ref_v > 0, v / ref_v, np.nan)
                re = np.where(ref_v > 0, e / ref_v, np.nan)
                rax.errorbar(centers, r, yerr=re, fmt="o", ms=3.5, color=COLORS[i % len(COLORS)], lw=1.2)
        rax.set_ylim(*ratio_range)
        rax.set_ylabel("Ratio", fontsize="small")
    return filled


def compare_hist(
    samples: Mapping[str, np.ndarray],
    bins: Bins = 40,
    weights: Mapping[str, np.ndarray | None] | None = None,
    xlabel: str = "Value [a.u.]",
    reference: str | None = None,
    density: bool = True,
    ratio: bool = True,
    logy: bool = False,
    *,
    range: tuple[float, float] | None = None,
    ratio_range: tuple[float, float] = (0.5, 1.5),
    rlabel: str | None = None,
    ylabel: str | None = None,
) -> Figure:
    """Step histograms of several samples (statistical error bars) with a ratio panel.

    ``samples`` maps legend label -> values; the ratio panel divides every sample by
    ``reference`` (default: the first sample), whose statistical uncertainty is the grey band.
    With ``density`` each histogram integrates to one over the bin range.
    """
    where = "compare_hist"
    if not samples:
        raise ValueError(f"{where}: samples is empty; pass {{label: values}}")
    data = {str(k): as_1d(np.asarray(v).ravel(), f"samples[{k!r}]", where) for k, v in samples.items()}
    weights = dict(weights or {})
    unknown = set(map(str, weights)) - set(data)
    if unknown:
        raise ValueError(f"{where}: weights given for unknown samples {sorted(unknown)}; samples are {list(data)}")
    w = {
        str(k): (
            None if v is None else check_weights(np.asarray(v).ravel(), len(data[str(k)]), f"weights[{k!r}]", where)
        )
        for k, v in weights.items()
    }
    reference = str(reference) if reference is not None else next(iter(data))
    if reference not in data:
        raise ValueError(f"{where}: reference {reference!r} is not one of the samples {list(data)}")
    edges = _edges(bins, list(data.values()), where, range)
    with style():
        fig = Figure(figsize=(7.0, 7.0) if ratio else (7.0, 5.5))
        ax, rax = _ratio_axes(fig, ratio=ratio and len(data) > 0)
        _draw_comparison(
            ax,
            rax,
            data,
            w,
            edges,
            xlabel=xlabel,
            reference=reference,
            density=density,
            logy=logy,
            ratio_range=ratio_range,
            ylabel=ylabel,
        )
        label_axes(ax, rlabel)
    return fig


# --------------------------------------------------------------------------- jet observables
def _particle_columns(js):
    m = js.mask
    return js.particles[..., 0], js.particles[..., 1], js.particles[..., 2], m


def _per_particle(values: np.ndarray, js) -> tuple[np.ndarray, np.ndarray]:
    w = np.broadcast_to(js.weights[:, None], js.mask.shape)
    return values[js.mask], w[js.mask]


def _jet_kin(js) -> np.ndarray:
    from jetlab.data.schema import jet_features_from_particles

    return jet_features_from_particles(js.particles, js.mask)


def _obs_particle_pt(js):
    return _per_particle(js.particles[..., 0], js)


def _obs_particle_eta(js):
    return _per_particle(js.particles[..., 1], js)


def _obs_particle_phi(js):
    return _per_particle(js.particles[..., 2], js)


def _obs_particle_deta(js):
    jet = _jet_kin(js)
    return _per_particle(js.particles[..., 1] - jet[:, 1:2], js)


def _obs_particle_dphi(js):
    jet = _jet_kin(js)
    return _per_particle(wrap_phi(js.particles[..., 2] - jet[:, 2:3]), js)


def _obs_particle_ptrel(js):
    jet = _jet_kin(js)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = js.particles[..., 0] / np.where(jet[:, 0:1] > 0, jet[:, 0:1], 1.0)
    return _per_particle(rel, js)


def _obs_multiplicity(js):
    return js.mask.sum(1).astype(np.float64), js.weights


def _obs_jet_mass(js):
    return _jet_kin(js)[:, 3].astype(np.float64), js.weights


def _obs_jet_pt(js):
    return _jet_kin(js)[:, 0].astype(np.float64), js.weights


def _obs_jet_eta(js):
    return _jet_kin(js)[:, 1].astype(np.float64), js.weights


#: name -> (function(JetSet) -> (values, weights), x label with units, log y, integer-valued)
JET_OBSERVABLES: dict[str, tuple[Callable, str, bool, bool]] = {
    "particle pt": (_obs_particle_pt, r"Particle $p_{T}$ [GeV]", True, False),
    "particle eta": (_obs_particle_eta, r"Particle $\eta$", False, False),
    "particle phi": (_obs_particle_phi, r"Particle $\phi$ [rad]", False, False),
    "particle deta": (_obs_particle_deta, r"Particle $\Delta\eta$ to jet axis", True, False),
    "particle dphi": (_obs_particle_dphi, r"Particle $\Delta\phi$ to jet axis [rad]", True, False),
    "particle ptrel": (_obs_particle_ptrel, r"Particle $p_{T}/p_{T}^{jet}$", True, False),
    "multiplicity": (_obs_multiplicity, "Constituent multiplicity", False, True),
    "jet mass": (_obs_jet_mass, "Jet mass [GeV]", False, False),
    "jet pt": (_obs_jet_pt, r"Jet $p_{T}$ [GeV]", False, False),
    "jet eta": (_obs_jet_eta, r"Jet $\eta$", False, False),
}


def compare_jets(
    real,
    generated,
    observables: Sequence[str] = ("particle pt", "particle eta", "particle phi", "multiplicity", "jet mass"),
    *,
    labels: tuple[str, str] = ("Real", "Generated"),
    bins: int = 40,
    ncols: int = 3,
    ratio_range: tuple[float, float] = (0.5, 1.5),
    rlabel: str | None = None,
) -> Figure:
    """Grid of ratio-panel histograms comparing two :class:`~jetlab.data.schema.JetSet` objects.

    Observables (see :data:`JET_OBSERVABLES`) are computed from the particles with numpy, so a
    generative model is judged on what it generated, not on its conditioning jet features.
    Ratios are generated / real; per-jet weights are used (repeated for particle observables).
    """
    where = "compare_jets"
    for name, js in (("real", real), ("generated", generated)):
        if not hasattr(js, "particles") or not hasattr(js, "mask"):
            raise TypeError(f"{where}: {name} must be a jetlab JetSet, got {type(js).__name__}")
        if len(js) == 0:
            raise ValueError(f"{where}: {name} JetSet is empty")
    observables = list(observables)
    bad = [o for o in observables if o not in JET_OBSERVABLES]
    if bad or not observables:
        raise ValueError(f"{where}: unknown observables {bad}; choose from {list(JET_OBSERVABLES)}")
    ncols = max(1, min(ncols, len(observables)))
    nrows = int(np.ceil(len(observables) / ncols))
    with style():
        fig = Figure(figsize=(5.2 * ncols, 5.2 * nrows))
        outer = fig.add_gridspec(nrows, ncols, hspace=0.32, wspace=0.32)
        for k, obs in enumerate(observables):
            fn, xlabel, logy, integer = JET_OBSERVABLES[obs]
            rv, rw = fn(real)
            gv, gw = fn(generated)
            if obs == "particle pt":
                pooled = np.concatenate([rv, gv])
                pooled = pooled[pooled > 0]
                lo, hi = np.percentile(pooled, [0.5, 99.9]) if pooled.size else (1e-2, 1.0)
                edges = np.geomspace(max(lo, 1e-3), max(hi, lo * 10), bins + 1)
            else:
                edges = auto_edges([rv, gv], bins, 0.1, 99.9, integer=integer)
            ax, rax = _ratio_axes(fig, outer[k // ncols, k % ncols])
            assert rax is not None  # _ratio_axes makes one unless ratio=False
            _draw_comparison(
                ax,
                rax,
                {labels[0]: rv, labels[1]: gv},
                {labels[0]: rw, labels[1]: gw},
                edges,
                xlabel=xlabel,
                reference=labels[0],
                density=True,
                logy=logy,
                ratio_range=ratio_range,
                legend_fontsize="x-small",
            )
            if obs == "particle pt":
                ax.set_xscale("log")
            for a in (ax, rax):
                a.tick_params(labelsize="x-small")
                a.xaxis.label.set_fontsize("small")
                a.yaxis.label.set_fontsize("small")
            if k == 0:
                label_axes(ax, rlabel)
    return fig


# --------------------------------------------------------------------------- dijet mass
def mjj_spectrum(
    mjj,
    sr: tuple[float, float] = (3.3, 3.7),
    sb: tuple[tuple[float, float], tuple[float, float]] = ((2.3, 3.3), (3.7, 5.0)),
    weights=None,
    cut_masks: Mapping[str, np.ndarray] | None = None,
    *,
    bins: int | Sequence[float] = 54,
    unit: str = "TeV",
    logy: bool = True,
    rlabel: str | None = None,
) -> Figure:
    """Dijet invariant-mass spectrum with the signal region (red) and sidebands (grey) shaded.

    ``cut_masks`` maps a legend label to a boolean mask (e.g. events passing an anomaly-score
    cut) and overlays the spectrum of the selected events. ``sr``/``sb`` are in ``unit``.
    """
    where = "mjj_spectrum"
    mjj = as_1d(mjj, "mjj", where)
    w = check_weights(weights, len(mjj), "weights", where)
    lo, hi = float(sb[0][0]), float(sb[1][1])
    if not (lo < sr[0] < sr[1] < hi):
        raise ValueError(f"{where}: need sb[0][0] < sr[0] < sr[1] < sb[1][1], got sr={sr}, sb={sb}")
    edges = np.linspace(lo, hi, int(bins) + 1) if isinstance(bins, (int, np.integer)) else _edges(bins, [mjj], where)
    with style():
        fig = Figure(figsize=(7.5, 5.8))
        ax = fig.add_subplot()
        ax.axvspan(*sr, color="#e42536", alpha=0.15, lw=0, label="Signal region")
        for i, (a, b) in enumerate(sb):
            ax.axvspan(a, b, color="grey", alpha=0.12, lw=0, label="Sidebands" if i == 0 else None)
        v, e = weighted_hist(mjj, edges, w)
        ax.stairs(v, edges, baseline=None, color="black", lw=1.6, label="All events")
        for i, (label, m) in enumerate((cut_masks or {}).items()):
            m = np.asarray(m, dtype=bool)
            if m.shape != mjj.shape:
                raise ValueError(f"{where}: cut_masks[{label!r}] has shape {m.shape}, expected {mjj.shape}")
            vc, ec = weighted_hist(mjj[m], edges, w[m])
            ax.stairs(vc, edges, baseline=None, color=COLORS[i % len(COLORS)], lw=1.6, label=str(label))
        if logy:
            ax.set_yscale("log")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(rf"Dijet mass $m_{{jj}}$ [{unit}]")
        ax.set_ylabel("Events / bin")
        ax.legend(fontsize="small", ncols=2 if cut_masks and len(cut_masks) > 1 else 1)
        label_axes(ax, rlabel)
    return fig


# --------------------------------------------------------------------------- jet image
def jet_image(
    particles,
    mask=None,
    *,
    relative: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
    max_marker: float = 600.0,
    radius: float | None = 1.0,
    colorbar: bool = True,
) -> Figure:
    """Eta-phi display of one jet: marker area ~ particle pT, colour = pT (log scale).

    ``particles`` is (P, >=3) with columns (pT, eta, phi, ...) as in the jetlab schema; padded
    rows are dropped with ``mask`` (or where pT <= 0). With ``relative`` the axes are
    Delta-eta / Delta-phi to the pT-weighted jet axis. Draws into ``ax`` if given.
    """
    from matplotlib.colors import LogNorm

    where = "jet_image"
    p = np.asarray(particles, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"{where}: particles must be (P, >=3) with columns (pt, eta, phi), got shape {p.shape}")
    m = np.ones(len(p), bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != (len(p),):
        raise ValueError(f"{where}: mask shape {m.shape} != ({len(p)},)")
    m = m & (p[:, 0] > 0)
    pt, eta, phi = p[m, 0], p[m, 1], p[m, 2]
    if relative and len(pt):
        px, py = (pt * np.cos(phi)).sum(), (pt * np.sin(phi)).sum()
        jet_phi = np.arctan2(py, px)
        jet_eta = np.average(eta, weights=pt)
        eta, phi = eta - jet_eta, wrap_phi(phi - jet_phi)
    with style():
        if ax is None:
            fig = Figure(figsize=(6.6, 5.6))
            ax = fig.add_subplot()
        else:  # the Figure holding ax (the root one when ax sits in a SubFigure)
            fig = ax.figure if isinstance(ax.figure, Figure) else ax.figure.figure
        if len(pt):
            sizes = max_marker * pt / pt.max()
            sc = ax.scatter(
                eta,
                phi,
                s=sizes,
                c=pt,
                cmap="viridis",
                norm=LogNorm(vmin=max(pt.min(), 1e-3), vmax=max(pt.max(), 2e-3)),
                alpha=0.8,
                edgecolors="black",
                linewidths=0.4,
            )
            if colorbar:
                cb = fig.colorbar(sc, ax=ax, pad=0.02)
                cb.set_label(r"Particle $p_{T}$ [GeV]")
        else:
            ax.text(0.5, 0.5, "no particles", transform=ax.transAxes, ha="center", va="center")
        if relative:
            ax.set_xlabel(r"$\Delta\eta$ to jet axis")
            ax.set_ylabel(r"$\Delta\phi$ to jet axis [rad]")
            if radius:
                ax.set_xlim(-radius, radius)
                ax.set_ylim(-radius, radius)
        else:
            ax.set_xlabel(r"Particle $\eta$")
            ax.set_ylabel(r"Particle $\phi$ [rad]")
        ax.set_aspect("equal", adjustable="box") if relative and radius else None
        if title:
            ax.set_title(title, fontsize="small")
    return fig
