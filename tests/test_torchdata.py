"""jetlab.data.torchdata: map-style and streaming datasets, the resumable sampler, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jetlab.data.preprocess import Standardizer
from jetlab.data.schema import write_jetset
from jetlab.data.torchdata import (
    EpochBatchSampler,
    JetDataset,
    StreamingJetDataset,
    make_loader,
    split_indices,
)
from jetlab.train._ddp_selftest import synthetic_jetset

N = 300


@pytest.fixture(scope="module")
def jetfile(tmp_path_factory):
    js = synthetic_jetset(N, p=12, seed=3)
    js.extra["rid"] = np.arange(N, dtype=np.int64)
    js.extra["mjj"] = np.linspace(2000.0, 5000.0, N, dtype=np.float32)
    path = tmp_path_factory.mktemp("data") / "toy.h5"
    write_jetset(path, js, dataset="toy", label_names=["q", "t"])
    return path


def test_split_indices_disjoint_exhaustive_deterministic():
    parts = split_indices(101, (0.8, 0.1, 0.1), seed=5)
    assert [len(p) for p in parts] == [81, 10, 10]
    allidx = np.concatenate(parts)
    assert np.array_equal(np.sort(allidx), np.arange(101))
    again = split_indices(101, (0.8, 0.1, 0.1), seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = split_indices(101, (0.8, 0.1, 0.1), seed=6)
    assert not np.array_equal(parts[1], other[1])
    with pytest.raises(ValueError, match="fractions"):
        split_indices(10, (0.5, -0.1))


def test_jetdataset_from_file(jetfile):
    ds = JetDataset(jetfile)
    assert len(ds) == N and ds.label_names == ("q", "t")
    item = ds[7]
    assert item["x"].shape == (12, 13) and item["x"].dtype == torch.float32
    assert item["mask"].dtype == torch.bool and item["jets"].shape == (4,)
    assert item["label"].dtype == torch.int64 and item["weight"].item() == 1.0
    assert item["rid"].item() == 7 and item["mjj"].item() == pytest.approx(2000.0 + 3000.0 * 7 / (N - 1))
    x, m = ds.tensors["x"], ds.tensors["mask"]
    # standardised on its own real particles: kinematic inputs have mean 0 / std 1, padding exactly 0
    real = x[m][:, :7]
    assert torch.allclose(real.mean(0), torch.zeros(7), atol=1e-4)
    assert torch.allclose(real.std(0), torch.ones(7), atol=1e-2)
    assert (x[~m] == 0).all()
    batch = ds.__getitems__([3, 1, 4])
    assert torch.equal(batch["x"], torch.stack([ds[i]["x"] for i in (3, 1, 4)]))
    assert batch["rid"].tolist() == [3, 1, 4]


def test_jetdataset_indices_standardizer_labelmap_and_errors(jetfile):
    full = JetDataset(jetfile)
    sub = JetDataset(jetfile, indices=[5, 6, 10], standardizer=full.standardizer, label_map={0: 1, 1: 0},
                     max_particles=8)
    assert len(sub) == 3 and sub.standardizer is full.standardizer
    assert sub[0]["x"].shape == (8, 13)
    assert torch.equal(sub[2]["x"], full[10]["x"][:8])
    assert torch.equal(sub.tensors["label"], 1 - full.tensors["label"][[5, 6, 10]])
    with pytest.raises(ValueError, match="label_map has no entry for labels \\[1\\]"):
        JetDataset(jetfile, label_map={0: 0})
    with pytest.raises(TypeError, match="JetSet or a schema file path"):
        JetDataset(42)
    with pytest.raises(IndexError, match="out of range"):
        JetDataset(jetfile, indices=[N])


def test_epoch_batch_sampler_deterministic_resumable_and_sharded():
    s = EpochBatchSampler(50, 8, seed=1)
    e0 = list(s)
    assert len(e0) == len(s) == 7 and sorted(sum(e0, [])) == list(range(50))
    assert list(EpochBatchSampler(50, 8, seed=1)) == e0
    s.set_epoch(1)
    assert list(s) != e0
    s.set_epoch(0)
    s.set_start(3)
    assert list(s) == e0[3:] and len(s) == 4
    # two ranks with batch 4 together see exactly the single-process batches of 8
    r0 = list(EpochBatchSampler(48, 4, seed=2, rank=0, world_size=2))
    r1 = list(EpochBatchSampler(48, 4, seed=2, rank=1, world_size=2))
    single = list(EpochBatchSampler(48, 8, seed=2, rank=0, world_size=1))
    assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(b) for b in single]
    # uneven: padding keeps ranks equally long
    u0 = EpochBatchSampler(7, 2, rank=0, world_size=2)
    u1 = EpochBatchSampler(7, 2, rank=1, world_size=2)
    assert len(u0) == len(u1) == 2
    assert set(sum(list(u0) + list(u1), [])) == set(range(7))


def _rids(loader):
    return torch.cat([b["rid"] for b in loader]).tolist()


def test_streaming_covers_each_row_once_and_is_reproducible(jetfile):
    std = JetDataset(jetfile).standardizer
    ds = StreamingJetDataset(jetfile, standardizer=std, chunk_size=64, shuffle_buffer=128, seed=0)
    assert len(ds) == N and len(ds._chunks) == 5
    loader = make_loader(ds, 32, seed=0, distributed=False)
    batches = list(loader)
    assert all(len(b["rid"]) == 32 for b in batches[:-1])
    e0 = _rids(batches)
    assert sorted(e0) == list(range(N)) and e0 != list(range(N))  # shuffled
    assert _rids(make_loader(ds, 32, seed=0, distributed=False)) == e0
    assert _rids(make_loader(ds, 32, seed=0, distributed=False, epoch=1)) != e0
    # mid-epoch resume: skipping k batches yields the tail of the same stream
    assert _rids(make_loader(ds, 32, seed=0, distributed=False, start_batch=3)) == e0[3 * 32:]
    # values match the in-memory dataset row by row
    b = batches[0]
    mem = JetDataset(jetfile, standardizer=std)
    assert torch.allclose(b["x"], mem.tensors["x"][b["rid"]], atol=1e-6)
    assert torch.equal(b["label"], mem.tensors["label"][b["rid"]])


def test_streaming_shards_over_ranks_and_workers(jetfile):
    std = JetDataset(jetfile).standardizer
    seen = []
    for rank in range(2):
        ds = StreamingJetDataset(jetfile, standardizer=std, chunk_size=32, seed=4)
        ds.rank_world = (rank, 2)
        ds.batch_size = 16
        seen.append(torch.cat([b["rid"] for b in ds]).tolist())
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(N))
    ds = StreamingJetDataset(jetfile, standardizer=std, chunk_size=32, seed=4)
    two_workers = _rids(make_loader(ds, 16, seed=0, distributed=False, num_workers=2))
    assert sorted(two_workers) == list(range(N))
    assert _rids(make_loader(ds, 16, seed=0, distributed=False, num_workers=2, start_batch=5)) == two_workers[80:]


def test_streaming_fits_standardizer_and_range(jetfile):
    ds = StreamingJetDataset(jetfile, chunk_size=100, start=100, stop=250, shuffle=False, batch_size=50)
    assert isinstance(ds.standardizer, Standardizer) and len(ds) == 150
    assert _rids(make_loader(ds, 50, shuffle=False, distributed=False)) == list(range(100, 250))


def test_make_loader_map_style(jetfile):
    ds = JetDataset(jetfile)
    loader = make_loader(ds, 64, seed=3, distributed=False)
    batches = list(loader)
    assert [len(b["label"]) for b in batches] == [64, 64, 64, 64, 44]
    assert sorted(_rids(batches)) == list(range(N))
    # creating/iterating loaders never touches the global torch RNG (exact-resume requirement)
    torch.manual_seed(0)
    ref = torch.rand(1)
    torch.manual_seed(0)
    list(make_loader(ds, 64, seed=3, distributed=False))
    assert torch.equal(torch.rand(1), ref)
