"""PyTorch datasets over jetlab schema files.

* :class:`JetDataset` - map-style, holds the standardised model inputs in memory (fast random
  access, one preprocessing pass). Good up to a few million jets.
* :class:`StreamingJetDataset` - iterable, reads HDF5 in chunks so a 100M-jet file never loads
  whole; shards chunks over (DDP rank, dataloader worker); reproducible order per epoch.
* :class:`EpochBatchSampler` - the resumable, DDP-aware batch sampler the trainer uses: the order
  is a pure function of ``(seed, epoch)`` and it can start mid-epoch, which makes resumed runs
  bit-identical to uninterrupted ones.

Samples/batches are dicts of tensors: ``x (P,13)``, ``mask (P,)`` bool, ``jets (4,)``, ``label``
int64, ``weight`` float32, plus one key per ``JetSet.extra`` field (e.g. ``mjj``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, Sized

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from .preprocess import Standardizer, model_inputs
from .schema import JetSet, SchemaError, inspect_file, read_jetset

__all__ = [
    "EpochBatchSampler",
    "JetDataset",
    "StreamingJetDataset",
    "collate_batches",
    "dist_info",
    "make_loader",
    "split_indices",
]

BATCH_KEYS = ("x", "mask", "jets", "label", "weight")


def dist_info() -> tuple[int, int]:
    """(rank, world_size) of the initialised process group, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def split_indices(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> list[np.ndarray]:
    """Disjoint, exhaustive random index sets with the given fractions (sorted within each set).

    Rounding leftovers go to the first set so every index lands in exactly one split.
    """
    if n < 0:
        raise ValueError(f"split_indices: n must be >= 0, got {n}")
    fr = np.asarray(fractions, dtype=float)
    if fr.ndim != 1 or len(fr) == 0 or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"split_indices: fractions must be non-negative and sum > 0, got {tuple(fractions)}")
    fr = fr / fr.sum()
    sizes = np.floor(fr * n).astype(int)
    sizes[0] += n - sizes.sum()
    perm = np.random.default_rng(seed).permutation(n)
    out, start = [], 0
    for s in sizes:
        out.append(np.sort(perm[start : start + s]))
        start += s
    return out


def _as_jetset(source, collection: str | None, max_particles: int | None) -> tuple[JetSet, dict]:
    meta: dict[str, Any] = {}
    if isinstance(source, JetSet):
        js = source
    elif isinstance(source, (str, os.PathLike)):
        info = inspect_file(source)
        meta = {"path": str(source), "dataset": info.dataset, "label_names": info.label_names}
        js = read_jetset(source, collection)
    else:
        raise TypeError(f"JetDataset: source must be a JetSet or a schema file path, got {type(source).__name__}")
    if max_particles is not None and max_particles < js.max_particles:
        js = JetSet(
            particles=js.particles[:, :max_particles],
            mask=js.mask[:, :max_particles],
            jets=js.jets,
            labels=js.labels,
            weights=js.weights,
            particle_features=js.particle_features,
            extra=js.extra,
        )
    return js, meta


def _tensors(js: JetSet, standardizer: Standardizer | None, label_map: Mapping[int, int] | None):
    x, mask, jets, std = model_inputs(js, standardizer)
    labels = js.labels
    if label_map is not None:
        lut = dict(label_map)
        missing = sorted(set(np.unique(labels).tolist()) - set(lut))
        if missing:
            raise ValueError(f"label_map has no entry for labels {missing}")
        labels = np.asarray([lut[int(v)] for v in labels], dtype=np.int64) if len(labels) else labels
    t = {
        "x": torch.from_numpy(np.ascontiguousarray(x)),
        "mask": torch.from_numpy(np.ascontiguousarray(mask)),
        "jets": torch.from_numpy(np.ascontiguousarray(jets)),
        "label": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        "weight": torch.from_numpy(np.ascontiguousarray(js.weights, dtype=np.float32)),
    }
    for k, v in js.extra.items():
        if k in t:
            raise SchemaError(f"extra field {k!r} clashes with a model-input key {BATCH_KEYS}")
        t[k] = torch.as_tensor(np.ascontiguousarray(v))
    return t, std


class JetDataset(Dataset):
    """Map-style dataset of standardised model inputs, precomputed once in memory.

    ``source`` is a :class:`JetSet` or a schema file path (``collection`` picks one collection).
    Without a ``standardizer`` one is fitted on the selected rows and exposed as
    ``.standardizer`` - pass it to the validation/test datasets so they share the normalisation.
    ``label_map`` remaps integer labels (e.g. ``{0: 0, 8: 1}``) before training.
    """

    def __init__(
        self,
        source: JetSet | str | os.PathLike,
        collection: str | None = None,
        standardizer: Standardizer | None = None,
        indices: np.ndarray | Sequence[int] | None = None,
        label_map: Mapping[int, int] | None = None,
        max_particles: int | None = None,
    ) -> None:
        js, self.meta = _as_jetset(source, collection, max_particles)
        if indices is not None:
            idx = np.asarray(indices)
            if idx.dtype != bool and len(idx) and (idx.min() < -len(js) or idx.max() >= len(js)):
                raise IndexError(f"JetDataset: indices out of range for {len(js)} jets")
            js = js.subset(idx)
        self.label_names = tuple(self.meta.get("label_names", ()))
        self.tensors, self.standardizer = _tensors(js, standardizer, label_map)
        self.max_particles = js.max_particles

    def __len__(self) -> int:
        return int(self.tensors["label"].shape[0])

    def __getitem__(self, i) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Batched fetch used by DataLoader: one gather per tensor instead of B dicts."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {k: v.index_select(0, idx) for k, v in self.tensors.items()}

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.tensors)


def collate_batches(data):
    """Collate for jetlab batches: passes already-batched dicts through, stacks lists of samples."""
    if isinstance(data, Mapping):
        return dict(data)
    return torch.utils.data.default_collate(data)


class EpochBatchSampler(Sampler[list[int]]):
    """Deterministic, resumable, DDP-sharded batch sampler.

    The epoch's order is ``randperm(n)`` from a generator seeded with ``seed + epoch``; under
    DDP the permutation is padded (by wrapping) to a multiple of ``world_size`` and rank ``r`` takes
    positions ``r::world_size`` - the same rule as :class:`torch.utils.data.DistributedSampler`, so
    with per-rank batch ``B`` the ranks' batches together form the single-process batch of
    ``B * world_size``. ``set_start(k)`` skips the first ``k`` batches (mid-epoch resume).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        pad: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        r, w = dist_info()
        self.n, self.batch_size, self.shuffle, self.seed = int(n), int(batch_size), shuffle, int(seed)
        self.drop_last, self.pad = drop_last, pad
        self.rank = r if rank is None else int(rank)
        self.world_size = w if world_size is None else int(world_size)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_start(self, batch: int) -> None:
        self.start = int(batch)

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(self.n, generator=g)
        else:
            idx = torch.arange(self.n)
        w = self.world_size
        if w > 1:
            if self.pad and self.n % w:
                extra = w - self.n % w
                idx = torch.cat([idx, idx.repeat(math.ceil(extra / max(self.n, 1)))[:extra]])
            idx = idx[self.rank :: w]
        return idx

    def _num_rank_samples(self) -> int:
        w = self.world_size
        if w == 1:
            return self.n
        if self.pad:
            return math.ceil(self.n / w)
        return len(range(self.rank, self.n, w))

    def __len__(self) -> int:
        m = self._num_rank_samples()
        nb = m // self.batch_size if self.drop_last else math.ceil(m / self.batch_size)
        return max(nb - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        idx = self._indices().tolist()
        nb = len(idx) // self.batch_size if self.drop_last else math.ceil(len(idx) / self.batch_size)
        for b in range(self.start, nb):
            yield idx[b * self.batch_size : (b + 1) * self.batch_size]


class StreamingJetDataset(IterableDataset):
    """Iterable dataset that streams batches from one or more schema files in HDF5 chunks.

    Rows ``[start, stop)`` of each file are cut into chunks of ``chunk_size``; each epoch the chunk
    order is shuffled with ``(seed, epoch)`` and chunk ``i`` goes to shard ``i % n_shards`` where the
    shards are (DDP rank, dataloader worker) pairs. A shard reads ``shuffle_buffer // chunk_size``
    chunks at a time, shuffles those rows and yields *batches* of ``batch_size`` (use a DataLoader
    with ``batch_size=None``, see :func:`make_loader`). Memory is bounded by the shuffle buffer.
    A ``standardizer`` should come from pretraining / the training set; without one it is fitted
    on the first ``fit_rows`` rows of the first file.
    """

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        collection: str | None = None,
        standardizer: Standardizer | None = None,
        *,
        chunk_size: int = 8192,
        shuffle_buffer: int = 65536,
        shuffle: bool = True,
        seed: int = 0,
        batch_size: int = 128,
        drop_last: bool = False,
        start: int = 0,
        stop: int | None = None,
        max_particles: int | None = None,
        label_map: Mapping[int, int] | None = None,
        fit_rows: int = 100_000,
    ) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("StreamingJetDataset: no paths given")
        if chunk_size < 1 or batch_size < 1:
            raise ValueError(f"chunk_size and batch_size must be >= 1, got {chunk_size}, {batch_size}")
        self.collection = collection
        self.chunk_size, self.shuffle_buffer, self.shuffle = int(chunk_size), int(shuffle_buffer), shuffle
        self.seed, self.batch_size, self.drop_last = int(seed), int(batch_size), drop_last
        self.max_particles, self.label_map = max_particles, label_map
        self.epoch = 0
        self.rank_world: tuple[int, int] | None = None  # None: read from torch.distributed at iteration
        self.skip_batches = 0
        infos = [inspect_file(p) for p in self.paths]
        self.label_names = infos[0].label_names
        self.meta = {"path": str(self.paths[0]), "dataset": infos[0].dataset, "label_names": infos[0].label_names}
        self._chunks: list[tuple[int, int, int]] = []  # (file index, start, stop)
        for fi, info in enumerate(infos):
            if collection is None and len(info.collections) != 1:
                raise SchemaError(f"{info.path}: holds collections {list(info.collections)}; pass collection=...")
            hi = info.n_rows if stop is None else min(stop, info.n_rows)
            for s in range(start, hi, self.chunk_size):
                self._chunks.append((fi, s, min(s + self.chunk_size, hi)))
        self.n_rows = sum(b - a for _, a, b in self._chunks)
        if standardizer is None:
            first = self._read(self.paths[0], start, min(start + fit_rows, infos[0].n_rows))
            standardizer = model_inputs(first)[3]
        self.standardizer = standardizer

    def __len__(self) -> int:
        """Number of rows (jets) streamed per epoch, all shards together."""
        return self.n_rows

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_skip(self, batches: int) -> None:
        """Skip the first ``batches`` batches of the next epoch's stream (mid-epoch resume)."""
        self.skip_batches = int(batches)

    def _read(self, path: Path, a: int, b: int) -> JetSet:
        js = read_jetset(path, self.collection, a, b, validate=False)
        if self.max_particles is not None and self.max_particles < js.max_particles:
            js = JetSet(
                js.particles[:, : self.max_particles],
                js.mask[:, : self.max_particles],
                js.jets,
                js.labels,
                js.weights,
                js.particle_features,
                js.extra,
            )
        return js

    def _shard(self) -> tuple[int, int, int, int]:
        """(shard, n_shards, logical worker, n_workers).

        The DataLoader round-robins workers starting at worker 0, so after skipping ``k`` batches
        worker ``w`` plays the role of logical worker ``(w + k) % n_workers``: the resumed stream is
        then exactly the tail of the uninterrupted one.
        """
        rank, world = self.rank_world or dist_info()
        wi = torch.utils.data.get_worker_info()
        nw, wid = (wi.num_workers, wi.id) if wi is not None else (1, 0)
        logical = (wid + self.skip_batches) % nw
        return rank * nw + logical, world * nw, logical, nw

    def shard_chunks(self, shard: int, n_shards: int) -> list[tuple[int, int, int]]:
        order = np.arange(len(self._chunks))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self._chunks))
        return [self._chunks[i] for i in order[shard::n_shards]]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        shard, n_shards, wid, nw = self._shard()
        chunks = self.shard_chunks(shard, n_shards)
        rng = np.random.default_rng([self.seed, self.epoch, shard, 1])
        per_group = max(1, self.shuffle_buffer // self.chunk_size)
        # loader batch i came from logical worker i % nw: this worker skips its share of the first k
        skip = max(0, (self.skip_batches - wid + nw - 1) // nw)
        carry: dict[str, torch.Tensor] | None = None
        for g in range(0, len(chunks), per_group):
            parts = [self._read(self.paths[fi], a, b) for fi, a, b in chunks[g : g + per_group]]
            t, _ = _tensors(JetSet.concatenate(parts), self.standardizer, self.label_map)
            if carry is not None:
                t = {
                    k: torch.cat([carry[k], _pad_to(t[k], carry[k])])
                    if k in ("x", "mask")
                    else torch.cat([carry[k], t[k]])
                    for k in t
                }
            if self.shuffle:
                perm = torch.from_numpy(rng.permutation(len(t["label"])))
                t = {k: v[perm] for k, v in t.items()}
            n = len(t["label"])
            nfull = n // self.batch_size
            for b in range(nfull):
                if skip:
                    skip -= 1
                    continue
                yield {k: v[b * self.batch_size : (b + 1) * self.batch_size] for k, v in t.items()}
            rest = nfull * self.batch_size
            carry = {k: v[rest:] for k, v in t.items()} if rest < n else None
        if carry is not None and not self.drop_last and not skip:
            yield carry
        self.skip_batches = 0


def _pad_to(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    if t.shape[1:] == ref.shape[1:]:
        return t
    raise SchemaError(f"streamed chunks disagree in shape: {tuple(t.shape)} vs {tuple(ref.shape)}")


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    distributed: bool | str = "auto",
    num_workers: int = 0,
    *,
    drop_last: bool = False,
    epoch: int = 0,
    start_batch: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader yielding batch dicts, deterministic in ``(seed, epoch)``, DDP-sharded if needed.

    Map-style datasets get an :class:`EpochBatchSampler` (reach it as ``loader.batch_sampler`` to
    ``set_epoch``); a :class:`StreamingJetDataset` produces batches itself (``batch_size`` is set on
    it). ``distributed="auto"`` shards when a process group is initialised.
    """
    rank, world = dist_info()
    if distributed is False:
        rank, world = 0, 1
    elif (
        distributed is True
        and world == 1
        and not (torch.distributed.is_available() and torch.distributed.is_initialized())
    ):
        raise RuntimeError("make_loader(distributed=True) needs an initialised torch.distributed process group")
    # a private generator so creating loader iterators never consumes the global torch RNG
    gen = torch.Generator().manual_seed(int(seed))
    common: dict[str, Any] = dict(
        num_workers=num_workers,
        collate_fn=collate_batches,
        generator=gen,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
    if isinstance(dataset, IterableDataset):
        if isinstance(dataset, StreamingJetDataset):
            dataset.batch_size, dataset.drop_last, dataset.shuffle = int(batch_size), drop_last, shuffle
            dataset.rank_world = (rank, world)
            dataset.set_epoch(epoch)
            dataset.set_skip(start_batch)
        return DataLoader(dataset, batch_size=None, **common)
    if not isinstance(dataset, Sized):
        raise TypeError(f"make_loader: a map-style dataset needs __len__, got {type(dataset).__name__}")
    sampler = EpochBatchSampler(
        len(dataset), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, rank=rank, world_size=world
    )
    sampler.set_epoch(epoch)
    sampler.set_start(start_batch)
    return DataLoader(dataset, batch_sampler=sampler, **common)
