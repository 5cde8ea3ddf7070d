"""Jet-by-jet event display: the eta-phi picture of one jet and its summary numbers."""

from __future__ import annotations

from typing import Any, Sequence

from matplotlib.figure import Figure

from jetlab.widgets._base import Explorer


class JetEventDisplay(Explorer):
    """Browse the jets of a :class:`~jetlab.data.schema.JetSet`: marker area ~ particle pT.

    The text gives the stored jet pT, mass, multiplicity and label (named through
    ``label_names`` when given). Move with the slider, :meth:`set` or :meth:`next`/:meth:`previous`.
    """

    figsize = (6.8, 5.8)

    def __init__(
        self,
        jetset,
        index: int = 0,
        *,
        label_names: Sequence[str] | None = None,
        relative: bool = True,
        mode: str = "auto",
    ) -> None:
        super().__init__(mode)
        if not hasattr(jetset, "particles") or not hasattr(jetset, "jets"):
            raise TypeError(f"JetEventDisplay: expected a jetlab JetSet, got {type(jetset).__name__}")
        if len(jetset) == 0:
            raise ValueError("JetEventDisplay: the JetSet is empty")
        self.jetset = jetset
        self.label_names = list(label_names) if label_names is not None else None
        self.relative = relative
        self.index = self._check(index)
        self._slider: Any = None  # an ipywidgets IntSlider once the controls are built

    def _check(self, index: int) -> int:
        n = len(self.jetset)
        index = int(index)
        if not -n <= index < n:
            raise IndexError(f"JetEventDisplay: index {index} out of range for {n} jets")
        return index % n

    # ------------------------------------------------------------ API
    def set(self, index: int) -> dict[str, Any]:
        """Show jet ``index``; return the new :attr:`state`."""
        self.index = self._check(index)
        self._refresh()
        return self.state

    def next(self) -> dict[str, Any]:
        return self.set((self.index + 1) % len(self.jetset))

    def previous(self) -> dict[str, Any]:
        return self.set((self.index - 1) % len(self.jetset))

    @property
    def state(self) -> dict[str, Any]:
        js, i = self.jetset, self.index
        label = int(js.labels[i])
        name = self.label_names[label] if self.label_names and 0 <= label < len(self.label_names) else str(label)
        return {
            "index": i,
            "pt": float(js.jets[i, 0]),
            "eta": float(js.jets[i, 1]),
            "mass": float(js.jets[i, 3]),
            "multiplicity": int(js.mask[i].sum()),
            "label": name,
        }

    def summary_html(self) -> str:
        st = self.state
        return (
            f"jet {st['index']} &nbsp;|&nbsp; p<sub>T</sub> = {st['pt']:.1f} GeV &nbsp;|&nbsp; "
            f"mass = {st['mass']:.1f} GeV &nbsp;|&nbsp; {st['multiplicity']} particles &nbsp;|&nbsp; label: {st['label']}"
        )

    # ------------------------------------------------------------ drawing
    def _draw(self, fig: Figure) -> None:
        from jetlab.plot.hists import jet_image

        ax = fig.add_subplot()
        st = self.state
        jet_image(self.jetset.particles[self.index], self.jetset.mask[self.index], relative=self.relative, ax=ax)
        ax.set_title(
            f"Jet {st['index']} ({st['label']}): $p_T$ = {st['pt']:.0f} GeV, $m$ = {st['mass']:.1f} GeV, "
            f"$N$ = {st['multiplicity']}",
            fontsize="small",
        )

    def _build_controls(self) -> list:
        import ipywidgets as w

        self._slider = w.IntSlider(
            value=self.index, min=0, max=len(self.jetset) - 1, description="jet", continuous_update=False
        )
        self._slider.observe(lambda c: None if self._syncing else self.set(c["new"]), names="value")
        prev_b = w.Button(description="◀", layout=w.Layout(width="3em"))
        next_b = w.Button(description="▶", layout=w.Layout(width="3em"))
        prev_b.on_click(lambda _b: self.previous())
        next_b.on_click(lambda _b: self.next())
        return [prev_b, self._slider, next_b]

    def _sync_controls(self) -> None:
        if self._slider is not None:
            self._slider.value = self.index
