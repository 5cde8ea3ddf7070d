"""The generated-dataset cache: reuse, repair and concurrency safety."""

import multiprocessing as mp
import os

import numpy as np
import pytest

from jetlab.data.cache import cached_name, dataset_file, resolve_cache_dir
from jetlab.data.schema import inspect_file, read_jetset

KW = dict(classes=("Zqq",), progress=False, workers=1)


def test_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("JETLAB_CACHE", str(tmp_path / "c"))
    assert resolve_cache_dir() == tmp_path / "c"
    assert resolve_cache_dir(tmp_path) == tmp_path
    assert cached_name("jetclass-mini", 20, 1) == "jetclass-mini-n20-s1.h5"


def test_reuse_and_repair(tmp_path):
    p = dataset_file("jetclass-mini", 20, seed=5, cache_dir=tmp_path, **KW)
    assert p.parent == tmp_path and p.name.startswith("jetclass-mini-n20-s5")
    mtime = p.stat().st_mtime_ns
    first = read_jetset(p).particles
    assert dataset_file("jetclass-mini", 20, seed=5, cache_dir=tmp_path, **KW) == p
    assert p.stat().st_mtime_ns == mtime  # not regenerated
    p.write_bytes(b"not an hdf5 file")  # a corrupt file is regenerated, identically
    assert dataset_file("jetclass-mini", 20, seed=5, cache_dir=tmp_path, **KW) == p
    assert np.array_equal(read_jetset(p).particles, first)
    with pytest.raises(ValueError, match="unknown generated dataset"):
        dataset_file("jetclass", 20, cache_dir=tmp_path)


def test_file_made_with_other_pythia_settings_is_regenerated(tmp_path):
    """A tune change in the generator must not be served the old physics under the same file name."""
    import json

    import h5py

    from jetlab.data.cache import _write_checksum
    from jetlab.simulator.generate import GENERATORS

    p = dataset_file("jetclass-mini", 20, seed=5, cache_dir=tmp_path, **KW)
    with h5py.File(p, "r+") as f:
        info = json.loads(f.attrs["info"])
        info["samples"]["Zqq"] = info["samples"]["Zqq"] + ["TimeShower:alphaSvalue = 0.115"]
        f.attrs["info"] = json.dumps(info)
    _write_checksum(p)  # a consistent, complete file: only its settings are stale
    mtime = p.stat().st_mtime_ns
    assert dataset_file("jetclass-mini", 20, seed=5, cache_dir=tmp_path, **KW) == p
    assert p.stat().st_mtime_ns != mtime
    assert inspect_file(p).info["samples"] == {s.name: list(s.settings) for s in GENERATORS["jetclass-mini"].samples}


def _ask(cache_dir, q):
    p = dataset_file("jetclass-mini", 16, seed=9, cache_dir=cache_dir, **KW)
    q.put((str(p), p.stat().st_mtime_ns, inspect_file(p).n_rows))


def test_concurrent_requests_generate_once(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_ask, args=(str(tmp_path), q)) for _ in range(2)]
    for p in procs:
        p.start()
    res = [q.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert res[0] == res[1]  # same file, same modification time: generated once
    assert res[0][2] == 16
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
