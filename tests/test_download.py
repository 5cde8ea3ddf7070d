"""Verified, resumable downloads against a local HTTP server (no internet)."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import zlib
from pathlib import Path

import pytest

from jetlab.cli.main import main
from jetlab.data.download import ChecksumError, DownloadError, download_file, fetch, file_checksum, verify

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
    files = {"/tiny/a.bin": PAYLOAD, "/tiny/b.bin": PAYLOAD[::-1], "/tiny/extra.bin": b"extra" * 100}
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
    assert [f.name for f in verify("tiny", subset="all").missing] == ["extra.bin"]
    assert fetch("tiny", subset="extra", progress=False) == [tiny / "extra.bin"]
    assert verify("tiny", subset="all").complete


def test_verify_reports_bad_and_missing_files(tiny, tmp_path):
    dest = tmp_path / "elsewhere"
    dest.mkdir()
    (dest / "a.bin").write_bytes(PAYLOAD[:-1] + b"?")
    report = verify("tiny", dest=dest)
    assert not report.complete
    assert [f.name for f, _ in report.bad] == ["a.bin"]
    assert "sha256 checksum mismatch" in report.bad[0][1]
    assert [f.name for f in report.missing] == ["b.bin"]
    assert "BAD      a.bin" in str(report) and "MISSING  b.bin" in str(report)


def test_cli_fetch_and_verify(tiny, tmp_path, capsys):
    dest = tmp_path / "cli"
    assert main(["data", "fetch", "tiny", "--dest", str(dest), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "fetching 2 file(s) of tiny" in out and str(dest / "a.bin") in out
    assert main(["data", "verify", "tiny", "--dest", str(dest)]) == 0
    assert "2 verified" in capsys.readouterr().out
    (dest / "b.bin").write_bytes(b"tampered")
    assert main(["data", "verify", "tiny", "--dest", str(dest)]) == 1
    assert "BAD      b.bin" in capsys.readouterr().out


def test_cli_fetch_errors_are_clean(tiny, capsys, server):
    assert main(["data", "fetch", "tiny", "--subset", "nope", "--no-progress"]) == 2
    assert "no subset 'nope'; known subsets: main, extra" in capsys.readouterr().err
    server.files["/tiny/a.bin"] = b"corrupt"
    assert main(["data", "fetch", "tiny", "--no-progress", "--retries", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jetlab: error: a.bin: size mismatch")
    assert not (tiny / "a.bin").exists()
