"""What a jetlab notebook declares and what a run sets: the ``parameters`` cell read with :mod:`ast`
(no code executed), ``-p`` values from the command line and the profiles in ``jetlab/profiles``.
Split from :mod:`jetlab.runner` (which validates the values against these declarations, runs the
notebook and re-exports every name here)."""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "FETCH_KEY",
    "PROFILE_DIR",
    "NotebookParameter",
    "ParameterError",
    "find_notebooks",
    "list_profiles",
    "load_notebook",
    "load_profile",
    "parse_cli_value",
    "profile_fetch",
    "profile_parameters",
    "read_parameters",
    "type_name",
]

PROFILE_DIR = Path(__file__).parent / "profiles"


class ParameterError(ValueError):
    """A notebook parameter (or profile) is invalid; raised before any execution starts."""


@dataclass(frozen=True)
class NotebookParameter:
    """One assignment of a ``parameters`` cell. If its value is not a Python literal,
    ``literal`` is False, ``default`` is None and any type is accepted for it."""

    name: str
    default: Any
    line: int
    literal: bool = True

    @property
    def expected(self) -> str | None:
        """Human name of the accepted type, or None when any type is accepted."""
        if not self.literal or self.default is None:
            return None
        return type_name(self.default)


def type_name(value: Any) -> str:
    """The parameter type name a value shows in messages (bool before int: bool is an int)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def load_notebook(notebook: str | os.PathLike):
    """The notebook as an nbformat v4 node, or a ParameterError naming the file."""
    import nbformat

    path = Path(notebook)
    if not path.is_file():
        raise ParameterError(f"notebook {os.fspath(notebook)!r} does not exist")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # malformed JSON / not a notebook
        raise ParameterError(f"cannot read notebook {path}: {exc}") from exc


def read_parameters(notebook: str | os.PathLike) -> dict[str, NotebookParameter]:
    """Parse the notebook's ``parameters`` cell with :mod:`ast` (no code is executed).

    Only ``name = value`` and ``name: type = value`` statements are allowed; values that are
    not Python literals are accepted but not type-checked."""
    nb = load_notebook(notebook)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ParameterError(f"{notebook}: no cell is tagged 'parameters' (papermill needs exactly one)")
    if len(cells) > 1:
        raise ParameterError(f"{notebook}: {len(cells)} cells are tagged 'parameters'; keep exactly one")
    source = cells[0].source
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(f"{notebook}: parameters cell line {exc.lineno}: {exc.msg}") from exc
    params: dict[str, NotebookParameter] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a bare string used as a comment
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            raise ParameterError(
                f"{notebook}: parameters cell line {node.lineno}: only simple assignments "
                f"'name = value' are allowed, got {ast.unparse(node)!r}"
            )
        try:
            params[name] = NotebookParameter(name, ast.literal_eval(value), node.lineno)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            params[name] = NotebookParameter(name, None, node.lineno, literal=False)
    return params


def find_notebooks(directory: str | os.PathLike = "notebooks") -> list[Path]:
    """The notebooks of a series, sorted by name (``_``-prefixed and checkpoint copies skipped)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ParameterError(f"notebook directory {os.fspath(directory)!r} does not exist")
    return sorted(p for p in directory.glob("*.ipynb") if not p.name.startswith(("_", ".")))


def parse_cli_value(text: str) -> Any:
    """Interpret a ``-p NAME VALUE`` string like papermill: True/False/None, int, float, then
    any Python literal (lists, dicts, quoted strings); otherwise the text itself."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


# --------------------------------------------------------------------------- profiles
def list_profiles() -> list[str]:
    """Names of the profiles shipped in ``jetlab/profiles``."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


#: top-level profile key that is not a notebook: {dataset: manifest subsets to fetch} (see :func:`profile_fetch`)
FETCH_KEY = "fetch"


def load_profile(profile: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """A profile by name (``cpu-quick``, ``gpu-hour``, ``paper``, ``ci-tiny``) or a path to a YAML file
    mapping notebook stem -> {parameter: value}."""
    import yaml

    candidate = Path(profile)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        path = candidate
        if not path.is_file():
            raise ParameterError(f"profile file {os.fspath(profile)!r} does not exist")
    else:
        path = PROFILE_DIR / f"{profile}.yaml"
        if not path.is_file():
            raise ParameterError(f"unknown profile {os.fspath(profile)!r}; available: {', '.join(list_profiles())}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"profile {path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParameterError(
            f"profile {path}: expected a mapping notebook-stem -> parameters, got {type(data).__name__}"
        )
    _check_fetch(data.pop(FETCH_KEY, {}), path)
    for stem, params in data.items():
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise ParameterError(f"profile {path}: entry {stem!r} must map parameter names to values")
    return {str(k): dict(v) for k, v in data.items()}


def _check_fetch(fetch: Any, path: Path) -> dict[str, list[str]]:
    if not isinstance(fetch, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in fetch.values()
    ):
        raise ParameterError(f"profile {path}: '{FETCH_KEY}' must map dataset names to lists of manifest subsets")
    return {str(k): list(v) for k, v in fetch.items()}


def _profile_path(profile: str | os.PathLike) -> Path:
    candidate = Path(profile)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        return candidate
    return PROFILE_DIR / f"{profile}.yaml"


def profile_fetch(profile: str | os.PathLike | Mapping | None) -> dict[str, list[str]]:
    """The profile's ``fetch`` entry: {dataset: manifest subsets its notebooks read} (empty if none).

    Why a profile names subsets: a dataset's release can be chosen by what is fetched (ATLAS record
    15013 vs 80030 are subsets of one manifest), and the planner sizes exactly these files."""
    import yaml

    if profile is None:
        return {}
    if isinstance(profile, Mapping):
        return _check_fetch(profile.get(FETCH_KEY, {}), Path("<mapping>"))
    load_profile(profile)  # the same errors as a run
    path = _profile_path(profile)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return _check_fetch(data.get(FETCH_KEY, {}), path)


def profile_parameters(profile: str | os.PathLike | Mapping | None, notebook: str | os.PathLike) -> dict[str, Any]:
    """The parameters a profile sets for one notebook (empty if the profile has no entry)."""
    if profile is None:
        return {}
    data = profile if isinstance(profile, Mapping) else load_profile(profile)
    return dict(data.get(Path(notebook).stem, {}))
