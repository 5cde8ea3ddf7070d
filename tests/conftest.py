"""Shared fixtures. ``test_seed`` and ``measured`` let ``benchmarks/seed_spread.py`` rerun a test
with other training seeds and collect the values its bounds are set from, so that a spread quoted
in a test's comment comes from a committed script, not from a scratch run."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def test_seed() -> int:
    """The training seed of the tests that take it: 0, or ``JETLAB_TEST_SEED`` (seed_spread.py)."""
    return int(os.environ.get("JETLAB_TEST_SEED", "0"))


@pytest.fixture(scope="module")
def module_seed() -> int:
    """``test_seed`` for module-scoped fixtures."""
    return int(os.environ.get("JETLAB_TEST_SEED", "0"))


@pytest.fixture
def measured(request):
    """``measured(name, value)``: appends ``{"test", "name", "value"}`` to the JSON-lines file named by
    ``JETLAB_MEASURED`` (seed_spread.py sets it); nothing otherwise. Call it before the asserts."""
    path = os.environ.get("JETLAB_MEASURED")

    def record(name: str, value: float) -> None:
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps({"test": request.node.nodeid, "name": name, "value": float(value)}) + "\n")

    return record


@pytest.fixture
def without_shipped_model(tmp_path_factory, monkeypatch):
    """jetlab as if installed without its shipped foundation model (for the fallback and search-order paths)."""
    import jetlab.model.checkpoint as ck

    monkeypatch.setattr(ck, "SHIPPED_DIR", tmp_path_factory.mktemp("no_weights"))
    monkeypatch.delenv("JETLAB_CHECKPOINT", raising=False)
