"""Live training-loss monitor, usable as a training callback."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
from matplotlib.figure import Figure

from jetlab.widgets._base import Explorer


def _columns(epochs: list, steps: list) -> dict[str, list]:
    """Column lists from jetlab.train's History rows (``epochs``/``steps`` lists of dicts)."""
    nan = float("nan")
    out: dict[str, list] = {}
    if epochs:
        out["epoch"] = [e.get("epoch", i + 1) for i, e in enumerate(epochs)]
        for key in ("train_loss", "val_loss"):
            if any(key in e for e in epochs):
                out[key] = [nan if e.get(key) is None else e[key] for e in epochs]
    if steps:
        out["step"] = [st.get("step", i + 1) for i, st in enumerate(steps)]
        out["step_loss"] = [nan if st.get("loss") is None else st["loss"] for st in steps]
    return out


def _as_mapping(history: Any) -> Mapping[str, Any]:
    """Accept a dict of lists, a jetlab.train History (or its dict form), or a LiveLossPlot
    update ``{"kind", "info", "history"}``."""
    if isinstance(history, Mapping) and "history" in history and "kind" in history:
        history = history["history"]
    if isinstance(history, Mapping) and isinstance(history.get("epochs"), list):
        return _columns(history["epochs"], history.get("steps") or [])
    if hasattr(history, "epochs") and hasattr(history, "steps") and isinstance(history.epochs, list):
        return _columns(history.epochs, history.steps)
    if isinstance(history, Mapping):
        return history
    if hasattr(history, "to_dict"):
        return history.to_dict()
    if dataclasses.is_dataclass(history) and not isinstance(history, type):
        return dataclasses.asdict(history)
    if hasattr(history, "__dict__"):
        return {k: v for k, v in vars(history).items() if not k.startswith("_")}
    raise TypeError(
        f"TrainingMonitor.update: expected a dict of lists (epoch, train_loss, ...), got {type(history).__name__}"
    )


def _as_list(v: Any) -> list[float]:
    if np.ndim(v) == 0:
        return [float("nan") if v is None else float(v)]
    return [float("nan") if x is None else float(x) for x in np.asarray(v, dtype=object).ravel()]


class TrainingMonitor(Explorer):
    """Keeps loss histories and draws them: loss vs epoch (training dashed, validation solid)
    and, if present, the per-step loss with a running mean.

    Call it (or :meth:`update`) with a jetlab.train ``History``, a ``LiveLossPlot`` update
    (``Trainer(callbacks=[LiveLossPlot(monitor)])``) or a dict such as ``{"epoch": [...], "train_loss": [...],
    "val_loss": [...], "step_loss": [...]}``. Either the full history so far (what a trainer's
    History holds) or only the new entries may be passed: when every list starts with what is
    already stored (judged on ``"epoch"`` when present) the dict is taken as the full history and
    replaces it, otherwise the values are appended. Scalars are appended. In widget mode the plot is redrawn every
    ``redraw_every`` updates; in static mode data is only kept, draw it with :meth:`figure`.
    """

    figsize = (11.0, 4.8)

    def __init__(
        self, *, mode: str = "auto", logy: bool = False, redraw_every: int = 1, title: str | None = None
    ) -> None:
        super().__init__(mode)
        self.history: dict[str, list[float]] = {}
        self.logy = logy
        self.redraw_every = max(1, int(redraw_every))
        self.title = title
        self.n_updates = 0

    # ------------------------------------------------------------ API
    def update(self, history: Any = None, **values: Any) -> dict[str, list[float]]:
        """Merge ``history`` (dict / History object) and keyword values; return the history."""
        incoming = {
            str(k): _as_list(v)
            for k, v in dict(_as_mapping(history) if history is not None else {}, **values).items()
            if v is not None and _is_numeric(v)
        }
        if not incoming:
            return self.history

        def starts_with_stored(k: str) -> bool:
            old = self.history[k]
            return len(incoming[k]) >= len(old) and incoming[k][: len(old)] == old

        if "epoch" in incoming and self.history.get("epoch"):
            full = starts_with_stored("epoch")  # epochs are increasing: unambiguous
        else:
            shared = [k for k in incoming if k in self.history]
            full = bool(shared) and all(starts_with_stored(k) for k in shared)
        for k, new in incoming.items():
            if full or k not in self.history:
                self.history[k] = list(new)
            else:
                self.history[k].extend(new)
        self.n_updates += 1
        if self._widget is not None and self.n_updates % self.redraw_every == 0:
            self._refresh()
        return self.history

    __call__ = update

    def reset(self) -> None:
        self.history = {}
        self.n_updates = 0
        self._refresh()

    @property
    def state(self) -> dict[str, Any]:
        h = self.history
        st: dict[str, Any] = {"n_updates": self.n_updates}
        if h.get("epoch"):
            st["epoch"] = _int_if_whole(h["epoch"][-1])
        for key in ("train_loss", "val_loss", "step_loss"):
            if h.get(key):
                st[key] = h[key][-1]
        if h.get("val_loss"):
            vals = np.asarray(h["val_loss"])
            i = int(np.nanargmin(vals)) if np.isfinite(vals).any() else 0
            st["best_val_loss"] = float(vals[i])
            st["best_epoch"] = _int_if_whole(h["epoch"][i]) if len(h.get("epoch", [])) == len(vals) else i + 1
        return st

    def summary_html(self) -> str:
        st = self.state
        parts = [f"{k} = {v:.5g}" if isinstance(v, float) else f"{k} = {v}" for k, v in st.items() if k != "n_updates"]
        return " &nbsp;|&nbsp; ".join(parts) if parts else "waiting for the first epoch…"

    # ------------------------------------------------------------ drawing
    def _draw(self, fig: Figure) -> None:
        from jetlab.plot._style import COLORS, label_axes

        h = self.history
        has_steps = bool(h.get("step_loss"))
        axes = fig.subplots(1, 2 if has_steps else 1, squeeze=False)[0]
        fig.subplots_adjust(wspace=0.3)
        ax = axes[0]
        drawn = False
        for key, ls, name, color in (
            ("train_loss", "--", "Training", COLORS[0]),
            ("val_loss", "-", "Validation", COLORS[1]),
        ):
            y = h.get(key) or []
            if not y:
                continue
            x = h.get("epoch") if len(h.get("epoch", [])) == len(y) else list(range(1, len(y) + 1))
            ax.plot(x, y, ls=ls, color=color, marker="o" if len(y) < 40 else None, ms=3.5, label=name)
            drawn = True
        if drawn:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no epochs yet", transform=ax.transAxes, ha="center", va="center")
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Loss")
        if self.logy and drawn:
            ax.set_yscale("log")
        label_axes(ax, self.title)
        if has_steps:
            sax = axes[1]
            sy = np.asarray(h["step_loss"], dtype=np.float64)
            sx = np.asarray(h["step"]) if len(h.get("step", [])) == len(sy) else np.arange(1, len(sy) + 1)
            sax.plot(sx, sy, color=COLORS[4], lw=0.8, alpha=0.7, label="per step")
            win = max(1, len(sy) // 20)
            if win > 1:
                run = np.convolve(sy, np.ones(win) / win, mode="valid")
                sax.plot(sx[win - 1 :], run, color=COLORS[2], lw=1.8, label=f"running mean ({win})")
            sax.set_xlabel("Optimiser step")
            sax.set_ylabel("Training loss")
            if self.logy:
                sax.set_yscale("log")
            sax.legend(fontsize="small")

    def _build_controls(self) -> list:
        return []


def _is_numeric(v: Any) -> bool:
    """Whether ``v`` converts to floats (non-numeric entries such as names are skipped)."""
    try:
        _as_list(v)
    except (TypeError, ValueError):
        return False
    return True


def _int_if_whole(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v
