"""Unpacking what publishers ship compressed: gzip shards (ATLAS 2024) and tar archives (JetClass).

Both run once, after a download has been verified, and write atomically: a reader never sees a
half-decompressed file or a partly extracted archive under its final name. The checksum that was
verified stays the publisher's, of the compressed file.

Tar archives are extracted with :mod:`tarfile`'s ``"data"`` filter (PEP 706): absolute paths,
``..`` components, links that point outside the target, device files and setuid bits are refused,
so a crafted archive cannot write outside the directory it is unpacked into.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
from pathlib import Path

from jetlab._io import atomic_path

__all__ = ["ArchiveError", "extract_tar", "gunzip_once", "is_gzip", "unpacked_marker"]

CHUNK = 1 << 22  # 4 MiB


class ArchiveError(RuntimeError):
    """An archive is unsafe, corrupt or not what its name says."""


def is_gzip(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def gunzip_once(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Decompress ``path`` (``x.h5.gz``) to ``out`` (default ``x.h5`` beside it) unless already done.

    The result is reused while it is newer than the compressed file; the compressed file is kept
    (it is the one whose published checksum was verified).
    """
    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"gunzip: {src} does not exist")
    dest = (
        Path(out)
        if out is not None
        else src.with_suffix("")
        if src.suffix == ".gz"
        else src.with_name(src.name + ".raw")
    )
    if dest.is_file() and dest.stat().st_mtime >= src.stat().st_mtime:
        return dest
    if not is_gzip(src):
        raise ArchiveError(f"{src}: not a gzip file (expected the gzip magic bytes 1f 8b)")
    try:
        with atomic_path(dest) as tmp, gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
    except (OSError, EOFError) as exc:
        raise ArchiveError(f"{src}: gzip stream truncated or corrupt ({exc})") from exc
    return dest


def unpacked_marker(directory: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """The file that records a completed extraction of ``archive`` into ``directory``."""
    return Path(directory) / f".{Path(archive).name}.unpacked"


def extract_tar(path: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Safely extract the tar archive ``path`` into ``dest``; return the regular files it holds.

    Extraction goes to a temporary directory inside ``dest`` and is moved into place member by
    member only when the whole archive was read; a marker file then records completion, so a
    second call returns at once and an interrupted one starts over.
    """
    src, dest = Path(path), Path(dest)
    marker = unpacked_marker(dest, src)
    if marker.is_file():
        names = [line for line in marker.read_text(encoding="utf-8").splitlines() if line]
        files = [dest / n for n in names]
        if all(p.is_file() for p in files):
            return files
    if not src.is_file():
        raise FileNotFoundError(f"extract: archive {src} does not exist")
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".{src.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        try:
            with tarfile.open(src, "r:*") as tar:
                members = tar.getmembers()
                absolute = [m.name for m in members if os.path.isabs(m.name)]
                if absolute:  # the data filter would strip the slash; a published archive never has one
                    raise tarfile.AbsolutePathError(tar.getmember(absolute[0]))
                tar.extractall(staging, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise ArchiveError(
                f"{src}: refused to extract an unsafe member ({exc}); the archive is not what the publisher ships"
            ) from exc
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ArchiveError(f"{src}: tar archive truncated or corrupt ({exc})") from exc
        names = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        for name in names:
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target)
        with atomic_path(marker) as tmp:
            tmp.write_text("\n".join(names) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [dest / n for n in names]
