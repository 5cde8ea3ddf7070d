"""Classifier-performance and training figures: ROC, background rejection, SIC, loss curves,
confusion matrices."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from jetlab.physics.metrics import roc_metrics, sic_curve
from jetlab.plot._numeric import as_1d, binary_inputs
from jetlab.plot._style import COLORS, label_axes, style

#: label -> (labels, scores, weights or None); labels == 1 is signal.
Results = Mapping[str, tuple]


def _unpack(results: Results, where: str, **roc_options) -> dict[str, dict]:
    """Per curve, :func:`jetlab.physics.metrics.roc_metrics` (``roc_options``: ``eps_s``,
    ``method``) of its validated 0/1 labels, or for ``sic=(min_fpr, min_background_events)``
    also ``sic_curve``'s ``(eps_s, sic)``: the figures quote the numbers the tables do."""
    sic = roc_options.pop("sic", None)
    if not results:
        raise ValueError(f"{where}: results is empty; pass {{label: (labels, scores, weights|None)}}")
    out = {}
    for name, item in results.items():
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise ValueError(f"{where}: results[{name!r}] must be (labels, scores) or (labels, scores, weights)")
        labels, scores = item[0], item[1]
        weights = item[2] if len(item) == 3 else None
        is_sig, scores, w = binary_inputs(labels, scores, weights, f"{where}: results[{name!r}]")
        y = is_sig.astype(np.int64)
        out[str(name)] = roc_metrics(y, scores, w, **roc_options)
        if sic is not None:
            out[str(name)]["sic"] = sic_curve(y, scores, w, sic[0], min_background_events=sic[1])
    return out


def roc_curves(results: Results, *, rlabel: str | None = None, random_line: bool = True) -> Figure:
    """True-positive rate vs false-positive rate, AUC in the legend."""
    curves = _unpack(results, "roc_curves")
    with style():
        fig = Figure(figsize=(6.5, 6.0))
        ax = fig.add_subplot()
        for i, (name, m) in enumerate(curves.items()):
            ax.plot(m["fpr"], m["tpr"], color=COLORS[i % len(COLORS)], label=f"{name} (AUC = {m['auc']:.3f})")
        if random_line:
            ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="Random")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(r"Background efficiency $\varepsilon_B$ (false-positive rate)")
        ax.set_ylabel(r"Signal efficiency $\varepsilon_S$ (true-positive rate)")
        ax.legend(fontsize="small", loc="lower right")
        label_axes(ax, rlabel)
    return fig


def rejection_curves(
    results: Results,
    *,
    working_points: Sequence[float] = (0.5, 0.8),
    eff_range: tuple[float, float] = (0.2, 1.0),
    method: str = "interp",
    rlabel: str | None = None,
) -> Figure:
    """Background rejection 1/eps_B vs signal efficiency eps_S (log y), as in the ATLAS/OmniLearn
    top-tagging papers; 1/eps_B at ``working_points`` is quoted in the legend, computed as the
    tables do (:func:`jetlab.physics.metrics.roc_metrics` with ``method``, default "interp")."""
    curves = _unpack(results, "rejection_curves", eps_s=tuple(working_points), method=method)
    with style():
        fig = Figure(figsize=(6.8, 6.0))
        ax = fig.add_subplot()
        shown = []  # rejections drawn inside eff_range, for the y range
        for i, (name, m) in enumerate(curves.items()):
            fpr, tpr = m["fpr"], m["tpr"]
            ok = fpr > 0
            inside = ok & (tpr >= eff_range[0]) & (tpr <= eff_range[1])
            shown.append(1.0 / fpr[inside])
            wp = ", ".join(f"{m[f'rej_at_{float(e):g}']:.1f}" for e in working_points)
            tag = (
                f" (1/$\\varepsilon_B$ @ {'/'.join(f'{e:g}' for e in working_points)}: {wp})" if working_points else ""
            )
            ax.plot(tpr[ok], 1.0 / fpr[ok], color=COLORS[i % len(COLORS)], label=f"{name}{tag}")
        for e in working_points:
            ax.axvline(e, color="grey", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlim(*eff_range)
        values = np.concatenate(shown) if shown else np.array([])
        if values.size and values.max() > 1.0:
            # the curves fill the lower ~2/3 (in log) so the legend above them hides nothing
            bottom = min(1.0, float(values.min())) * 0.8
            ax.set_ylim(bottom, bottom * (float(values.max()) / bottom) ** 1.5)
        ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
        ax.set_ylabel(r"Background rejection $1/\varepsilon_B$")
        ax.legend(fontsize="x-small", loc="upper right")
        label_axes(ax, rlabel)
    return fig


def sic_curves(
    results: Results, *, min_fpr: float = 1e-4, min_background_events: int = 0, rlabel: str | None = None
) -> Figure:
    """Significance improvement eps_S/sqrt(eps_B) vs eps_S over the points
    :func:`jetlab.physics.metrics.sic_curve` keeps (``fpr > min_fpr``, at least
    ``min_background_events`` background events passing: the rest is statistics-limited); the
    maximum is quoted in the legend."""
    curves = _unpack(results, "sic_curves", eps_s=(), sic=(min_fpr, min_background_events))
    with style():
        fig = Figure(figsize=(6.8, 6.0))
        ax = fig.add_subplot()
        for i, (name, m) in enumerate(curves.items()):
            eps_s, sic = m["sic"]
            best = float(np.max(sic)) if sic.size else float("nan")
            ax.plot(eps_s, sic, color=COLORS[i % len(COLORS)], label=f"{name} (max SIC = {best:.2f})")
        ax.axhline(1.0, color="grey", ls=":", lw=1, label="Random")
        ax.set_xlim(0, 1)
        ys = [np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.get_lines()]
        peak = max([1.0] + [float(np.max(y)) for y in ys if y.size])
        ax.set_ylim(0, 1.6 * peak)  # the legend sits above the curves, not on them
        ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
        ax.set_ylabel(r"SIC $\varepsilon_S\,/\,\varepsilon_B^{1/2}$")
        ax.legend(fontsize="small", loc="upper right")
        label_axes(ax, rlabel)
    return fig


def loss_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    train: bool = True,
    logy: bool = False,
    ylabel: str = "Loss",
    rlabel: str | None = None,
) -> Figure:
    """Validation loss (solid) and training loss (dashed) vs epoch for several runs, e.g.
    pretrained vs from-scratch as in figure 1 of the OmniLearn paper.

    A run may carry ``val_loss_std`` (e.g. the spread over seeds of a mean curve): it is drawn
    as a band around the validation loss."""
    where = "loss_curves"
    if not histories:
        raise ValueError(f"{where}: histories is empty; pass {{label: {{'epoch', 'train_loss', 'val_loss'}}}}")
    with style():
        fig = Figure(figsize=(7.0, 5.8))
        ax = fig.add_subplot()
        for i, (name, h) in enumerate(histories.items()):
            h = dict(h)
            if "val_loss" not in h and "train_loss" not in h:
                raise ValueError(
                    f"{where}: histories[{name!r}] has neither 'val_loss' nor 'train_loss' (keys {sorted(h)})"
                )
            color = COLORS[i % len(COLORS)]
            for key, ls, suffix in (("val_loss", "-", "validation"), ("train_loss", "--", "training")):
                if key not in h or (key == "train_loss" and not train):
                    continue
                y = as_1d(h[key], f"histories[{name!r}][{key!r}]", where)
                x = (
                    as_1d(h["epoch"], f"histories[{name!r}]['epoch']", where)
                    if "epoch" in h
                    else np.arange(1, len(y) + 1)
                )
                if len(x) != len(y):
                    raise ValueError(
                        f"{where}: histories[{name!r}]: 'epoch' has {len(x)} entries but {key!r} has {len(y)}"
                    )
                ax.plot(
                    x, y, ls=ls, color=color, marker="o" if len(y) < 30 else None, ms=3.5, label=f"{name} ({suffix})"
                )
                if key == "val_loss" and "val_loss_std" in h:
                    e = as_1d(h["val_loss_std"], f"histories[{name!r}]['val_loss_std']", where)
                    if len(e) != len(y):
                        raise ValueError(
                            f"{where}: histories[{name!r}]: 'val_loss_std' has {len(e)} entries but 'val_loss' has {len(y)}"
                        )
                    ax.fill_between(x, y - e, y + e, color=color, alpha=0.2, lw=0)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
        label_axes(ax, rlabel)
    return fig


def confusion_matrix(
    labels,
    predictions,
    class_names: Sequence[str],
    normalize: bool = True,
    *,
    rlabel: str | None = None,
) -> Figure:
    """Confusion matrix (rows: true class, columns: predicted class); ``predictions`` are class
    indices (N,) or scores/logits (N, C) which are arg-maxed. ``normalize`` divides each row by
    its total so the diagonal reads as per-class efficiency."""
    where = "confusion_matrix"
    labels = np.asarray(labels).astype(np.int64).ravel()
    pred = np.asarray(predictions)
    if pred.ndim == 2:
        pred = pred.argmax(1)
    pred = pred.astype(np.int64).ravel()
    if pred.shape != labels.shape:
        raise ValueError(f"{where}: predictions give {pred.shape[0]} entries, labels {labels.shape[0]}")
    c = len(class_names)
    if c < 2:
        raise ValueError(f"{where}: need at least 2 class_names, got {list(class_names)}")
    for name, arr in (("labels", labels), ("predictions", pred)):
        if arr.size and (arr.min() < 0 or arr.max() >= c):
            raise ValueError(f"{where}: {name} has class indices outside [0, {c - 1}] ({c} class_names)")
    cm = np.zeros((c, c))
    np.add.at(cm, (labels, pred), 1.0)
    if normalize:
        tot = cm.sum(1, keepdims=True)
        cm = np.divide(cm, tot, out=np.zeros_like(cm), where=tot > 0)
    with style():
        size = max(5.5, 0.65 * c + 3)
        fig = Figure(figsize=(size + 1.0, size))
        ax = fig.add_subplot()
        im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
        fig.colorbar(im, ax=ax, pad=0.02).set_label("Fraction of true class" if normalize else "Jets")
        fs = "x-small" if c > 6 else "small"
        for i in range(c):
            for j in range(c):
                txt = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(
                    j,
                    i,
                    txt,
                    ha="center",
                    va="center",
                    fontsize=fs,
                    color="white" if cm[i, j] > 0.6 * (cm.max() or 1) else "black",
                )
        ax.set_xticks(
            range(c), list(class_names), rotation=45 if c > 4 else 0, ha="right" if c > 4 else "center", fontsize=fs
        )
        ax.set_yticks(range(c), list(class_names), fontsize=fs)
        ax.minorticks_off()
        ax.tick_params(top=False, right=False)
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        label_axes(ax, rlabel)
    return fig
