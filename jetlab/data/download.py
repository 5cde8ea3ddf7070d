"""Verified, resumable downloads of the public datasets described by the manifests.

Every file is streamed to ``<dest>.part``; an interrupted transfer resumes from there with
an HTTP ``Range`` request (and restarts cleanly when the server ignores it). Only after the
size and checksum match is the file renamed to its final name, so a file under its final
name is always a verified one. A ``<dest>.lock`` file lock (``fcntl.flock``) keeps two
processes from writing the same file at once.

Only the standard library is used for HTTP (``urllib``), so no extra dependency is needed.

After a file verifies, :func:`fetch` unpacks it once when its manifest entry says
``unpack: gunzip`` or ``unpack: tar`` (:mod:`jetlab.data.archives`); the compressed file stays,
and it is the one :func:`verify` checks. :func:`fetch_plan` says what a fetch would download
and how big it is, so the CLI can ask for ``--yes`` before a large transfer.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .archives import extract_tar, gunzip_once
from .manifests import ALGORITHMS, Manifest, ManifestFile, SizeSummary, load_manifest

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, single-user use only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CONFIRM_ABOVE_BYTES",
    "ChecksumError",
    "DownloadError",
    "FetchPlan",
    "VerifyReport",
    "data_dir",
    "download_file",
    "fetch",
    "fetch_plan",
    "file_checksum",
    "unpack_file",
    "unpack_target",
    "verify",
]

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # 1 MiB
#: ``jetlab data fetch`` asks for ``--yes`` above this many bytes (or when sizes are unknown)
CONFIRM_ABOVE_BYTES = 10 * 10**9
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """A file could not be downloaded (network error, HTTP error, truncated transfer)."""


class ChecksumError(DownloadError):
    """A downloaded or local file does not match its expected size or checksum."""

    def __init__(self, path: os.PathLike[str] | str, algorithm: str, expected: str | int, got: str | int | None):
        self.path, self.algorithm, self.expected, self.got = Path(path), algorithm, expected, got
        what = "size" if algorithm == "size" else f"{algorithm} checksum"
        super().__init__(f"{self.path.name}: {what} mismatch: expected {expected}, got {got} ({self.path})")


class _Retryable(Exception):
    """Internal: a transient failure worth another attempt (the .part file is kept)."""


# --------------------------------------------------------------------------- checksums


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class _Adler32:
    """``hashlib``-like wrapper around :func:`zlib.adler32` (CERN Open Data's checksum)."""

    def __init__(self) -> None:
        self.value = 1

    def update(self, data: bytes, /) -> None:
        self.value = zlib.adler32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value & 0xFFFFFFFF:08x}"


def _check_algorithm(algorithm: str) -> str:
    algo = str(algorithm).lower()
    if algo not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    return algo


def _new_hasher(algorithm: str) -> _Hasher:
    algo = _check_algorithm(algorithm)
    return _Adler32() if algo == "adler32" else hashlib.new(algo)


def _normalise(checksum: str, algorithm: str) -> str:
    text = checksum.strip().lower()
    if text.startswith(f"{algorithm}:"):
        text = text.split(":", 1)[1]
    return text.zfill(8) if algorithm == "adler32" else text


def file_checksum(path: os.PathLike[str] | str, algorithm: str = "sha256") -> str:
    """Hex digest of a local file (``md5``, ``sha256`` or ``adler32``), streamed."""
    h = _new_hasher(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _mismatch(path: Path, size: int | None, checksum: str | None, algorithm: str) -> ChecksumError | None:
    """The first size/checksum mismatch of a local file, or ``None`` if it verifies."""
    if size is not None:
        got = path.stat().st_size
        if got != size:
            return ChecksumError(path, "size", size, got)
    if checksum is not None:
        expected = _normalise(checksum, algorithm)
        got_sum = file_checksum(path, algorithm)
        if got_sum != expected:
            return ChecksumError(path, algorithm, expected, got_sum)
    return None


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``<dest>.lock`` for the duration of a download."""
    lock_path = dest.with_name(dest.name + ".lock")
    with open(lock_path, "a+b") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------- transfer


def _progress_bar(total: int | None, initial: int, desc: str, enabled: bool):
    if not enabled:
        return contextlib.nullcontext(None)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(\d+)-", value or "")
    return int(m.group(1)) if m else None


def _transfer(
    url: str, part: Path, size: int | None, algorithm: str | None, progress: bool, timeout: float
) -> str | None:
    """Stream ``url`` into ``part`` (resuming if it exists); return the hex digest if asked.

    Raises :class:`_Retryable` for transient failures and :class:`DownloadError` for
    permanent ones. A transfer shorter than the server's ``Content-Length`` is transient.
    """
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        log.info("%s is larger than the expected %d bytes; restarting", part, size)
        part.unlink()
        offset = 0

    hasher = _new_hasher(algorithm) if algorithm else None
    if offset and hasher is not None:  # hash the prefix we already have
        with open(part, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                hasher.update(chunk)
    if size is not None and offset == size:  # already complete: nothing to fetch
        return hasher.hexdigest() if hasher else None

    from jetlab import __version__

    request = urllib.request.Request(
        url, headers={"User-Agent": f"jetlab/{__version__}", "Accept-Encoding": "identity"}
    )
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # our .part is at or past the end: start over
            part.unlink(missing_ok=True)
            raise _Retryable(f"HTTP 416 for a resumed request to {url}; restarting from scratch") from exc
        if exc.code in _RETRYABLE_HTTP:
            raise _Retryable(f"HTTP {exc.code} {exc.reason} from {url}") from exc
        raise DownloadError(f"HTTP {exc.code} {exc.reason} while downloading {url}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retryable(f"cannot connect to {url}: {exc}") from exc

    with response:
        status = getattr(response, "status", 200)
        if offset and status == 206 and _content_range_start(response.headers.get("Content-Range")) == offset:
            mode = "ab"
        else:
            if offset:
                log.info("server ignored the Range request for %s; restarting from byte 0", url)
            offset, mode = 0, "wb"
            hasher = _new_hasher(algorithm) if algorithm else None
        length = response.headers.get("Content-Length")
        content_length = int(length) if length is not None and length.isdigit() else None
        expected_end = offset + content_length if content_length is not None else size
        received = offset
        try:
            with (
                open(part, mode) as out,
                _progress_bar(expected_end, offset, part.name[: -len(".part")], progress) as bar,
            ):
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        except (http.client.IncompleteRead, http.client.HTTPException, OSError, socket.timeout) as exc:
            raise _Retryable(f"transfer of {url} interrupted after {received} bytes: {exc!r}") from exc
    if content_length is not None and received < offset + content_length:
        raise _Retryable(f"transfer of {url} truncated: got {received} of {expected_end} bytes")
    if length is None and size is not None and received < size:
        raise _Retryable(f"transfer of {url} ended after {received} of {size} bytes")
    return hasher.hexdigest() if hasher else None


def download_file(
    url: str,
    dest: os.PathLike[str] | str,
    size: int | None = None,
    checksum: str | None = None,
    algorithm: str = "sha256",
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60,
    *,
    mirrors: Iterable[str] = (),
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest``, verify ``size`` and ``checksum``, and return ``dest``.

    An existing ``dest`` that verifies is returned without any network access (one that
    does not verify is downloaded again). ``retries`` transient failures (connection
    errors, 5xx, truncated transfers) are retried with exponential ``backoff`` seconds,
    resuming from ``dest.part``; ``mirrors`` are tried in turn after ``url``.

    Raises :class:`ChecksumError` (naming file, algorithm, expected and actual value) when
    the complete transfer does not match; nothing is left under the final name then.
    Raises :class:`DownloadError` when every attempt failed.
    """
    dest = Path(dest)
    algorithm = _check_algorithm(algorithm)
    if checksum is not None:
        checksum = _normalise(checksum, algorithm)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    urls = [url, *mirrors]

    with _locked(dest):
        if dest.exists():
            bad = _mismatch(dest, size, checksum, algorithm)
            if bad is None:
                log.debug("%s already present and verified", dest)
                return dest
            log.warning("%s exists but does not verify (%s); downloading it again", dest, bad)
            dest.unlink()

        errors: list[str] = []
        dead: set[str] = set()  # URLs that failed permanently (e.g. HTTP 404)
        for attempt in range(retries + 1):
            for u in [u for u in urls if u not in dead]:
                try:
                    digest = _transfer(u, part, size, algorithm if checksum else None, progress, timeout)
                except _Retryable as exc:
                    errors.append(str(exc))
                    log.info("attempt %d for %s failed: %s", attempt + 1, dest.name, exc)
                    continue
                except DownloadError as exc:
                    errors.append(str(exc))
                    dead.add(u)
                    continue
                got_size = part.stat().st_size
                if size is not None and got_size != size:
                    part.unlink(missing_ok=True)
                    raise ChecksumError(dest, "size", size, got_size)
                if checksum is not None and digest != checksum:
                    part.unlink(missing_ok=True)
                    raise ChecksumError(dest, algorithm, checksum, digest)
                os.replace(part, dest)
                return dest
            if len(dead) == len(urls):
                break
            if attempt < retries and backoff > 0:
                time.sleep(min(backoff * 2**attempt, 60.0))
        raise DownloadError(
            f"could not download {dest.name} after {attempt + 1} attempt(s) from {', '.join(urls)}:\n  "
            + "\n  ".join(errors[-5:])
            + (f"\npartial data kept in {part} for resuming" if part.exists() else "")
        )


# --------------------------------------------------------------------------- datasets


def data_dir(name: str | None = None, dest: os.PathLike[str] | str | None = None) -> Path:
    """Where dataset ``name`` lives: ``dest`` if given, else ``$JETLAB_DATA/<name>`` or
    ``~/.cache/jetlab/data/<name>``."""
    if dest is not None:
        return Path(dest).expanduser()
    root = (
        Path(os.environ["JETLAB_DATA"]).expanduser()
        if os.environ.get("JETLAB_DATA")
        else Path.home() / ".cache" / "jetlab" / "data"
    )
    return root / name if name else root


def _manifest(name: str | Manifest) -> Manifest:
    return name if isinstance(name, Manifest) else load_manifest(name)


def fetch(
    name: str | Manifest,
    subset: str | Iterable[str] | None = None,
    dest: os.PathLike[str] | str | None = None,
    progress: bool = True,
    *,
    retries: int = 3,
    timeout: float = 60,
    unpack: bool = True,
) -> list[Path]:
    """Download (or find already verified) the files of dataset ``name``, then unpack them.

    ``subset`` is one subset name, a list of them, ``"all"``, or ``None`` for the manifest's
    default subsets. Returns the local paths of the downloaded (verified, still compressed)
    files in manifest order. With ``unpack`` (default), each file whose manifest entry has
    ``unpack: gunzip|tar`` is unpacked once after it verified (:func:`unpack_file`).
    """
    manifest = _manifest(name)
    files = manifest.files_for(subset)
    root = data_dir(manifest.name, dest)
    paths = []
    for i, f in enumerate(files, 1):
        if progress:
            log.info("[%d/%d] %s", i, len(files), f.name)
        paths.append(
            download_file(
                f.url,
                root / f.name,
                size=f.size,
                checksum=f.checksum,
                algorithm=f.algorithm or "sha256",
                progress=progress,
                retries=retries,
                timeout=timeout,
                mirrors=f.mirrors,
            )
        )
        if unpack and f.unpack:
            unpack_file(f, paths[-1])
    return paths


def unpack_target(entry: ManifestFile, directory: os.PathLike[str] | str) -> Path:
    """Where the tar archive ``entry`` is extracted in the dataset ``directory`` that holds it.

    Its ``unpack_to`` sub-directory (archives of bare files, e.g. JetClass's train parts into
    ``train_100M/``), else ``directory`` itself. The one place that decides it: :func:`fetch`
    unpacks there and :func:`jetlab.data.readers.raw_files` / ``resolve`` look there, so an
    archive is extracted once and its files are read once.
    """
    return Path(directory) / entry.unpack_to if entry.unpack_to else Path(directory)


def unpack_file(entry: ManifestFile, path: os.PathLike[str] | str) -> list[Path]:
    """Unpack the verified local copy ``path`` of manifest file ``entry`` (once); return the outputs.

    ``gunzip``: ``x.h5.gz`` -> ``[x.h5]`` beside it. ``tar``: the archive's regular files,
    extracted safely into :func:`unpack_target` (the directory that holds it, or its ``unpack_to``).
    No ``unpack`` -> ``[path]``.
    """
    path = Path(path)
    if entry.unpack is None:
        return [path]
    if entry.unpack == "gunzip":
        return [gunzip_once(path)]
    if entry.unpack == "tar":
        return extract_tar(path, unpack_target(entry, path.parent))
    raise ValueError(f"{entry.name}: unknown unpack method {entry.unpack!r}")  # parse_manifest prevents this


@dataclass
class FetchPlan:
    """What :func:`fetch` would do: the selected files, those still to download, and their size."""

    dataset: str
    directory: Path
    files: list[ManifestFile]
    to_download: list[ManifestFile]
    size: SizeSummary  # of ``to_download``

    @property
    def needs_confirmation(self) -> bool:
        """True above :data:`CONFIRM_ABOVE_BYTES` or when some file's size is unknown."""
        return bool(self.to_download) and (self.size.total > CONFIRM_ABOVE_BYTES or self.size.n_unknown > 0)

    def describe(self) -> str:
        present = len(self.files) - len(self.to_download)
        head = f"{self.dataset}: {len(self.to_download)} of {len(self.files)} file(s) to download"
        return (
            head
            + (f" ({present} already present)" if present else "")
            + f", {self.size.text(detail=True)}, into {self.directory}"
        )


def fetch_plan(
    name: str | Manifest, subset: str | Iterable[str] | None = None, dest: os.PathLike[str] | str | None = None
) -> FetchPlan:
    """Which files :func:`fetch` would download, and their total size (no network, no hashing).

    A file counts as present when it exists under its final name with the expected size (if
    known): :func:`fetch` itself still verifies its checksum.
    """
    manifest = _manifest(name)
    files = manifest.files_for(subset)
    root = data_dir(manifest.name, dest)

    def present(f: ManifestFile) -> bool:
        p = root / f.name
        return p.is_file() and (f.size is None or p.stat().st_size == f.size)

    todo = [f for f in files if not present(f)]
    return FetchPlan(manifest.name, root, files, todo, manifest.size_summary(todo))


@dataclass
class VerifyReport:
    """Result of :func:`verify`, one list per outcome.

    ``good``: the published checksum matched (and the size, when published). ``size_only``: no
    checksum is published, the published size matched; that is weaker than a checksum, so it is
    kept apart. ``unchecked``: present, but nothing is published to check it against.
    """

    dataset: str
    directory: Path
    good: list[Path] = field(default_factory=list)
    unchecked: list[Path] = field(default_factory=list)
    missing: list[ManifestFile] = field(default_factory=list)
    bad: list[tuple[ManifestFile, str]] = field(default_factory=list)
    size_only: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every file is present and none failed a check (unchecked files included)."""
        return not self.missing and not self.bad

    def __str__(self) -> str:
        lines = [
            f"{self.dataset} in {self.directory}: {len(self.good)} verified (checksum), "
            f"{len(self.size_only)} size only (no published checksum), {len(self.unchecked)} unchecked "
            f"(no published size or checksum), {len(self.missing)} missing, {len(self.bad)} bad"
        ]
        lines += [f"  BAD        {f.name}: {why}" for f, why in self.bad]
        lines += [f"  MISSING    {f.name}" for f in self.missing]
        lines += _some("  SIZE ONLY  ", [p.name for p in self.size_only])
        lines += _some("  UNCHECKED  ", [p.name for p in self.unchecked])
        return "\n".join(lines)


def _some(prefix: str, names: list[str], limit: int = 10) -> list[str]:
    out = [prefix + n for n in names[:limit]]
    if len(names) > limit:
        out.append(f"{prefix}... and {len(names) - limit} more")
    return out


def verify(
    name: str | Manifest, dest: os.PathLike[str] | str | None = None, subset: str | Iterable[str] | None = None
) -> VerifyReport:
    """Check size and checksum of the local files of dataset ``name`` (no network).

    Compressed files are checked as published (``x.h5.gz``, not the unpacked ``x.h5``).
    """
    manifest = _manifest(name)
    root = data_dir(manifest.name, dest)
    report = VerifyReport(manifest.name, root)
    for f in manifest.files_for(subset):
        path = root / f.name
        if not path.is_file():
            report.missing.append(f)
            continue
        bad = _mismatch(path, f.size, f.checksum, f.algorithm or "sha256")
        if bad is not None:
            report.bad.append((f, str(bad)))
        elif f.check == "checksum":
            report.good.append(path)
        elif f.check == "size only":
            report.size_only.append(path)
        else:
            report.unchecked.append(path)
    return report
