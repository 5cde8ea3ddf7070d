"""Verified, resumable downloads against a local HTTP server (no internet)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import re
import tarfile
import threading
import zlib
from pathlib import Path

import pytest

from jetlab.cli.main import main
import jetlab.data.download as download_mod
from jetlab.data.download import (
    ChecksumError,
    DownloadError,
    download_file,
    fetch,
    fetch_plan,
    file_checksum,
    verify,
)

PAYLOAD = bytes(range(256)) * 40 + b"jetlab"  # 10246 bytes, not a multiple of anything
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.truncate: dict[str, int] = {}  # path -> number of requests still to truncate
        self.ignore_range: set[str] = set()
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv: _Server = self.server  # type: ignore[assignment]
        path = self.path.split("?")[0]
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((path, rng))
            truncate = srv.truncate.get(path, 0) > 0
            if truncate:
                srv.truncate[path] -= 1
        if path not in srv.files:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = srv.files[path]
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and path not in srv.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if truncate:  # promise the full length, send about half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _no_partials(directory: Path) -> bool:
    return not list(directory.glob("*.part"))


# --------------------------------------------------------------------------- download_file


@pytest.mark.parametrize(
    "algorithm, digest",
    [
        ("sha256", SHA),
        ("md5", hashlib.md5(PAYLOAD).hexdigest()),
        ("adler32", f"{zlib.adler32(PAYLOAD) & 0xFFFFFFFF:08x}"),
    ],
)
def test_good_file_all_algorithms(server, tmp_path, algorithm, digest):
    server.files["/good.bin"] = PAYLOAD
    dest = tmp_path / "sub" / "good.bin"
    out = download_file(server.base + "/good.bin", dest, size=len(PAYLOAD), checksum=digest, algorithm=algorithm, progress=False)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert _no_partials(dest.parent)
    assert file_checksum(dest, algorithm) == digest


def test_progress_bar_path(server, tmp_path, capsys):
    server.files["/bar.bin"] = PAYLOAD
    dest = download_file(server.base + "/bar.bin", tmp_path / "bar.bin", size=len(PAYLOAD), checksum=SHA, progress=True)
    assert dest.read_bytes() == PAYLOAD
    assert "bar.bin" in capsys.readouterr().err  # tqdm writes its description to stderr


def test_checksum_prefix_and_case_are_accepted(server, tmp_path):
    server.files["/p.bin"] = PAYLOAD
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    dest = download_file(server.base + "/p.bin", tmp_path / "p.bin", checksum="MD5:" + md5.upper(), algorithm="md5", progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_file_checksum_matches_reference_implementations(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(PAYLOAD * 300)  # > 1 chunk
    assert file_checksum(p, "sha256") == hashlib.sha256(PAYLOAD * 300).hexdigest()
    assert file_checksum(p, "adler32") == f"{zlib.adler32(PAYLOAD * 300) & 0xFFFFFFFF:08x}"
    with pytest.raises(ValueError, match="crc32"):
        file_checksum(p, "crc32")


def test_corrupted_file_raises_checksum_error(server, tmp_path):
    server.files["/bad.bin"] = PAYLOAD[:-1] + b"X"
    dest = tmp_path / "bad.bin"
    with pytest.raises(ChecksumError) as info:
        download_file(server.base + "/bad.bin", dest, checksum=SHA, progress=False, backoff=0)
    msg = str(info.value)
    assert "bad.bin" in msg and "sha256" in msg and SHA in msg
    assert info.value.expected == SHA and info.value.got == hashlib.sha256(server.files["/bad.bin"]).hexdigest()
    assert not dest.exists()
    assert _no_partials(tmp_path)
    assert server.count("/bad.bin") == 1  # a bad checksum is not retried


def test_wrong_size_raises_and_leaves_nothing(server, tmp_path):
    server.files["/short.bin"] = PAYLOAD
    dest = tmp_path / "short.bin"
    with pytest.raises(ChecksumError, match=r"short\.bin: size mismatch: expected 10300, got 10246"):
        download_file(server.base + "/short.bin", dest, size=10300, progress=False, backoff=0)
    assert not dest.exists() and _no_partials(tmp_path)


def test_truncated_transfer_is_retried_with_resume(server, tmp_path):
    server.files["/trunc.bin"] = PAYLOAD
    server.truncate["/trunc.bin"] = 1
    dest = download_file(server.base + "/trunc.bin", tmp_path / "trunc.bin", checksum=SHA, progress=False, backoff=0)
    assert dest.read_bytes() == PAYLOAD
    ranges = [r for p, r in server.requests if p == "/trunc.bin"]
    assert ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]  # second request resumed where the first stopped


def test_truncated_transfer_that_never_completes_is_a_download_error(server, tmp_path):
    server.files["/always.bin"] = PAYLOAD
    server.truncate["/always.bin"] = 100
    dest = tmp_path / "always.bin"
    with pytest.raises(DownloadError, match=r"could not download always\.bin after 3 attempt\(s\)") as info:
        download_file(server.base + "/always.bin", dest, checksum=SHA, retries=2, progress=False, backoff=0)
    assert not isinstance(info.value, ChecksumError)
    assert "truncated" in str(info.value)
    assert not dest.exists()  # never a bad file under the final name
    assert server.count("/always.bin") == 3


def test_resume_from_existing_partial(server, tmp_path):
    server.files["/resume.bin"] = PAYLOAD
    dest = tmp_path / "resume.bin"
    (tmp_path / "resume.bin.part").write_bytes(PAYLOAD[:4000])
    download_file(server.base + "/resume.bin", dest, size=len(PAYLOAD), checksum=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/resume.bin", "bytes=4000-")]
    assert _no_partials(tmp_path)


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.files["/norange.bin"] = PAYLOAD
    server.ignore_range.add("/norange.bin")
    (tmp_path / "norange.bin.part").write_bytes(b"garbage-prefix" * 10)
    dest = download_file(server.base + "/norange.bin", tmp_path / "norange.bin", checksum=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD  # not garbage + payload


def test_partial_larger_than_expected_is_discarded(server, tmp_path):
    server.files["/big.bin"] = PAYLOAD
    (tmp_path / "big.bin.part").write_bytes(b"x" * (len(PAYLOAD) + 10))
    dest = download_file(server.base + "/big.bin", tmp_path / "big.bin", size=len(PAYLOAD), checksum=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/big.bin", None)]


def test_verified_existing_file_is_not_downloaded_again(server, tmp_path):
    server.files["/cached.bin"] = PAYLOAD
    dest = tmp_path / "cached.bin"
    dest.write_bytes(PAYLOAD)
    download_file(server.base + "/cached.bin", dest, size=len(PAYLOAD), checksum=SHA, progress=False)
    assert server.requests == []


def test_existing_file_that_fails_verification_is_replaced(server, tmp_path):
    server.files["/stale.bin"] = PAYLOAD
    dest = tmp_path / "stale.bin"
    dest.write_bytes(b"old contents")
    download_file(server.base + "/stale.bin", dest, checksum=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD and server.count("/stale.bin") == 1


def test_http_404_is_not_retried_and_names_the_url(server, tmp_path):
    with pytest.raises(DownloadError, match=r"HTTP 404.*missing\.bin"):
        download_file(server.base + "/missing.bin", tmp_path / "missing.bin", retries=3, progress=False, backoff=0)
    assert server.count("/missing.bin") == 1
    assert not (tmp_path / "missing.bin").exists()


def test_mirror_is_used_when_primary_fails(server, tmp_path):
    server.files["/mirror/m.bin"] = PAYLOAD
    dest = download_file(
        server.base + "/gone/m.bin", tmp_path / "m.bin", checksum=SHA, mirrors=[server.base + "/mirror/m.bin"], progress=False
    )
    assert dest.read_bytes() == PAYLOAD
    assert [p for p, _ in server.requests] == ["/gone/m.bin", "/mirror/m.bin"]


def test_concurrent_downloads_of_one_file_are_serialised(server, tmp_path):
    server.files["/shared.bin"] = PAYLOAD * 50
    sha = hashlib.sha256(PAYLOAD * 50).hexdigest()
    dest = tmp_path / "shared.bin"
    errors: list[BaseException] = []

    def worker():
        try:
            download_file(server.base + "/shared.bin", dest, checksum=sha, progress=False)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert dest.read_bytes() == PAYLOAD * 50
    assert server.count("/shared.bin") == 1  # the others found a verified file under the lock


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="algorithm must be one of md5, sha256, adler32"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", checksum="00", algorithm="sha1")
    with pytest.raises(ValueError, match="retries must be >= 0"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", retries=-1)


# --------------------------------------------------------------------------- fetch / verify / CLI


@pytest.fixture()
def tiny(server, tmp_path, monkeypatch):
    """A one-dataset manifest directory pointing at the local server."""
    files = {"/tiny/a.bin": PAYLOAD, "/tiny/b.bin": PAYLOAD[::-1], "/tiny/extra.bin": b"extra" * 100, "/tiny/free.bin": b"free"}
    server.files.update(files)
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "tiny.yaml").write_text(
        f"""name: tiny
title: Tiny test dataset
description: two files served from 127.0.0.1
license: CC0-1.0
citation: nobody
format: raw bytes
reader: read_tiny
subsets:
  main: main files
  extra: {{description: optional file, default: false}}
  free: {{description: nothing published, default: false}}
schema: {{max_particles: 1}}
files:
  - name: a.bin
    url: {server.base}/tiny/a.bin
    size: {len(PAYLOAD)}
    checksum: {SHA}
    algorithm: sha256
    subset: main
  - name: b.bin
    url: {server.base}/tiny/b.bin
    size: null
    checksum: {hashlib.md5(PAYLOAD[::-1]).hexdigest()}
    algorithm: md5
    subset: main
  - name: extra.bin
    url: {server.base}/tiny/extra.bin
    size: 500
    checksum: null
    algorithm: null
    subset: extra
  - name: free.bin
    url: {server.base}/tiny/free.bin
    subset: free
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("JETLAB_MANIFESTS", str(mdir))
    monkeypatch.setenv("JETLAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "tiny"


def test_fetch_default_subsets_into_jetlab_data(tiny, server):
    paths = fetch("tiny", progress=False)
    assert paths == [tiny / "a.bin", tiny / "b.bin"]
    assert (tiny / "b.bin").read_bytes() == PAYLOAD[::-1]
    assert not (tiny / "extra.bin").exists()
    report = verify("tiny")
    assert report.complete and sorted(p.name for p in report.good) == ["a.bin", "b.bin"]
    # the optional subset is missing until fetched
    assert [f.name for f in verify("tiny", subset="all").missing] == ["extra.bin", "free.bin"]
    assert fetch("tiny", subset="extra", progress=False) == [tiny / "extra.bin"]
    report = verify("tiny", subset=["main", "extra"])
    assert report.complete
    # extra.bin has a published size but no checksum: matched, yet not called verified
    assert [p.name for p in report.size_only] == ["extra.bin"] and "extra.bin" not in [p.name for p in report.good]


def test_verify_never_counts_unpublished_checks_as_good(tiny, tmp_path):
    """size only and nothing-published are separate outcomes, in the report and its text."""
    dest = tmp_path / "v"
    dest.mkdir()
    (dest / "a.bin").write_bytes(PAYLOAD)  # sha256 + size published
    (dest / "b.bin").write_bytes(PAYLOAD[::-1])  # md5 only
    (dest / "extra.bin").write_bytes(b"x" * 500)  # size only: any 500 bytes pass
    (dest / "free.bin").write_bytes(b"anything")  # nothing published
    report = verify("tiny", dest=dest, subset="all")
    assert [p.name for p in report.good] == ["a.bin", "b.bin"]
    assert [p.name for p in report.size_only] == ["extra.bin"]
    assert [p.name for p in report.unchecked] == ["free.bin"]
    assert report.complete and not report.bad and not report.missing
    text = str(report)
    assert "2 verified (checksum), 1 size only (no published checksum), 1 unchecked" in text
    assert "SIZE ONLY  extra.bin" in text and "UNCHECKED  free.bin" in text
    (dest / "extra.bin").write_bytes(b"x" * 499)  # a size-only file can still be bad
    assert [f.name for f, _ in verify("tiny", dest=dest, subset="all").bad] == ["extra.bin"]


def test_verify_reports_bad_and_missing_files(tiny, tmp_path):
    dest = tmp_path / "elsewhere"
    dest.mkdir()
    (dest / "a.bin").write_bytes(PAYLOAD[:-1] + b"?")
    report = verify("tiny", dest=dest)
    assert not report.complete
    assert [f.name for f, _ in report.bad] == ["a.bin"]
    assert "sha256 checksum mismatch" in report.bad[0][1]
    assert [f.name for f in report.missing] == ["b.bin"]
    assert "BAD        a.bin" in str(report) and "MISSING    b.bin" in str(report)


def test_cli_fetch_and_verify(tiny, tmp_path, capsys, server):
    dest = tmp_path / "cli"
    # b.bin's size is not published: the total cannot be shown, so fetch asks for --yes (no prompt)
    assert main(["data", "fetch", "tiny", "--dest", str(dest), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert f"tiny: 2 of 2 file(s) to download, {len(PAYLOAD) / 1000:.1f} kB + size unknown for 1 file" in out
    assert "size unknown for 1 of them" in err and "rerun with --yes" in err
    assert server.requests == [] and not dest.exists()
    assert main(["data", "fetch", "tiny", "--dest", str(dest), "--no-progress", "--yes"]) == 0
    out = capsys.readouterr().out
    assert str(dest / "a.bin") in out and str(dest / "b.bin") in out
    assert main(["data", "verify", "tiny", "--dest", str(dest)]) == 0
    assert "2 verified (checksum)" in capsys.readouterr().out
    (dest / "b.bin").write_bytes(b"tampered")
    assert main(["data", "verify", "tiny", "--dest", str(dest)]) == 1
    assert "BAD        b.bin" in capsys.readouterr().out


def test_cli_fetch_refuses_above_the_threshold_without_yes(tiny, tmp_path, capsys, server, monkeypatch):
    dest = tmp_path / "big"
    # extra.bin publishes 500 bytes: above a 400-byte threshold, below a 600-byte one
    monkeypatch.setattr(download_mod, "CONFIRM_ABOVE_BYTES", 400)
    assert main(["data", "fetch", "tiny", "--subset", "extra", "--dest", str(dest), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert "tiny: 1 of 1 file(s) to download, 500 B, into" in out
    assert "not downloading 1 file(s) of tiny (500 B): above the 400 B confirmation threshold" in err
    assert "--yes" in err and server.requests == []
    assert main(["data", "fetch", "tiny", "--subset", "extra", "--dest", str(dest), "--no-progress", "-y"]) == 0
    assert (dest / "extra.bin").read_bytes() == b"extra" * 100
    monkeypatch.setattr(download_mod, "CONFIRM_ABOVE_BYTES", 600)
    (dest / "extra.bin").unlink()
    assert main(["data", "fetch", "tiny", "--subset", "extra", "--dest", str(dest), "--no-progress"]) == 0
    assert (dest / "extra.bin").is_file()


def test_default_threshold_is_10_gb():
    assert download_mod.CONFIRM_ABOVE_BYTES == 10 * 10**9


def test_fetch_plan_skips_present_files(tiny, tmp_path):
    dest = tmp_path / "plan"
    dest.mkdir()
    (dest / "a.bin").write_bytes(PAYLOAD)  # present with the published size
    (dest / "extra.bin").write_bytes(b"short")  # wrong size: still to download
    plan = fetch_plan("tiny", subset=["main", "extra"], dest=dest)
    assert [f.name for f in plan.files] == ["a.bin", "b.bin", "extra.bin"]
    assert [f.name for f in plan.to_download] == ["b.bin", "extra.bin"]
    assert (plan.size.exact, plan.size.n_unknown) == (500, 1)
    assert plan.needs_confirmation  # b.bin's size is unknown
    assert "2 of 3 file(s) to download (1 already present)" in plan.describe()
    (dest / "b.bin").write_bytes(b"whatever")  # unknown size: presence is enough for the plan
    (dest / "extra.bin").write_bytes(b"y" * 500)
    plan = fetch_plan("tiny", subset=["main", "extra"], dest=dest)
    assert plan.to_download == [] and not plan.needs_confirmation


def test_cli_fetch_errors_are_clean(tiny, capsys, server):
    assert main(["data", "fetch", "tiny", "--subset", "nope", "--no-progress"]) == 2
    assert "no subset 'nope'; known subsets: main, extra" in capsys.readouterr().err
    server.files["/tiny/a.bin"] = b"corrupt"
    assert main(["data", "fetch", "tiny", "--no-progress", "--retries", "0", "--yes"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jetlab: error: a.bin: size mismatch")
    assert not (tiny / "a.bin").exists()


# --------------------------------------------------------------------------- unpack after fetch

H5_BYTES = b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 30  # stands in for an HDF5 shard
ROOT_FILES = {"val_5M/HToBB_120.root": b"root-a" * 300, "val_5M/ZJetsToNuNu_120.root": b"root-b" * 200}
PART_FILES = {"HToBB_000.root": b"part-0" * 100}


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture()
def packed(server, tmp_path, monkeypatch):
    """A dataset of one gzip shard and two tar archives (one with unpack_to), as published."""
    gz, tar_val, tar_part = gzip.compress(H5_BYTES), _tar_bytes(ROOT_FILES), _tar_bytes(PART_FILES)
    server.files.update({"/p/shard_000.h5.gz": gz, "/p/val.tar": tar_val, "/p/part0.tar": tar_part, "/p/bad.h5.gz": b"not gzip"})
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "packed.yaml").write_text(
        f"""name: packed
title: Packed test dataset
description: a gzip shard and tar archives served from 127.0.0.1
license: CC0-1.0
citation: nobody
format: h5.gz and tar
reader: read_packed
subsets:
  main: main files
  broken: {{description: a .gz that is not gzip, default: false}}
schema: {{max_particles: 1}}
files:
  - name: shard_000.h5.gz
    url: {server.base}/p/shard_000.h5.gz
    size: {len(gz)}
    checksum: {hashlib.sha256(gz).hexdigest()}
    algorithm: sha256
    subset: main
    unpack: gunzip
  - name: val.tar
    url: {server.base}/p/val.tar
    checksum: {hashlib.md5(tar_val).hexdigest()}
    algorithm: md5
    subset: main
    unpack: tar
  - name: part0.tar
    url: {server.base}/p/part0.tar
    size: {len(tar_part)}
    checksum: {f"{zlib.adler32(tar_part) & 0xFFFFFFFF:08x}"}
    algorithm: adler32
    subset: main
    unpack: tar
    unpack_to: train_100M
  - name: bad.h5.gz
    url: {server.base}/p/bad.h5.gz
    checksum: {hashlib.sha256(b"not gzip").hexdigest()}
    algorithm: sha256
    subset: broken
    unpack: gunzip
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("JETLAB_MANIFESTS", str(mdir))
    monkeypatch.setenv("JETLAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "packed"


def test_fetch_gunzips_and_extracts_after_verifying(packed, server):
    paths = fetch("packed", progress=False)
    assert paths == [packed / "shard_000.h5.gz", packed / "val.tar", packed / "part0.tar"]
    assert (packed / "shard_000.h5").read_bytes() == H5_BYTES  # decompressed beside the .gz
    assert (packed / "shard_000.h5.gz").read_bytes() == server.files["/p/shard_000.h5.gz"]  # the verified .gz is kept
    for name, data in ROOT_FILES.items():  # the archive's own directory, under the dataset dir
        assert (packed / name).read_bytes() == data
    assert (packed / "train_100M" / "HToBB_000.root").read_bytes() == PART_FILES["HToBB_000.root"]
    assert not (packed / "HToBB_000.root").exists()  # unpack_to, not the dataset root
    # verify checks what was published (the compressed files), not the unpacked outputs
    report = verify("packed")
    assert [p.name for p in report.good] == ["shard_000.h5.gz", "val.tar", "part0.tar"]
    (packed / "shard_000.h5").write_bytes(b"edited after unpacking")
    assert verify("packed").complete
    # a second fetch downloads nothing and does not unpack again
    n_requests = len(server.requests)
    mtime = (packed / "val_5M" / "HToBB_120.root").stat().st_mtime_ns
    fetch("packed", progress=False)
    assert len(server.requests) == n_requests
    assert (packed / "val_5M" / "HToBB_120.root").stat().st_mtime_ns == mtime
    (packed / "shard_000.h5.gz").write_bytes(b"tampered")
    bad = verify("packed").bad
    assert [f.name for f, _ in bad] == ["shard_000.h5.gz"] and "size mismatch" in bad[0][1]


def test_fetch_without_unpack_leaves_archives_packed(packed):
    fetch("packed", progress=False, unpack=False)
    assert (packed / "shard_000.h5.gz").is_file() and (packed / "val.tar").is_file()
    assert not (packed / "shard_000.h5").exists() and not (packed / "val_5M").exists()
    assert not (packed / "train_100M").exists()


def test_unpack_failure_is_a_clean_cli_error(packed, capsys):
    # the checksum matches (the publisher's file), but it is not gzip: say so, name the file
    assert main(["data", "fetch", "packed", "--subset", "broken", "--no-progress", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "bad.h5.gz: not a gzip file" in err
    assert (packed / "bad.h5.gz").is_file() and not (packed / "bad.h5").exists()


# ------------------------------------------------------- JetClass: fetch -> unpack -> resolve -> rows
@pytest.fixture()
def jetclass_served(server, tmp_path, monkeypatch):
    """A JetClass replica's tarballs, packed as the publisher packs them, served from 127.0.0.1.

    The manifest is the shipped ``jetclass.yaml`` (names, subsets, ``unpack_to`` as ParT's
    get_datasets.py) with the URLs, sizes and MD5s of the served replica files.
    """
    import yaml
    from fixtures_formats import write_replica

    rep = write_replica("jetclass", tmp_path / "served", n_jets=60, seed=4)  # 2 train parts, val, test
    served = {p.name: p.read_bytes() for files in rep.files.values() for p in files}
    shipped = Path(download_mod.__file__).resolve().parent / "_manifests" / "jetclass.yaml"
    manifest = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    entries = [f for f in manifest["files"] if f["name"] in served]
    assert sorted(f["name"] for f in entries) == sorted(served)
    for f in entries:
        server.files[f"/jetclass/{f['name']}"] = served[f["name"]]
        f.update(url=f"{server.base}/jetclass/{f['name']}", mirrors=[], size=len(served[f["name"]]),
                 checksum=hashlib.md5(served[f["name"]]).hexdigest(), approx_size=None)
    manifest["files"] = entries
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "jetclass.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("JETLAB_MANIFESTS", str(mdir))
    monkeypatch.setenv("JETLAB_DATA", str(tmp_path / "data"))
    return rep, tmp_path / "data" / "jetclass"


def test_jetclass_fetch_unpack_then_resolve_reads_every_jet_once(jetclass_served, capsys):
    import numpy as np

    from jetlab.data.readers import raw_files
    from jetlab.data.sources import resolve

    rep, d = jetclass_served
    assert main(["data", "fetch", "jetclass", "--yes", "--no-progress"]) == 0
    # fetch's unpack: train parts into train_100M/ (unpack_to), val/test tarballs hold their own folder
    written = sorted(f for split in rep.truth for f in rep.truth[split]["files"])
    on_disk = sorted(str(p.relative_to(d)) for p in d.rglob("*.root"))
    assert on_disk == written and len(written) == 40  # 2 train parts + val + test, 10 classes each

    src = resolve("jetclass", progress=False)
    for split in ("train", "val", "test"):
        assert src.n_rows(split) == rep.n(split), split  # each jet read exactly once
        js = src.read(split=split)
        np.testing.assert_array_equal(js.labels, rep.truth[split]["labels"])
        np.testing.assert_array_equal(js.jets[:, 4], rep.truth[split]["n_particles"])
    assert src.n_rows("train") == 60 and len(src.files("train")) == 20
    listed = [p.resolve() for files in raw_files("jetclass", d).values() for p in files]
    assert len(listed) == len(set(listed)) == 40
    # extracted once, where fetch put it: no second copy anywhere
    assert sorted(str(p.relative_to(d)) for p in d.rglob("*.root")) == written

    # the CLI path a user takes after the fetch says the same
    assert main(["data", "prepare", "jetclass"]) == 0
    out = capsys.readouterr().out
    assert f"jetclass train: {rep.n('train'):,} rows in 20 schema file(s)" in out
    assert f"jetclass val: {rep.n('val'):,} rows in 10 schema file(s)" in out
