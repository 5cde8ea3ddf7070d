"""Unpacking published archives: gzip shards and tar files, including crafted malicious tars."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from jetlab.data.archives import ArchiveError, extract_tar, gunzip_once, unpacked_marker


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_gunzip_once_round_trip_and_reuse(tmp_path):
    payload = bytes(range(256)) * 1000
    gz = tmp_path / "train_nominal_000.h5.gz"
    gz.write_bytes(gzip.compress(payload))
    out = gunzip_once(gz)
    assert out == tmp_path / "train_nominal_000.h5"
    assert out.read_bytes() == payload
    mtime = out.stat().st_mtime_ns
    assert gunzip_once(gz) == out and out.stat().st_mtime_ns == mtime  # not redone
    assert gz.is_file()  # the verified compressed file is kept


def test_gunzip_truncated_leaves_nothing(tmp_path):
    gz = tmp_path / "x.h5.gz"
    gz.write_bytes(gzip.compress(b"a" * 100_000)[:-20])
    with pytest.raises(ArchiveError, match="x.h5.gz: gzip stream truncated"):
        gunzip_once(gz)
    assert not (tmp_path / "x.h5").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5.gz"]


def test_gunzip_rejects_non_gzip(tmp_path):
    f = tmp_path / "y.h5.gz"
    f.write_bytes(b"\x89HDF\r\n")
    with pytest.raises(ArchiveError, match="not a gzip file"):
        gunzip_once(f)


def test_extract_tar_members_and_marker(tmp_path):
    arc = tmp_path / "JetClass_Pythia_val_5M.tar"
    with tarfile.open(arc, "w") as tar:
        _add_bytes(tar, "val_5M/HToBB_120.root", b"root-a")
        _add_bytes(tar, "val_5M/TTBar_120.root", b"root-b")
    out = tmp_path / "unpacked"
    files = extract_tar(arc, out)
    assert sorted(p.name for p in files) == ["HToBB_120.root", "TTBar_120.root"]
    assert (out / "val_5M" / "HToBB_120.root").read_bytes() == b"root-a"
    assert unpacked_marker(out, arc).is_file()
    arc.unlink()  # a completed extraction does not need the archive again
    assert sorted(extract_tar(arc, out)) == sorted(files)


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink_out", "hardlink_out"])
def test_extract_tar_refuses_malicious_members(tmp_path, kind):
    arc = tmp_path / "evil.tar"
    victim = tmp_path / "victim.txt"
    with tarfile.open(arc, "w") as tar:
        _add_bytes(tar, "ok/file.root", b"fine")
        if kind == "absolute":
            _add_bytes(tar, str(victim), b"pwned")
        elif kind == "dotdot":
            _add_bytes(tar, "../victim.txt", b"pwned")
        else:
            link = tarfile.TarInfo("ok/link")
            link.type = tarfile.SYMTYPE if kind == "symlink_out" else tarfile.LNKTYPE
            link.linkname = str(victim) if kind == "symlink_out" else "../victim.txt"
            tar.addfile(link)
            _add_bytes(tar, "ok/link", b"pwned through the link")
    out = tmp_path / "out"
    with pytest.raises(ArchiveError, match="evil.tar: refused to extract an unsafe member"):
        extract_tar(arc, out)
    assert not victim.exists()
    # nothing half-extracted is left under final names, and no completion marker
    assert not (out / "ok").exists()
    assert not unpacked_marker(out, arc).exists()


def test_extract_tar_corrupt(tmp_path):
    arc = tmp_path / "broken.tar"
    with tarfile.open(arc, "w") as tar:
        _add_bytes(tar, "a.root", b"x" * 50_000)
    arc.write_bytes(arc.read_bytes()[:3000])
    with pytest.raises(ArchiveError, match="broken.tar: tar archive truncated or corrupt"):
        extract_tar(arc, tmp_path / "out")
