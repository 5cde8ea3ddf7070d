"""Data loading throughput vs model consumption rate.

Measures, in the same run on the same machine:
  * jets/s from a schema file into batches with JetDataset (in-memory, includes the one-off
    preprocessing) and StreamingJetDataset (chunked HDF5 reads + preprocessing per chunk);
  * jets/s of a tiny-PET pretraining step (forward + backward + AdamW) - the consumer;
and prints loader/consumer ratios: a ratio > 1 means the loader keeps the model fed.

    python benchmarks/bench_dataloading.py [--n-jets 20000] [--particles 64] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-jets", type=int, default=20000)
    ap.add_argument("--particles", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()

    from jetlab.data.schema import write_jetset
    from jetlab.data.torchdata import JetDataset, StreamingJetDataset, make_loader
    from jetlab.train._ddp_selftest import synthetic_jetset

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        write_jetset(path, synthetic_jetset(args.n_jets, p=args.particles, seed=0), dataset="bench",
                     label_names=["a", "b"])

        t = time.perf_counter()
        ds = JetDataset(path)
        t_prep = time.perf_counter() - t
        t = time.perf_counter()
        n = sum(len(b["label"]) for b in make_loader(ds, args.batch_size, distributed=False,
                                                      num_workers=args.workers))
        t_iter = time.perf_counter() - t
        mem_rate = n / (t_prep + t_iter)
        mem_iter_rate = n / t_iter

        sds = StreamingJetDataset(path, standardizer=ds.standardizer, chunk_size=8192, shuffle_buffer=16384)
        t = time.perf_counter()
        n = sum(len(b["label"]) for b in make_loader(sds, args.batch_size, distributed=False,
                                                      num_workers=args.workers))
        stream_rate = n / (time.perf_counter() - t)

        from jetlab.model import PET, PETConfig, pretraining_loss

        torch.manual_seed(0)
        model = PET(PETConfig.tiny(num_classes=2))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batches = iter(make_loader(ds, args.batch_size, distributed=False))
        step_batches = [next(batches) for _ in range(min(args.train_steps + 1, len(ds) // args.batch_size))]
        loss, _ = pretraining_loss(model, step_batches[0])  # warm-up step
        loss.backward()
        opt.step()
        t = time.perf_counter()
        for b in step_batches[1:]:
            opt.zero_grad()
            loss, _ = pretraining_loss(model, b)
            loss.backward()
            opt.step()
        model_rate = sum(len(b["label"]) for b in step_batches[1:]) / (time.perf_counter() - t)

    print(f"{args.n_jets} jets x {args.particles} particles, batch {args.batch_size}, workers {args.workers}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"JetDataset      : {mem_rate:12.0f} jets/s incl. preprocessing ({t_prep:.2f} s), "
          f"{mem_iter_rate:12.0f} jets/s batching only")
    print(f"StreamingJetDataset: {stream_rate:9.0f} jets/s (HDF5 chunks + preprocessing)")
    print(f"tiny PET pretraining step: {model_rate:9.0f} jets/s")
    print(f"ratio JetDataset/model        : {mem_rate / model_rate:8.1f}x")
    print(f"ratio StreamingJetDataset/model: {stream_rate / model_rate:8.1f}x")


if __name__ == "__main__":
    main()
