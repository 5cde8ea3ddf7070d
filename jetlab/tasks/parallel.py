"""Many independent classifier trainings in parallel: OmniFold ensembles and bootstraps.

Why joblib (+ Dask on a cluster) and no home-made scheduler: ensembles and bootstrap replicas
are *embarrassingly parallel* - N independent trainings whose results are gathered at the end.
joblib already solves that on one machine (``loky`` worker processes, robust to crashes,
cloudpickle for closures, ships with scikit-learn), and the very same ``joblib.Parallel`` call
runs on a Dask cluster (SLURM/PBS/Kubernetes via ``dask-jobqueue`` / ``dask-kubernetes``) by
switching the backend (``joblib.parallel_config(backend="dask")``) when a
``dask.distributed.Client`` is passed. One code path, tested locally; no queueing, retry or
serialisation logic of our own. Dask is optional (``pip install "dask[distributed]"``).

When to use ``torchrun`` instead: to make *one* large training faster (data-parallel DDP
across GPUs, :class:`jetlab.train.Trainer` supports it). For many small trainings (OmniFold
ensembles on CPUs or one job per GPU) process-level parallelism here is simpler and scales
linearly, without gradient synchronisation.

Threads: every job limits torch to ``threads_per_job`` intra-op threads (default: CPUs / jobs),
so N jobs do not oversubscribe the machine.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import joblib
import numpy as np
import torch

from .omnifold import omnifold
from .omnifold.algorithm import length

__all__ = ["bootstrap_weights", "omnifold_ensemble", "run_parallel"]


def _call(fn: Callable[..., Any], kwargs: Mapping[str, Any], threads: int | None) -> Any:
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    return fn(**kwargs)


def run_parallel(
    fn: Callable[..., Any],
    tasks: Sequence[Mapping[str, Any]],
    *,
    n_jobs: int = 2,
    client: Any = None,
    threads_per_job: int | None = None,
    verbose: int = 0,
) -> list[Any]:
    """``[fn(**task) for task in tasks]``, evaluated in parallel, results in task order.

    Locally: ``n_jobs`` loky worker processes (``n_jobs=1`` runs in this process, handy for
    debugging). With ``client`` (a ``dask.distributed.Client``): the tasks go to its cluster
    through joblib's dask backend - the same call, no other code change.
    ``fn`` and the task values must be picklable (cloudpickle: closures and lambdas are fine).
    """
    tasks = [dict(t) for t in tasks]
    if not callable(fn):
        raise TypeError(f"run_parallel: fn must be callable, got {type(fn).__name__}")
    if n_jobs == 0 or (n_jobs < 0 and n_jobs != -1):
        raise ValueError(f"run_parallel: n_jobs must be >= 1 or -1 (all CPUs), got {n_jobs}")
    if not tasks:
        return []
    if client is not None:
        try:
            import distributed  # noqa: F401  (optional, pip install 'dask[distributed]': joblib's dask backend)
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise ImportError("run_parallel(client=...) needs Dask: pip install 'dask[distributed]'") from exc
        calls = (joblib.delayed(_call)(fn, t, threads_per_job) for t in tasks)
        with joblib.parallel_config(backend="dask", client=client):
            return list(joblib.Parallel(verbose=verbose)(calls))
    n_workers = min((os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs), len(tasks))
    threads = threads_per_job if threads_per_job is not None else max(1, (os.cpu_count() or 1) // max(1, n_workers))
    calls = (joblib.delayed(_call)(fn, t, threads) for t in tasks)
    if n_workers == 1:
        return [_call(fn, t, None) for t in tasks]
    return list(joblib.Parallel(n_jobs=n_workers, backend="loky", verbose=verbose)(calls))


def bootstrap_weights(n: int, n_replicas: int, seed: int = 0) -> np.ndarray:
    """``(n_replicas, n)`` Poisson(1) event weights: the standard bootstrap for weighted
    (unbinned) unfolding - replica ``k`` reruns OmniFold with ``data_weights * w[k]``."""
    if n < 1 or n_replicas < 1:
        raise ValueError(f"bootstrap_weights: n and n_replicas must be >= 1, got {n}, {n_replicas}")
    return np.random.default_rng(seed).poisson(1.0, size=(n_replicas, n)).astype(np.float64)


def _omnifold_member(sim_gen, sim_reco, data_reco, data_weights, seed, kwargs):
    return omnifold(sim_gen, sim_reco, data_reco, data_weights=data_weights, seed=seed, progress=False, **kwargs)


def omnifold_ensemble(
    sim_gen,
    sim_reco,
    data_reco,
    *,
    n_members: int = 4,
    mode: str = "ensemble",
    n_jobs: int = 2,
    client: Any = None,
    seed: int = 0,
    data_weights=None,
    threads_per_job: int | None = None,
    **omnifold_kwargs: Any,
) -> list:
    """Run ``n_members`` OmniFold trainings in parallel (see :func:`run_parallel`).

    ``mode="ensemble"``: same data, different seeds (initialisation, splits, batch order) - the
    spread is the training uncertainty, and averaging the weights reduces it. ``mode="bootstrap"``:
    each member also gets Poisson(1) data weights - the spread is the statistical uncertainty.
    Remaining keyword arguments go to :func:`jetlab.tasks.omnifold.omnifold` (the classifier
    spec must be picklable: the built-in specs are).
    """
    if mode not in ("ensemble", "bootstrap"):
        raise ValueError(f"omnifold_ensemble: mode must be 'ensemble' or 'bootstrap', got {mode!r}")
    if n_members < 1:
        raise ValueError(f"omnifold_ensemble: n_members must be >= 1, got {n_members}")
    n_data = length(data_reco, "data_reco")
    base = np.ones(n_data) if data_weights is None else np.asarray(data_weights, dtype=np.float64)
    boots = bootstrap_weights(n_data, n_members, seed) if mode == "bootstrap" else None
    tasks = [
        {
            "sim_gen": sim_gen,
            "sim_reco": sim_reco,
            "data_reco": data_reco,
            "data_weights": base if boots is None else base * boots[k],
            "seed": seed + k,
            "kwargs": omnifold_kwargs,
        }
        for k in range(n_members)
    ]
    return run_parallel(_omnifold_member, tasks, n_jobs=n_jobs, client=client, threads_per_job=threads_per_job)
