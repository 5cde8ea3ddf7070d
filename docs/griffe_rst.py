"""Griffe extension for jetlab's API reference: the reST markup of the docstrings, shown as Markdown.

jetlab's docstrings are written for the source and ``help()``: Sphinx roles (:func:`name`),
literal blocks introduced by ``::`` and, here and there, a reST simple table. MkDocs renders
Markdown, so before rendering each docstring gets its roles as code (``name``, ``~a.b`` as ``b``),
a trailing ``::`` as ``:`` (the indented block after it is a code block in Markdown too) and its
simple tables fenced as preformatted text. The docstrings themselves are left as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const|term|ref):`([^`]+)`")
_TABLE_RULE = re.compile(r"^\s*=+(?: +=+)+\s*$")


def _role_target(match: re.Match) -> str:
    target = match.group(1).strip()
    return target[1:].rsplit(".", 1)[-1] if target.startswith("~") else target  # reST "~": last component only


def _role_as_code(match: re.Match) -> str:
    return f"`{_role_target(match)}`"


def _table(lines: list[str]) -> list[str]:
    """A reST simple table, fenced as preformatted text, roles as plain names, columns re-aligned."""
    starts = [m.start() for m in re.finditer(r"=+", lines[0])]
    bounds = list(zip(starts, starts[1:] + [None]))
    out = ["```text"]
    for line in lines:
        if _TABLE_RULE.match(line):
            out.append(line.rstrip())
            continue
        cells = [_ROLE.sub(_role_target, line[a:b]).strip() for a, b in bounds]
        widths = [b - a for a, b in bounds[:-1]]
        out.append("".join(c.ljust(w) for c, w in zip(cells, widths)) + cells[-1])
    return out + ["```"]


def rst_to_markdown(text: str) -> str:
    """The docstring ``text`` with reST roles, ``::`` and simple tables in Markdown form.

    A reST simple table is three '=== ===' rules (top, under the header, bottom)."""
    out: list[str] = []
    table: list[str] = []
    for line in text.split("\n"):
        if table or _TABLE_RULE.match(line):
            table.append(line)
            if sum(bool(_TABLE_RULE.match(t)) for t in table) == 3:
                out += _table(table)
                table = []
            continue
        line = _ROLE.sub(_role_as_code, line)
        stripped = line.rstrip()
        if stripped.endswith("::") and not stripped.endswith(":::"):
            line = stripped[:-2].rstrip() + (":" if stripped[:-2].strip() else "")
        out.append(line)
    return "\n".join(out + (_table(table) if table else []))


class RstMarkup(griffe.Extension):
    """Rewrites every loaded docstring with :func:`rst_to_markdown`."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
