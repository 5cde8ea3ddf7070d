"""Dataset manifests: what to download, from where, and how to check it.

One YAML file per public dataset lives in ``data_manifests/`` at the repository root. A
manifest records the publisher's record, licence and citation, the files (URL, size,
checksum) grouped into subsets, and a ``schema`` section that tells the readers in
:mod:`jetlab.data.readers` which keys, units and label encodings to expect.

Manifests are looked up, in order, in

1. the directories listed in ``$JETLAB_MANIFESTS`` (``os.pathsep``-separated; when set, only
   these are searched, which is what tests and private mirrors want);
2. ``jetlab/data/_manifests/`` inside the installed package (for wheels that bundle them);
3. ``data_manifests/`` next to the package (an editable install / source checkout).

Sizes and checksums that could not be verified against the publisher are ``null`` in the
YAML with a ``note`` saying so: a missing number is honest, an invented one is a bug.

Per file, besides ``name``/``url``/``subset``:

* ``size`` (exact bytes) and ``checksum`` + ``algorithm`` (md5, sha256, adler32) are checked
  after every download and by ``jetlab data verify``;
* ``approx_size`` (bytes, or a text such as ``"2.9 GB"``) is a rounded size quoted by a public
  source when the exact one is not known: it is only shown and summed (``jetlab data list``, the
  ``fetch`` confirmation), never used to accept or reject a file;
* ``unpack: gunzip | tar`` says how the verified file is unpacked once after download
  (:mod:`jetlab.data.archives`): ``gunzip`` writes ``x.h5`` beside ``x.h5.gz``, ``tar`` extracts
  the archive into the dataset directory (or into its sub-directory ``unpack_to``, for archives
  that hold bare files). The compressed file is kept: its published checksum is the one that is
  verified.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ALGORITHMS",
    "UNPACK_METHODS",
    "Manifest",
    "ManifestError",
    "ManifestFile",
    "SizeSummary",
    "Subset",
    "format_bytes",
    "list_datasets",
    "load_manifest",
    "manifest_dirs",
    "parse_manifest",
]

#: checksum algorithms a manifest may name, with the length of their hex digest
ALGORITHMS: dict[str, int] = {"md5": 32, "sha256": 64, "adler32": 8}
#: how a verified file is unpacked after download, with the file-name endings each accepts
UNPACK_METHODS: dict[str, tuple[str, ...]] = {
    "gunzip": (".gz",),
    "tar": (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"),
}

REQUIRED_KEYS = (
    "name",
    "title",
    "description",
    "license",
    "citation",
    "format",
    "reader",
    "subsets",
    "files",
    "schema",
)
OPTIONAL_KEYS = ("record_id", "doi", "record_url", "publisher", "notes", "version")
FILE_KEYS = (
    "name",
    "url",
    "size",
    "checksum",
    "algorithm",
    "subset",
    "mirrors",
    "note",
    "indices",
    "unpack",
    "unpack_to",
    "approx_size",
)
URL_SCHEMES = ("https://", "http://")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-{}:]*$")


class ManifestError(ValueError):
    """A manifest is missing, malformed, or asked for something it does not have."""


@dataclass(frozen=True)
class ManifestFile:
    """One downloadable file of a dataset."""

    name: str
    url: str
    size: int | None = None
    checksum: str | None = None
    algorithm: str | None = None
    subset: str | None = None
    mirrors: tuple[str, ...] = ()
    note: str | None = None
    unpack: str | None = None
    approx_size: int | None = None
    unpack_to: str | None = None

    @property
    def urls(self) -> tuple[str, ...]:
        """Primary URL followed by the mirrors, in the order they are tried."""
        return (self.url, *self.mirrors)

    @property
    def check(self) -> str:
        """What a local copy can be checked against: ``"checksum"``, ``"size only"`` or ``"none"``."""
        if self.checksum is not None:
            return "checksum"
        return "size only" if self.size is not None else "none"


def format_bytes(n: float) -> str:
    """Decimal units, as publishers quote sizes (``1.5 GB`` = 1.5e9 bytes)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class SizeSummary:
    """Total size of some files: exact bytes, rounded (``approx_size``) bytes, and unknowns."""

    exact: int = 0
    approx: int = 0
    n_files: int = 0
    n_approx: int = 0
    n_unknown: int = 0

    @property
    def total(self) -> int:
        """Exact plus approximate bytes (the unknown files add nothing)."""
        return self.exact + self.approx

    def text(self, detail: bool = False) -> str:
        """``207.3 GB``; ``~3.0 GB`` when rounded sizes are included; ``~21.2 GB + size unknown
        for 10 files``; ``size unknown for 34 files``. ``detail`` adds how many are approximate."""
        if self.n_files and self.n_unknown == self.n_files:
            return f"size unknown for {self.n_files} file{'s' * (self.n_files != 1)}"
        out = ("~" if self.n_approx else "") + format_bytes(self.total)
        if detail and self.n_approx:
            out += f" ({self.n_approx} of {self.n_files} sizes approximate)"
        if self.n_unknown:
            out += f" + size unknown for {self.n_unknown} file{'s' * (self.n_unknown != 1)}"
        return out


@dataclass(frozen=True)
class Subset:
    """A named group of files (``train``, ``test``, ``Herwig``, ...)."""

    name: str
    description: str = ""
    default: bool = True


@dataclass(frozen=True)
class Manifest:
    """A parsed and validated dataset manifest."""

    name: str
    title: str
    description: str
    license: str | None
    citation: str
    format: str
    reader: str
    subsets: dict[str, Subset]
    files: list[ManifestFile]
    schema: dict[str, Any]
    record_id: str | None = None
    doi: str | None = None
    record_url: str | None = None
    publisher: str | None = None
    notes: list[str] = field(default_factory=list)
    path: Path | None = None

    @property
    def default_subsets(self) -> list[str]:
        return [s.name for s in self.subsets.values() if s.default]

    def files_for(self, subset: str | Iterable[str] | None = None) -> list[ManifestFile]:
        """Files of the requested subsets.

        ``None`` selects the default subsets (optional extras such as systematic variations
        or black boxes are opt-in), ``"all"`` selects every file.
        """
        if subset is None:
            wanted = set(self.default_subsets)
        elif isinstance(subset, str):
            wanted = set(self.subsets) if subset == "all" else {subset}
        else:
            wanted = set()
            for s in subset:
                wanted |= set(self.subsets) if s == "all" else {s}
        unknown = sorted(wanted - set(self.subsets))
        if unknown:
            raise ManifestError(
                f"dataset {self.name!r} has no subset {', '.join(map(repr, unknown))}; "
                f"known subsets: {', '.join(self.subsets)} (or 'all')"
            )
        return [f for f in self.files if f.subset in wanted]

    def total_size(self, files: Iterable[ManifestFile] | None = None) -> tuple[int, int]:
        """``(exact bytes, number of files without an exact size)``; see :meth:`size_summary`."""
        files = self.files if files is None else list(files)
        known = sum(f.size for f in files if f.size is not None)
        return known, sum(1 for f in files if f.size is None)

    def size_summary(self, files: Iterable[ManifestFile] | None = None) -> SizeSummary:
        """Exact and approximate totals of ``files`` (default: all), and how many are unknown."""
        files = self.files if files is None else list(files)
        return SizeSummary(
            exact=sum(f.size for f in files if f.size is not None),
            approx=sum(f.approx_size for f in files if f.size is None and f.approx_size is not None),
            n_files=len(files),
            n_approx=sum(1 for f in files if f.size is None and f.approx_size is not None),
            n_unknown=sum(1 for f in files if f.size is None and f.approx_size is None),
        )

    def file(self, name: str) -> ManifestFile:
        for f in self.files:
            if f.name == name:
                return f
        raise ManifestError(f"dataset {self.name!r} has no file {name!r}")


# --------------------------------------------------------------------------- lookup


def manifest_dirs() -> list[Path]:
    """Directories searched for ``<name>.yaml``, highest priority first."""
    env = os.environ.get("JETLAB_MANIFESTS")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    candidates = [here / "_manifests", here.parent.parent / "data_manifests"]
    return [d for d in candidates if d.is_dir()]


def _manifest_paths() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in manifest_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")):
            found.setdefault(p.stem, p)
    return found


def list_datasets() -> list[str]:
    """Names of all datasets with a manifest, sorted."""
    return sorted(_manifest_paths())


def load_manifest(name: str | os.PathLike[str]) -> Manifest:
    """Load and validate the manifest of dataset ``name`` (or a path to a YAML file)."""
    path: Path | None = None
    if isinstance(name, os.PathLike) or str(name).endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise ManifestError(f"manifest file {str(path)!r} does not exist")
    else:
        paths = _manifest_paths()
        if name not in paths:
            dirs = ", ".join(str(d) for d in manifest_dirs()) or "(none found)"
            known = ", ".join(sorted(paths)) or "(none)"
            raise ManifestError(f"unknown dataset {name!r}; known datasets: {known} (searched: {dirs})")
        path = paths[str(name)]
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: invalid YAML: {exc}") from exc
    manifest = parse_manifest(data, source=str(path))
    if manifest.name != path.stem:
        raise ManifestError(f"{path}: 'name' is {manifest.name!r} but the file is named {path.name!r}")
    return manifest


# --------------------------------------------------------------------------- validation


def _normalise_checksum(value: Any, algorithm: str, where: str) -> str:
    """Lower-case hex digest without a ``md5:``-style prefix; checks its length."""
    text = str(value).strip().lower()
    if ":" in text:
        prefix, text = text.split(":", 1)
        if prefix != algorithm:
            raise ManifestError(f"{where}: checksum prefix {prefix!r} does not match algorithm {algorithm!r}")
    if algorithm == "adler32" and re.fullmatch(r"[0-9a-f]{1,8}", text):
        text = text.zfill(8)  # publishers sometimes drop leading zeros
    n = ALGORITHMS[algorithm]
    if not re.fullmatch(rf"[0-9a-f]{{{n}}}", text):
        raise ManifestError(f"{where}: checksum {value!r} is not a {n}-digit hex {algorithm} digest")
    return text


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|TB)\s*$")
_UNIT = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def _parse_approx_size(value: Any, where: str) -> int:
    """``approx_size``: a positive byte count or a decimal-unit text like ``"2.9 GB"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE_RE.match(value) if isinstance(value, str) else None
    if m is None or float(m.group(1)) <= 0:
        raise ManifestError(
            f"{where}: approx_size must be a positive number of bytes or a text like '2.9 GB' "
            f"(units B, kB, MB, GB, TB), got {value!r}"
        )
    return round(float(m.group(1)) * _UNIT[m.group(2)])


def _check_unpack(method: Any, name: str, where: str) -> str | None:
    if method is None:
        return None
    if method not in UNPACK_METHODS:
        raise ManifestError(f"{where}: unpack {method!r} is not one of {', '.join(UNPACK_METHODS)} (or null)")
    endings = UNPACK_METHODS[method]
    if not name.endswith(endings):
        raise ManifestError(
            f"{where}: unpack {method!r} needs a file name ending in {' or '.join(endings)}, got {name!r}"
        )
    return method


_SUBDIR_RE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


def _check_unpack_to(value: Any, unpack: str | None, where: str) -> str | None:
    if value is None:
        return None
    if unpack != "tar":
        raise ManifestError(f"{where}: 'unpack_to' only applies to 'unpack: tar'")
    if not isinstance(value, str) or not _SUBDIR_RE.match(value) or ".." in value.split("/"):
        raise ManifestError(
            f"{where}: unpack_to must be a relative directory like 'train_100M' (no '..'), got {value!r}"
        )
    return value


def _check_url(url: Any, where: str) -> str:
    if not isinstance(url, str) or not url.startswith(URL_SCHEMES):
        raise ManifestError(f"{where}: url {url!r} must start with one of {', '.join(URL_SCHEMES)}")
    return url


def _parse_file(entry: Any, index: int, subsets: Mapping[str, Subset], where: str) -> list[ManifestFile]:
    at = f"{where}: files[{index}]"
    if not isinstance(entry, Mapping):
        raise ManifestError(f"{at}: expected a mapping, got {type(entry).__name__}")
    extra = set(entry) - set(FILE_KEYS)
    if extra:
        raise ManifestError(f"{at}: unknown key(s) {sorted(extra)}; allowed: {', '.join(FILE_KEYS)}")
    for key in ("name", "url", "subset"):
        if key not in entry:
            raise ManifestError(f"{at}: missing required key {key!r}")
    name = entry["name"]
    at = f"{where}: file {name!r}"
    if not isinstance(name, str) or not _FILE_NAME_RE.match(name) or ".." in name:
        raise ManifestError(f"{at}: file name must be a plain file name (no directories), got {name!r}")
    subset = entry["subset"]
    if subset not in subsets:
        raise ManifestError(f"{at}: subset {subset!r} is not declared in 'subsets' ({', '.join(subsets)})")
    _check_url(entry["url"], at)
    mirrors = entry.get("mirrors") or []
    if not isinstance(mirrors, list):
        raise ManifestError(f"{at}: 'mirrors' must be a list of URLs")
    for m in mirrors:
        _check_url(m, f"{at} (mirror)")
    size = entry.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ManifestError(f"{at}: size must be a non-negative integer number of bytes or null, got {size!r}")
    checksum, algorithm = entry.get("checksum"), entry.get("algorithm")
    if checksum is not None or algorithm is not None:
        if algorithm not in ALGORITHMS:
            raise ManifestError(f"{at}: algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if checksum is None:
            raise ManifestError(f"{at}: algorithm {algorithm!r} given without a checksum")
        checksum = _normalise_checksum(checksum, algorithm, at)
    note = entry.get("note")
    approx = entry.get("approx_size")
    if approx is not None:
        if size is not None:
            raise ManifestError(f"{at}: give either an exact 'size' or an 'approx_size', not both")
        approx = _parse_approx_size(approx, at)
    unpack = _check_unpack(entry.get("unpack"), name, at)
    unpack_to = _check_unpack_to(entry.get("unpack_to"), unpack, at)

    indices = entry.get("indices")
    if indices is None:
        if "{" in name or "{" in entry["url"]:
            raise ManifestError(f"{at}: name/url contain a '{{...}}' pattern but no 'indices: [start, stop]'")
        return [
            ManifestFile(
                name, entry["url"], size, checksum, algorithm, subset, tuple(mirrors), note, unpack, approx, unpack_to
            )
        ]

    # a pattern entry: name/url contain ``{index...}`` and expand over range(start, stop)
    if (
        not isinstance(indices, list)
        or len(indices) != 2
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices)
        or not 0 <= indices[0] < indices[1]
    ):
        raise ManifestError(f"{at}: 'indices' must be [start, stop) with 0 <= start < stop, got {indices!r}")
    if checksum is not None or size is not None or approx is not None:
        raise ManifestError(f"{at}: a pattern entry cannot carry one size/checksum for many files; list them")
    if "{index" not in name:
        raise ManifestError(f"{at}: pattern entry name must contain '{{index}}' (e.g. 'part_{{index:03d}}.h5')")
    out = []
    for i in range(*indices):
        try:
            fname = name.format(index=i)
            urls = [u.format(index=i, name=fname) for u in (entry["url"], *mirrors)]
        except (KeyError, IndexError, ValueError) as exc:
            raise ManifestError(f"{at}: cannot expand pattern: {exc!r} (use {{index}} and {{name}})") from exc
        out.append(
            ManifestFile(fname, urls[0], None, None, None, subset, tuple(urls[1:]), note, unpack, None, unpack_to)
        )
    return out


def parse_manifest(data: Any, source: str = "<manifest>") -> Manifest:
    """Validate a manifest mapping (as loaded from YAML) and build a :class:`Manifest`."""
    if not isinstance(data, Mapping):
        raise ManifestError(f"{source}: expected a YAML mapping at top level, got {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ManifestError(f"{source}: missing required key(s) {', '.join(map(repr, missing))}")
    extra = set(data) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS)
    if extra:
        raise ManifestError(f"{source}: unknown top-level key(s) {sorted(extra)}")
    name = data["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ManifestError(f"{source}: 'name' must be a lower-case identifier, got {name!r}")
    for key in ("title", "description", "citation", "format", "reader"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise ManifestError(f"{source}: {key!r} must be a non-empty string")
    if not data["reader"].isidentifier():
        raise ManifestError(f"{source}: 'reader' must name a function in jetlab.data.readers, got {data['reader']!r}")
    if data["license"] is not None and not isinstance(data["license"], str):
        raise ManifestError(f"{source}: 'license' must be a string or null")
    if data.get("record_url") is not None:
        _check_url(data["record_url"], f"{source}: record_url")
    if not isinstance(data["schema"], Mapping) or not data["schema"]:
        raise ManifestError(f"{source}: 'schema' must be a non-empty mapping")

    raw_subsets = data["subsets"]
    if not isinstance(raw_subsets, Mapping) or not raw_subsets:
        raise ManifestError(f"{source}: 'subsets' must be a non-empty mapping of name -> description")
    subsets: dict[str, Subset] = {}
    for sname, spec in raw_subsets.items():
        if isinstance(spec, str) or spec is None:
            subsets[str(sname)] = Subset(str(sname), spec or "", True)
        elif isinstance(spec, Mapping):
            bad = set(spec) - {"description", "default"}
            if bad:
                raise ManifestError(f"{source}: subset {sname!r}: unknown key(s) {sorted(bad)}")
            subsets[str(sname)] = Subset(str(sname), str(spec.get("description", "")), bool(spec.get("default", True)))
        else:
            raise ManifestError(f"{source}: subset {sname!r} must be a description string or a mapping")
    if "all" in subsets:
        raise ManifestError(f"{source}: 'all' is reserved and cannot be a subset name")
    if not any(s.default for s in subsets.values()):
        raise ManifestError(f"{source}: at least one subset must be a default subset")

    if not isinstance(data["files"], list) or not data["files"]:
        raise ManifestError(f"{source}: 'files' must be a non-empty list")
    files: list[ManifestFile] = []
    for i, entry in enumerate(data["files"]):
        files.extend(_parse_file(entry, i, subsets, source))
    seen: set[str] = set()
    for f in files:
        if f.name in seen:
            raise ManifestError(f"{source}: duplicate file name {f.name!r}")
        seen.add(f.name)
    empty = [s for s in subsets if not any(f.subset == s for f in files)]
    if empty:
        raise ManifestError(f"{source}: subset(s) {', '.join(map(repr, empty))} have no files")

    notes = data.get("notes") or []
    if isinstance(notes, str):
        notes = [notes]
    return Manifest(
        name=name,
        title=data["title"].strip(),
        description=data["description"].strip(),
        license=data["license"],
        citation=data["citation"].strip(),
        format=data["format"].strip(),
        reader=data["reader"],
        subsets=subsets,
        files=files,
        schema=dict(data["schema"]),
        record_id=None if data.get("record_id") is None else str(data["record_id"]),
        doi=data.get("doi"),
        record_url=data.get("record_url"),
        publisher=data.get("publisher"),
        notes=[str(n).strip() for n in notes],
        path=Path(source) if source and not source.startswith("<") else None,
    )
