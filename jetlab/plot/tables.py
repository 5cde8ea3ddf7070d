"""Results tables (like Tables I/II of the OmniLearn paper) as markdown and HTML, without pandas."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


def _fmt(value: Any, spec: str) -> str:
    """Format one cell: floats with ``spec``, (mean, std) pairs as 'mean ± std', None as '–'."""
    if value is None:
        return "–"
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{_fmt(value[0], spec)} ± {_fmt(value[1], spec)}"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if isinstance(value, float) or hasattr(value, "dtype"):
        v = float(value)
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        return format(v, spec)
    return str(value)


def _key(value: Any, spec: str | None = None) -> float | None:
    """The number a cell is ranked by: the mean of a (mean, std) pair, rounded as printed when
    ``spec`` is given (so cells a reader sees as equal tie); None for missing or NaN values."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value = value[0]
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(v):
        return None
    if spec is not None and math.isfinite(v):
        try:
            v = float(format(v, spec))
        except ValueError:
            pass
    return v


def _best(keyed: Sequence[tuple[float, Any]], how: str) -> set[Any]:
    """The positions whose key is the best ("max" or "min") of ``keyed`` = [(key, position)]; ties all win."""
    if not keyed:
        return set()
    best = max(k for k, _ in keyed) if how == "max" else min(k for k, _ in keyed)
    return {pos for k, pos in keyed if k == best}


@dataclass
class ResultsTable:
    """A formatted table; ``str()`` gives markdown, Jupyter renders :meth:`to_html`."""

    columns: list[str]
    cells: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    title: str | None = None

    def to_markdown(self) -> str:
        cells = [
            [f"**{c}**" if (i, j) in self.bold else c for j, c in enumerate(row)] for i, row in enumerate(self.cells)
        ]
        widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(self.columns)]
        line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
        sep = "|" + "|".join(":" + "-" * (w + 1) if j == 0 else "-" * (w + 1) + ":" for j, w in enumerate(widths)) + "|"
        out = [line(self.columns), sep] + [line(r) for r in cells]
        if self.title:
            out.insert(0, f"**{self.title}**\n")
        return "\n".join(out)

    def to_html(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns)
        body = []
        for i, row in enumerate(self.cells):
            tds = []
            for j, c in enumerate(row):
                text = f"<b>{esc(c)}</b>" if (i, j) in self.bold else esc(c)
                align = "left" if j == 0 else "right"
                tds.append(f'<td style="text-align:{align}">{text}</td>')
            body.append("<tr>" + "".join(tds) + "</tr>")
        caption = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        return (
            f'<table class="jetlab-table">{caption}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        )

    def __str__(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def results_table(
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    columns: Sequence[str] | None = None,
    *,
    formats: Mapping[str, str] | None = None,
    floatfmt: str = ".3f",
    highlight: Mapping[str, str] | None = None,
    group_by: str | None = None,
    row_best: str | None = None,
    row_columns: Sequence[str] | None = None,
    row_reference: str | None = None,
    title: str | None = None,
) -> ResultsTable:
    """Build a results table from dict rows (column order from ``columns`` or first appearance)
    or sequence rows (``columns`` required).

    ``formats`` gives a per-column format spec (e.g. ``{"1/eps_B @ 0.5": ".1f"}``); values that are
    ``(mean, std)`` pairs print as 'mean ± std' and rank by their mean. Bold marks the best, ranked
    on the value as printed (so equal-looking cells tie and are all bold):

    * ``highlight`` = ``{column: "max" | "min"}``: the best entry of each such column, or, with
      ``group_by`` (a column), the best among the rows that share that column's value (e.g. the best
      model at each training size);
    * ``row_best`` = ``"max" | "min"``: the best of ``row_columns`` in each row (e.g. the best method
      per observable). With ``row_reference`` (a column, not itself bold) a row is bold only where its
      best beats the reference (e.g. unfolding methods against the prior).
    """
    where = "results_table"
    row_list: list[Any] = list(rows)  # dict rows or sequence rows (the first decides)
    if not row_list:
        raise ValueError(f"{where}: no rows given")
    if isinstance(row_list[0], Mapping):
        if columns is None:
            columns = []
            for r in row_list:
                columns += [k for k in r if k not in columns]
        data = [[r.get(c) for c in columns] for r in row_list]
    else:
        if columns is None:
            raise ValueError(f"{where}: sequence rows need columns=[...]")
        data = [list(r) for r in row_list]
        bad = [i for i, r in enumerate(data) if len(r) != len(columns)]
        if bad:
            raise ValueError(f"{where}: rows {bad} do not have {len(columns)} entries (columns {list(columns)})")
    columns = [str(c) for c in columns]
    formats = dict(formats or {})
    named = set(formats) | set(highlight or {}) | set(row_columns or ())
    named |= {c for c in (group_by, row_reference) if c is not None}
    unknown = named - set(columns)
    if unknown:
        raise ValueError(f"{where}: formats/highlight name unknown columns {sorted(unknown)}; columns are {columns}")
    for label, how in [*((f"highlight[{c!r}]", h) for c, h in (highlight or {}).items()), ("row_best", row_best)]:
        if how is not None and how not in ("max", "min"):
            raise ValueError(f"{where}: {label} must be 'max' or 'min', got {how!r}")
    if row_best is None and (row_columns is not None or row_reference is not None):
        raise ValueError(f"{where}: row_columns/row_reference need row_best='max' or 'min'")
    cells = [[_fmt(v, formats.get(c, floatfmt)) for v, c in zip(r, columns)] for r in data]

    def key(i: int, j: int) -> float | None:
        return _key(data[i][j], formats.get(columns[j], floatfmt))

    bold: set[tuple[int, int]] = set()
    g = None if group_by is None else columns.index(group_by)
    groups: dict[Any, list[int]] = {}
    for i, r in enumerate(data):
        groups.setdefault(None if g is None else repr(r[g]), []).append(i)
    for col, how in (highlight or {}).items():
        j = columns.index(col)
        for members in groups.values():
            keyed = [(k, (i, j)) for i in members if (k := key(i, j)) is not None]
            bold |= _best(keyed, how)
    if row_best is not None:
        compared = [columns.index(c) for c in (row_columns or [c for c in columns[1:] if c != row_reference])]
        ref = None if row_reference is None else columns.index(row_reference)
        for i in range(len(data)):
            keyed = [(k, (i, j)) for j in compared if (k := key(i, j)) is not None]
            winners = _best(keyed, row_best)
            ref_key = None if ref is None else key(i, ref)
            if winners and ref_key is not None:
                k_best = key(*next(iter(winners)))
                assert k_best is not None
                if not (k_best > ref_key if row_best == "max" else k_best < ref_key):
                    winners = set()
            bold |= winners
    return ResultsTable(columns=columns, cells=cells, bold=bold, title=title)
