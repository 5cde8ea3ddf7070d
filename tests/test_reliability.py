"""Reliability under bad input and interruption.

Damaged input files (truncated, empty, wrong format, corrupt data) must give a clear error that
names the file -- a :class:`~jetlab.data.schema.SchemaError` (a ``ValueError``) -- never a bare
h5py / uproot / zipfile / torch traceback, and ``convert()`` must leave nothing behind. Killed
generation must never leave a file under the final name, and the cache must never hand out a
damaged file. Other files cover neighbouring cases: downloads (test_download.py), malformed
but readable files (test_readers.py), exact training resume (test_train.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures_formats import make_aspen_h5, make_atlas_h5, make_jetclass_root, make_lhco_h5, make_omnifold_npz

from jetlab.data.cache import cached_name, dataset_file
from jetlab.data.readers import convert, read_aspen, read_atlas_toptag, read_jetclass, read_lhco, read_omnifold
from jetlab.data.schema import (
    JetSet,
    SchemaError,
    jet_features_from_particles,
    read_jetset,
    sort_and_truncate,
    write_jetset,
)

TESTS = Path(__file__).parent

# reader, fixture maker (path -> path), file suffix, convert() name
READERS = {
    "jetclass": (read_jetclass, lambda p: make_jetclass_root(p, 12), ".root", "jetclass"),
    "atlas": (read_atlas_toptag, lambda p: make_atlas_h5(p, 12, max_clus=30), ".h5", "atlas_toptag"),
    "omnifold": (read_omnifold, lambda p: make_omnifold_npz(p, 12, pad_to=30), ".npz", "omnifold_zjets"),
    "lhco": (read_lhco, lambda p: make_lhco_h5(p, 4), ".h5", "lhco_rnd"),
    "aspen": (read_aspen, lambda p: make_aspen_h5(p, 12), ".h5", "aspen_open_jets"),
}


def small_jetset(n: int = 64, p: int = 16, seed: int = 0) -> JetSet:
    rng = np.random.default_rng(seed)
    pt = rng.exponential(20.0, (n, p)) + 1.0
    eta, phi = rng.normal(0, 0.3, (2, n, p))
    parts = np.stack([pt, eta, phi, pt * np.cosh(eta)], -1)
    mask = np.arange(p)[None] < rng.integers(1, p + 1, n)[:, None]
    parts, mask = sort_and_truncate(parts, mask, p)
    return JetSet(parts, mask, jet_features_from_particles(parts, mask), rng.integers(0, 2, n))


def corrupt_first_chunk(path: Path, dataset: str) -> None:
    """Overwrite bytes inside the first stored (gzip) chunk of ``dataset``: header intact, data not."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    assert info.size > 200, "fixture chunk too small to corrupt"
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 3)
        fh.write(b"\xa5" * 64)


def damaged(kind: str, good: Path, out: Path) -> Path:
    data = good.read_bytes()
    content = {"truncated": data[: len(data) // 2], "empty": b"", "text": b"pT,eta,phi\n1,2,3\n" * 20}[kind]
    out.write_bytes(content)
    return out


# ============================================================ damaged reader input
@pytest.mark.parametrize("kind", ["truncated", "empty", "text"])
@pytest.mark.parametrize("name", sorted(READERS))
def test_reader_damaged_file_raises_schema_error_naming_it(tmp_path, name, kind):
    reader, make, suffix, _ = READERS[name]
    good = make(tmp_path / f"good{suffix}")
    bad = damaged(kind, good, tmp_path / f"{kind}_input{suffix}")
    with pytest.raises(SchemaError, match=f"{kind}_input"):
        reader(bad)


@pytest.mark.parametrize(
    "name,source",
    [
        ("atlas", "omnifold"),  # an npz
        ("atlas", "jetclass"),  # a ROOT file
        ("atlas", "aspen"),  # HDF5 of another dataset
        ("lhco", "jetclass"),
        ("lhco", "atlas"),
        ("omnifold", "atlas"),
        ("jetclass", "atlas"),
        ("aspen", "lhco"),
    ],
)
def test_reader_wrong_format_raises_schema_error_naming_it(tmp_path, name, source):
    reader, _, suffix, _ = READERS[name]
    foreign = READERS[source][1](tmp_path / f"foreign{READERS[source][2]}")
    # keep the reader's own suffix, as a user who picked the wrong file would have it
    renamed = foreign.rename(tmp_path / f"wrongformat{suffix}") if foreign.suffix != suffix else foreign
    with pytest.raises(SchemaError, match=renamed.name.replace(".", r"\.")):
        reader(renamed)


def test_read_jetset_damaged_and_foreign_files(tmp_path):
    good = write_jetset(tmp_path / "good.h5", small_jetset(), dataset="unit", label_names=["a", "b"])
    for kind in ("truncated", "empty", "text"):
        bad = damaged(kind, good, tmp_path / f"{kind}_schema.h5")
        with pytest.raises(SchemaError, match=f"{kind}_schema"):
            read_jetset(bad)
    for source in ("atlas", "omnifold", "jetclass"):
        foreign = READERS[source][1](tmp_path / f"foreign_{source}{READERS[source][2]}")
        with pytest.raises(SchemaError, match=f"foreign_{source}"):
            read_jetset(foreign)


def test_read_jetset_zero_filled_tail_names_the_file(tmp_path):
    """A crash after the rename on a filesystem without data journaling can leave zeros."""
    path = write_jetset(tmp_path / "zeros.h5", small_jetset(), dataset="unit", label_names=["a", "b"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    with pytest.raises(SchemaError, match="zeros.h5"):
        read_jetset(path)


def test_read_jetset_corrupt_data_chunk_names_the_file(tmp_path):
    path = write_jetset(tmp_path / "corrupt.h5", small_jetset(), dataset="unit", label_names=["a", "b"])
    corrupt_first_chunk(path, "jets/particles")
    with pytest.raises(SchemaError, match="corrupt.h5"):
        read_jetset(path)


def test_reader_corrupt_data_chunk_names_the_file(tmp_path):
    path = make_aspen_h5(tmp_path / "corrupt_aspen.h5", 12)  # PFCands is gzip-compressed
    corrupt_first_chunk(path, "PFCands")
    with pytest.raises(SchemaError, match="corrupt_aspen.h5"):
        read_aspen(path)


@pytest.mark.parametrize("kind", ["truncated", "empty"])
@pytest.mark.parametrize("name", sorted(READERS))
def test_convert_damaged_input_leaves_no_output(tmp_path, name, kind):
    _, make, suffix, dataset = READERS[name]
    src = tmp_path / "src"
    src.mkdir()
    good = make(src / f"good{suffix}")
    bad = damaged(kind, good, src / f"{kind}{suffix}")
    out = tmp_path / "out" / "converted.h5"
    out.parent.mkdir()
    # the good file first: a chunk has been written to the temp file when the bad one fails
    with pytest.raises(SchemaError, match=f"{kind}{suffix}".replace(".", r"\.")):
        convert(dataset, [good, bad], out, chunk_size=4)
    assert list(out.parent.iterdir()) == []  # neither the output nor a temp file


# ====================================================== damaged model / trainer files
def test_truncated_trainer_checkpoint_is_a_clear_error(tmp_path):
    import torch

    from jetlab.train import load_checkpoint
    from jetlab.train.resume import save_checkpoint

    path = save_checkpoint({"format": "x", "w": torch.arange(4096.0)}, tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="last.pt"):
        load_checkpoint(path)


class _RunsCode:
    """Unpickling this object calls ``os.system``: what a tampered ``last.pt`` could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_trainer_checkpoint_with_code_is_refused_not_run(tmp_path):
    import torch

    from jetlab.train import load_checkpoint
    from jetlab.train.resume import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

    marker = tmp_path / "code_ran"
    path = tmp_path / "last.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "payload": _RunsCode(marker)}, path)
    with pytest.raises(ValueError, match=r"last.pt: refused to load"):
        load_checkpoint(path)
    assert not marker.exists()
    # the same file loaded the old way (weights_only=False) would have run the command
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_trainer_checkpoint_round_trips_rng_states_with_weights_only(tmp_path):
    import random

    import torch

    from jetlab.train import load_checkpoint
    from jetlab.train.resume import (
        CHECKPOINT_FORMAT,
        CHECKPOINT_VERSION,
        rng_state,
        save_checkpoint,
        set_rng_state,
    )

    np.random.seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    random.seed(4)
    torch.manual_seed(5)
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "rng": [rng_state()]}
    expected = (np.random.normal(size=3), random.random(), torch.rand(2))
    loaded = load_checkpoint(save_checkpoint(state, tmp_path / "last.pt"))
    set_rng_state(loaded["rng"][0])
    np.testing.assert_array_equal(np.random.normal(size=3), expected[0])
    assert random.random() == expected[1]
    torch.testing.assert_close(torch.rand(2), expected[2], rtol=0, atol=0)


def test_truncated_model_weights_are_a_clear_error(tmp_path):
    from jetlab.model import PET, PETConfig, load, save
    from jetlab.model.checkpoint import CheckpointError

    ckpt = save(PET(PETConfig.tiny()), tmp_path / "model")
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    for content in (data[: len(data) // 2], b""):
        weights.write_bytes(content)
        with pytest.raises(CheckpointError, match="model.safetensors"):
            load(ckpt)


# ============================================================ interrupted generation
def _run_and_kill_after(cmd: list[str], marker: str, timeout: float = 240.0) -> str:
    """Start ``cmd``, SIGKILL it once ``marker`` appears on its stderr; return that stderr."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=TESTS)
    buf = bytearray()

    def pump():
        while True:
            b = proc.stderr.read1(4096) if hasattr(proc.stderr, "read1") else proc.stderr.read(1)
            if not b:
                return
            buf.extend(b)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while marker.encode() not in buf:
            if proc.poll() is not None:
                raise AssertionError(f"process ended (rc {proc.returncode}) before {marker!r}:\n{buf.decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{marker!r} not seen within {timeout} s:\n{buf.decode(errors='replace')[-2000:]}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    assert proc.returncode == -signal.SIGKILL
    return buf.decode(errors="replace")


def test_generate_killed_midway_then_rerun(tmp_path):
    from jetlab.simulator.generate import generate

    out = tmp_path / "toptag.h5"
    cmd = [sys.executable, "-m", "jetlab.cli.main", "generate", "toptag-mini", "--n-jets", "8",
           "--workers", "1", "--seed", "2", "--out", str(out)]
    _run_and_kill_after(cmd, "1/2")  # killed after the first of two chunks (QCD, Top)
    assert not out.exists()
    assert all(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # only clearly temporary names
    (tmp_path / "toptag.h5.leftover.tmp").write_bytes(b"half a file")  # as a kill mid-write leaves
    generate("toptag-mini", 8, out, workers=1, seed=2, progress=False)
    js = read_jetset(out)
    assert len(js) == 8 and np.bincount(js.labels).tolist() == [4, 4]
    assert js.jet_feature("pt").min() > 350  # a real toptag-mini sample, not the leftover


# ================================================================ cache integrity
def fake_generate(name, n_jets, out, *, workers=None, seed=0, progress=True, **options):
    """Stands in for Pythia (seconds per call here): a deterministic schema file for ``name``."""
    from jetlab.simulator.generate import GENERATORS

    js = small_jetset(int(n_jets), 24, seed)
    spec = GENERATORS[name]
    # the settings record is what the cache compares with the generator's today
    info = {"samples": {s.name: list(s.settings) for s in spec.samples}}
    return write_jetset(out, js, dataset=name, label_names=spec.label_names, info=info)


@pytest.fixture
def fake_gen(monkeypatch):
    calls = []

    def gen(*args, **kw):
        calls.append(args)
        return fake_generate(*args, **kw)

    monkeypatch.setattr("jetlab.simulator.generate.generate", gen)
    return calls


def _cache(tmp_path):
    return dataset_file("toptag-mini", 300, seed=4, cache_dir=tmp_path, progress=False)


@pytest.mark.parametrize("damage", ["truncated", "zero_tail", "empty"])
def test_cache_regenerates_truncated_or_zeroed_file(tmp_path, fake_gen, damage):
    path = _cache(tmp_path)
    ref = read_jetset(path).particles.copy()
    data = path.read_bytes()
    half = len(data) // 2
    path.write_bytes({"truncated": data[:half], "zero_tail": data[:half] + bytes(len(data) - half), "empty": b""}[damage])
    assert _cache(tmp_path) == path and len(fake_gen) == 2
    np.testing.assert_array_equal(read_jetset(path).particles, ref)


def test_cache_never_returns_file_with_corrupt_data(tmp_path, fake_gen):
    path = _cache(tmp_path)
    ref = read_jetset(path).particles.copy()
    corrupt_first_chunk(path, "jets/particles")  # header intact: only reading the data shows it
    again = _cache(tmp_path)
    np.testing.assert_array_equal(read_jetset(again).particles, ref)


_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import h5py
    sys.path.insert(0, {tests!r})
    import test_reliability
    import jetlab.simulator.generate
    jetlab.simulator.generate.generate = test_reliability.fake_generate
    real = h5py.Group.create_dataset
    count = [0]
    def dying(self, *a, **k):
        count[0] += 1
        if count[0] == 3:  # particles and mask are in the temp file, the rest is not
            sys.stderr.write("WRITING\\n"); sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, *a, **k)
    h5py.Group.create_dataset = dying
    from jetlab.data.cache import dataset_file
    dataset_file("toptag-mini", 300, seed=4, cache_dir={cache!r}, progress=False)
    """
)


def test_cache_write_killed_midway_is_not_reused(tmp_path, fake_gen):
    script = _KILLED_WRITER.format(tests=str(TESTS), cache=str(tmp_path))
    _run_and_kill_after([sys.executable, "-c", script], "WRITING", timeout=120)
    final = tmp_path / cached_name("toptag-mini", 300, 4)
    assert not final.exists()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert any(n.endswith(".tmp") for n in left) and all(n.endswith((".tmp", ".lock")) for n in left), left
    path = _cache(tmp_path)  # the lock of the killed process was released with it
    assert path == final and len(read_jetset(path)) == 300 and len(fake_gen) == 1
