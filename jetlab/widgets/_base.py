"""Mode selection (interactive widget vs static figure) and the common explorer base class.

Deciding whether a live front end exists cannot be done reliably from inside a kernel (papermill
and nbclient start an ordinary ipykernel), so the rule is explicit and documented:

1. ``mode="widget"`` or ``mode="static"`` passed to a widget always wins;
2. otherwise the environment variable ``JETLAB_HEADLESS`` decides: ``1/true/yes`` -> static,
   ``0/false/no`` -> widget (if ipywidgets is importable);
3. otherwise: widget when ipywidgets is importable *and* we run inside an IPython kernel,
   static everywhere else (scripts, pytest, the CLI).

jetlab's notebook runner sets ``JETLAB_HEADLESS=1`` for papermill/nbval runs, so executed
notebooks contain static PNGs that render anywhere.
"""

from __future__ import annotations

import os
from typing import Any

from matplotlib.figure import Figure

MODES = ("auto", "widget", "static")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def ipywidgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except Exception:  # pragma: no cover
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def is_interactive() -> bool:
    """True if widgets should be shown (see the module docstring for the exact rule)."""
    env = os.environ.get("JETLAB_HEADLESS", "").strip().lower()
    if env in _TRUE:
        return False
    if not ipywidgets_available():
        return False
    if env in _FALSE:
        return True
    return _in_kernel()


def resolve_mode(mode: str) -> str:
    """'auto' -> 'widget' or 'static'; validates the argument."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "widget":
        if not ipywidgets_available():
            raise ImportError("mode='widget' needs ipywidgets (pip install 'jetlab[notebooks]')")
        return "widget"
    if mode == "static":
        return "static"
    return "widget" if is_interactive() else "static"


def _display(obj: Any) -> None:
    try:
        from IPython.display import display
    except Exception:  # pragma: no cover
        return
    display(obj)


class Explorer:
    """Base class: ``.widget`` (built lazily), ``.figure()`` (static), ``.state``, ``.display()``.

    Subclasses implement ``_build_widget()`` (returning the container and wiring observers),
    ``_draw(fig)`` (drawing the current state into a fresh figure) and ``state``; they call
    ``self._refresh()`` after any state change so a built widget follows programmatic changes.
    """

    figsize: tuple[float, float] = (7.0, 5.8)

    def __init__(self, mode: str = "auto") -> None:
        self.mode = resolve_mode(mode)
        self._widget = None
        self._output = None
        self._html = None
        self._syncing = False
        #: the figure most recently rendered into the widget's output area
        self.last_figure: Figure | None = None

    # ------------------------------------------------------------ subclass hooks
    @property
    def state(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _draw(self, fig: Figure) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _build_controls(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sync_controls(self) -> None:
        """Copy the state into the controls (after a programmatic change)."""

    def summary_html(self) -> str:
        """The numbers shown next to the plot, as HTML."""
        return "<br>".join(f"<b>{k}</b>: {_fmt(v)}" for k, v in self.state.items())

    # ------------------------------------------------------------ public API
    def figure(self) -> Figure:
        """A static matplotlib figure of the current state (the headless fallback)."""
        from jetlab.plot._style import style

        with style():
            fig = Figure(figsize=self.figsize)
            self._draw(fig)
        return fig

    render_static = figure

    @property
    def widget(self):
        """The ipywidgets container (controls, numbers, plot); built on first access."""
        if self._widget is None:
            if not ipywidgets_available():
                raise ImportError(f"{type(self).__name__}.widget needs ipywidgets (pip install 'jetlab[notebooks]')")
            import ipywidgets as w

            self._html = w.HTML(value=self.summary_html())
            self._output = w.Output()
            controls = self._build_controls()
            self._widget = w.VBox([w.HBox(controls), self._html, self._output])
            self._render_output()
        return self._widget

    @property
    def text(self) -> str:
        """The displayed numbers (the HTML widget's value in widget mode)."""
        return self._html.value if self._html is not None else self.summary_html()

    def display(self) -> None:
        """Show the widget (interactive mode) or the static figure (headless mode)."""
        if self.mode == "widget":
            _display(self.widget)
        else:
            _display(self.figure())

    def _ipython_display_(self) -> None:
        self.display()

    # ------------------------------------------------------------ internals
    def _render_output(self) -> None:
        if self._output is None:
            return
        fig = self.figure()
        self.last_figure = fig
        if not _in_kernel():  # no front end to send it to (scripts, tests)
            return
        self._output.clear_output(wait=True)
        with self._output:
            _display(fig)

    def _refresh(self) -> None:
        """Update a built widget after the state changed."""
        if self._widget is None:
            return
        self._syncing = True
        try:
            self._sync_controls()
        finally:
            self._syncing = False
        self._html.value = self.summary_html()
        self._render_output()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
