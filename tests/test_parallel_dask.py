"""The scale-out path: OmniFold ensembles and bootstraps through joblib's Dask backend.

A two-worker ``dask.distributed.LocalCluster`` on 127.0.0.1 stands in for a cluster scheduler
(``Client("tcp://scheduler:8786")`` is the same call): the members it trains must carry exactly the
weights of the same members trained by local joblib worker processes at the same seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from dask.distributed import Client, LocalCluster, get_task_stream

from jetlab.tasks.omnifold import ObservableClassifier
from jetlab.tasks.parallel import bootstrap_weights, omnifold_ensemble

N = 400


def _events(seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Two observables at particle level, smeared at detector level; 'data' is shifted in a."""
    rng = np.random.default_rng(seed)
    gen = {"a": rng.normal(0.0, 1.0, N), "b": rng.exponential(1.0, N)}
    reco = {k: v + rng.normal(0.0, 0.3, N) for k, v in gen.items()}
    data = {"a": rng.normal(0.4, 1.0, N) + rng.normal(0.0, 0.3, N), "b": rng.exponential(1.0, N)}
    return {"sim_gen": gen, "sim_reco": reco, "data_reco": data}


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


@pytest.mark.parametrize("mode", ["ensemble", "bootstrap"])
def test_dask_cluster_members_equal_local_joblib_members(client, mode):
    ev = _events(0)
    kw = dict(n_members=2, mode=mode, seed=5, threads_per_job=1, classifier_factory=ObservableClassifier(
        observables=("a", "b"), hidden=(8,)), n_iterations=2, epochs=2, batch_size=100, early_stopping_patience=None,
        device="cpu")
    local = omnifold_ensemble(ev["sim_gen"], ev["sim_reco"], ev["data_reco"], n_jobs=2, **kw)
    with get_task_stream(client) as stream:
        remote = omnifold_ensemble(ev["sim_gen"], ev["sim_reco"], ev["data_reco"], client=client, **kw)
    workers = {t["worker"] for t in stream.data}
    assert len(stream.data) >= 2 and workers <= set(client.scheduler_info()["workers"])  # ran on the cluster
    assert len(local) == len(remote) == 2
    for a, b in zip(local, remote):
        assert a.config["seed"] == b.config["seed"]
        for wa, wb in zip(a.push_weights, b.push_weights):
            np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(a.data_weights, b.data_weights)
    # members differ: other seeds (and, bootstrapping, other Poisson data weights)
    assert not np.allclose(local[0].weights(), local[1].weights())
    if mode == "bootstrap":
        np.testing.assert_array_equal(local[1].data_weights, bootstrap_weights(N, 2, seed=5)[1])
    else:
        assert np.all(local[0].data_weights == 1.0)
