"""OmniFold iteration explorer: unfolded vs truth vs prior, per observable and iteration."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from matplotlib.figure import Figure

from jetlab.physics.metrics import triangular_discriminator
from jetlab.widgets._base import Explorer

#: Axis labels (with units where they have one) for the OmniFold observables.
OBSERVABLE_LABELS = {
    "jet mass": "Jet mass [GeV]",
    "mass": "Jet mass [GeV]",
    "m": "Jet mass [GeV]",
    "multiplicity": "Constituent multiplicity",
    "mult": "Constituent multiplicity",
    "n": "Constituent multiplicity",
    "width": "Jet width",
    "log rho": r"$\log\rho = \log(m^2/p_T^2)$",
    "lhas": r"$\log\rho = \log(m^2/p_T^2)$",
    "tau21": r"N-subjettiness ratio $\tau_{21}$",
    "zg": r"Groomed momentum fraction $z_g$",
    "pt": r"Jet $p_T$ [GeV]",
}


def _hist_values(h: Any, n_bins: int, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Counts (and statistical errors if known) from an array, (values, errors) pair or hist.Hist."""
    err = None
    if hasattr(h, "values") and callable(h.values) and hasattr(h, "axes"):
        vals = np.asarray(h.values(), dtype=np.float64)
        var = h.variances()
        err = None if var is None else np.sqrt(np.asarray(var, dtype=np.float64))
    elif isinstance(h, Mapping):
        vals = np.asarray(h["values"], dtype=np.float64)
        err = None if h.get("errors") is None else np.asarray(h["errors"], dtype=np.float64)
    else:
        vals = np.asarray(h, dtype=np.float64)
    if vals.shape != (n_bins,):
        raise ValueError(f"{where}: expected {n_bins} bin contents (len(bins) - 1), got shape {vals.shape}")
    return vals, err


def _density(vals: np.ndarray, err: np.ndarray | None, edges: np.ndarray):
    total = vals.sum()
    if total <= 0:
        return vals, err
    norm = total * np.diff(edges)
    return vals / norm, None if err is None else err / norm


class IterationExplorer(Explorer):
    """Pick an observable and an OmniFold iteration; see unfolded, truth, prior (and IBU).

    ``results`` maps observable -> dict with ``"bins"`` (edges), ``"truth"``, ``"prior"`` (the
    generator-level simulation), ``"iterations"`` (one histogram per iteration: counts, a
    ``{"values", "errors"}`` dict or a ``hist.Hist``) and optionally ``"ibu"`` and ``"xlabel"``.
    Histograms are normalised to unit area; the numbers are triangular discriminators
    (x 10^3) with respect to truth from :func:`jetlab.physics.metrics.triangular_discriminator`
    with the bin widths (the numbers the OmniFold task's tables quote).
    """

    figsize = (7.0, 7.0)

    def __init__(
        self,
        results: Mapping[str, Mapping[str, Any]],
        *,
        observable: str | None = None,
        iteration: int | None = None,
        mode: str = "auto",
    ) -> None:
        super().__init__(mode)
        where = "IterationExplorer"
        if not results:
            raise ValueError(f"{where}: results is empty")
        self.results: dict[str, dict[str, Any]] = {}
        for name, r in results.items():
            for key in ("bins", "truth", "prior", "iterations"):
                if key not in r:
                    raise ValueError(f"{where}: results[{name!r}] lacks {key!r} (needs bins, truth, prior, iterations)")
            edges = np.asarray(r["bins"], dtype=np.float64)
            if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
                raise ValueError(f"{where}: results[{name!r}]['bins'] must be increasing bin edges")
            nb = len(edges) - 1
            its = list(r["iterations"])
            if not its:
                raise ValueError(f"{where}: results[{name!r}]['iterations'] is empty")
            self.results[str(name)] = {
                "bins": edges,
                "truth": _hist_values(r["truth"], nb, f"{where}: results[{name!r}]['truth']"),
                "prior": _hist_values(r["prior"], nb, f"{where}: results[{name!r}]['prior']"),
                "iterations": [
                    _hist_values(h, nb, f"{where}: results[{name!r}]['iterations'][{i}]") for i, h in enumerate(its)
                ],
                "ibu": None
                if r.get("ibu") is None
                else _hist_values(r["ibu"], nb, f"{where}: results[{name!r}]['ibu']"),
                "xlabel": r.get("xlabel") or OBSERVABLE_LABELS.get(str(name).lower(), str(name)),
            }
            if not self.results[str(name)]["truth"][0].sum() > 0:
                raise ValueError(f"{where}: results[{name!r}]['truth'] has no positive content to compare with")
        self.observables = list(self.results)
        self.observable = self.observables[0]
        self._obs_dd: Any = None  # ipywidgets Dropdowns once the controls are built
        self._it_dd: Any = None
        obs = observable or self.observable
        if obs not in self.results:
            raise KeyError(f"{where}: unknown observable {obs!r}; have {self.observables}")
        self.iteration = len(self.results[obs]["iterations"])  # default: the final iteration
        self.set(observable=obs, iteration=iteration)

    @property
    def n_iterations(self) -> int:
        return len(self.results[self.observable]["iterations"])

    # ------------------------------------------------------------ API
    def set(self, *, observable: str | None = None, iteration: int | None = None) -> dict[str, Any]:
        """Select an observable and/or an iteration (1-based; kept, clipped to the new observable's count)."""
        if observable is not None:
            if observable not in self.results:
                raise KeyError(f"IterationExplorer: unknown observable {observable!r}; have {self.observables}")
            self.observable = observable
        n = self.n_iterations
        it = min(self.iteration, n) if iteration is None else int(iteration)
        if not 1 <= it <= n:
            raise ValueError(f"IterationExplorer: iteration must be in 1..{n} for {self.observable!r}, got {it}")
        self.iteration = it
        self._refresh()
        return self.state

    @property
    def state(self) -> dict[str, Any]:
        r = self.results[self.observable]
        truth, widths = r["truth"][0], np.diff(r["bins"])

        def delta(h: np.ndarray) -> float:
            return triangular_discriminator(h, truth, widths, scale=1e3) if h.sum() > 0 else float("nan")

        st = {
            "observable": self.observable,
            "iteration": self.iteration,
            "n_iterations": self.n_iterations,
            "delta_unfolded_x1e3": delta(r["iterations"][self.iteration - 1][0]),
            "delta_prior_x1e3": delta(r["prior"][0]),
        }
        if r["ibu"] is not None:
            st["delta_ibu_x1e3"] = delta(r["ibu"][0])
        return st

    def summary_html(self) -> str:
        st = self.state
        txt = (
            f"{st['observable']}, iteration {st['iteration']}/{st['n_iterations']} &nbsp;|&nbsp; "
            f"Δ(unfolded, truth) × 10³ = {st['delta_unfolded_x1e3']:.3f} &nbsp;|&nbsp; "
            f"Δ(prior, truth) × 10³ = {st['delta_prior_x1e3']:.3f}"
        )
        if "delta_ibu_x1e3" in st:
            txt += f" &nbsp;|&nbsp; Δ(IBU, truth) × 10³ = {st['delta_ibu_x1e3']:.3f}"
        return txt

    # ------------------------------------------------------------ drawing
    def _draw(self, fig: Figure) -> None:
        from jetlab.plot._style import COLORS, label_axes

        r = self.results[self.observable]
        edges = r["bins"]
        st = self.state
        gs = fig.add_gridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
        ax = fig.add_subplot(gs[0])
        rax = fig.add_subplot(gs[1], sharex=ax)
        ax.tick_params(labelbottom=False)
        truth_vals, truth_err = r["truth"]
        truth, _ = _density(truth_vals, truth_err, edges)
        ax.stairs(truth, edges, fill=True, color="grey", alpha=0.35, label="Truth")
        curves = [("Prior (generation)", r["prior"], COLORS[0], ":")]
        if r["ibu"] is not None:
            curves.append(("IBU", r["ibu"], COLORS[3], "-."))
        curves.append((f"Unfolded, iteration {self.iteration}", r["iterations"][self.iteration - 1], COLORS[2], "-"))
        centres = 0.5 * (edges[1:] + edges[:-1])
        rax.axhline(1, color="black", lw=1, ls="--")
        for name, (vals, err), color, ls in curves:
            v, e = _density(vals, err, edges)
            ax.stairs(v, edges, baseline=None, color=color, ls=ls, lw=2, label=name)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(truth > 0, v / truth, np.nan)
                rerr = None if e is None else np.where(truth > 0, e / truth, np.nan)
            if ls == "-":
                rax.errorbar(centres, ratio, yerr=rerr, fmt="o", ms=3.5, color=color)
            else:
                rax.stairs(ratio, edges, baseline=None, color=color, ls=ls, lw=1.5)
        ax.set_ylabel("Normalised entries")
        ax.set_xlim(edges[0], edges[-1])
        ymax = max(truth.max(), max(_density(c[1][0], c[1][1], edges)[0].max() for c in curves))
        ax.set_ylim(0, 1.45 * ymax if ymax > 0 else 1)
        ax.legend(
            fontsize="x-small",
            title_fontsize="x-small",
            loc="upper right",
            title=f"$\\Delta\\times10^3$ to truth: unfolded {st['delta_unfolded_x1e3']:.2f}, prior {st['delta_prior_x1e3']:.2f}",
        )
        rax.set_ylim(0.5, 1.5)
        rax.set_ylabel("Ratio to truth", fontsize="x-small")
        rax.set_xlabel(r["xlabel"])
        label_axes(ax)

    def _build_controls(self) -> list:
        import ipywidgets as w

        self._obs_dd = w.Dropdown(options=self.observables, value=self.observable, description="observable")
        self._it_dd = w.Dropdown(
            options=list(range(1, self.n_iterations + 1)), value=self.iteration, description="iteration"
        )
        self._obs_dd.observe(lambda c: None if self._syncing else self.set(observable=c["new"]), names="value")
        self._it_dd.observe(lambda c: None if self._syncing else self.set(iteration=c["new"]), names="value")
        return [self._obs_dd, self._it_dd]

    def _sync_controls(self) -> None:
        if self._obs_dd is not None:
            self._obs_dd.value = self.observable
            self._it_dd.options = list(range(1, self.n_iterations + 1))
            self._it_dd.value = self.iteration
