"""The common on-disk schema: round trips, validation errors, atomic writes."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetlab.data.schema import (
    JET_FEATURES,
    KINEMATIC_FEATURES,
    JetSet,
    SchemaError,
    inspect_file,
    jet_features_from_particles,
    read_jetset,
    read_jetsets,
    sort_and_truncate,
    write_jetset,
    write_jetsets,
)


def make_jetset(n=6, p=10, seed=0, n_real=None) -> JetSet:
    rng = np.random.default_rng(seed)
    pt = rng.exponential(20.0, (n, p)) + 1.0
    eta = rng.normal(0.0, 0.3, (n, p))
    phi = rng.normal(0.0, 0.3, (n, p))
    parts = np.stack([pt, eta, phi, pt * np.cosh(eta)], -1)
    counts = n_real if n_real is not None else rng.integers(1, p + 1, n)
    mask = np.arange(p)[None, :] < np.asarray(counts)[:, None]
    parts, mask = sort_and_truncate(parts, mask, p)
    return JetSet(parts, mask, jet_features_from_particles(parts, mask), rng.integers(0, 2, n))


def test_round_trip_preserves_everything(tmp_path):
    js = make_jetset()
    js.extra["mjj"] = np.linspace(1, 2, len(js))
    path = write_jetset(tmp_path / "a.h5", js, dataset="unit", label_names=["qcd", "top"], info={"seed": 3})
    back = read_jetset(path)
    np.testing.assert_array_equal(back.particles, js.particles)
    np.testing.assert_array_equal(back.mask, js.mask)
    np.testing.assert_array_equal(back.jets, js.jets)
    np.testing.assert_array_equal(back.labels, js.labels)
    np.testing.assert_array_equal(back.extra["mjj"], js.extra["mjj"])
    meta = inspect_file(path)
    assert meta.dataset == "unit" and meta.label_names == ("qcd", "top")
    assert meta.info == {"seed": 3} and meta.n_rows == 6 and meta.collections == ("jets",)


def test_partial_reads_and_multiple_collections(tmp_path):
    a, b = make_jetset(seed=1), make_jetset(seed=2)
    path = write_jetsets(tmp_path / "z.h5", {"gen": a, "reco": b}, dataset="z", label_names=["z"])
    both = read_jetsets(path, start=2, stop=5)
    assert set(both) == {"gen", "reco"}
    np.testing.assert_array_equal(both["reco"].particles, b.particles[2:5])
    with pytest.raises(SchemaError, match="pass collection"):
        read_jetset(path)
    with pytest.raises(SchemaError, match="no collection 'jets'"):
        read_jetset(path, "jets")


def test_collections_must_be_row_aligned(tmp_path):
    with pytest.raises(SchemaError, match="row-aligned"):
        write_jetsets(tmp_path / "x.h5", {"a": make_jetset(4), "b": make_jetset(5)}, dataset="x", label_names=["a"])
    assert not list(tmp_path.iterdir())


def test_nan_is_rejected_and_no_file_is_left(tmp_path):
    js = make_jetset()
    js.particles[3, 0, 0] = np.nan
    with pytest.raises(SchemaError, match=r"particles has NaN/inf values \(first bad rows \[3\]\)"):
        write_jetset(tmp_path / "bad.h5", js, dataset="x", label_names=["a"])
    assert list(tmp_path.iterdir()) == []


def test_wrong_shapes_name_the_field():
    js = make_jetset()
    js.jets = js.jets[:, :4]
    with pytest.raises(SchemaError, match=r"jets must be \(N, 5\)"):
        js.validate("somewhere")
    js = make_jetset()
    js.particle_features = ("pt", "eta", "phi", "energy", "charge")
    with pytest.raises(SchemaError, match="4 columns but 5 feature names"):
        js.validate()


def test_mask_must_be_front_packed():
    js = make_jetset(n_real=[3] * 6)
    js.mask[0, 5] = True
    with pytest.raises(SchemaError, match="front-packed"):
        js.validate()


def test_foreign_and_corrupt_files_give_clear_errors(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(SchemaError, match="not a jetlab file"):
        read_jetset(foreign)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(SchemaError, match="not a readable HDF5 file"):
        inspect_file(garbage)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        inspect_file(tmp_path / "missing.h5")
    # a collection lacking a dataset
    path = write_jetset(tmp_path / "ok.h5", make_jetset(), dataset="x", label_names=["a"])
    with h5py.File(path, "a") as f:
        del f["jets/weights"]
    with pytest.raises(SchemaError, match="lacks dataset 'weights'"):
        read_jetset(path)


def test_write_is_atomic_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "final.h5"
    good = write_jetset(path, make_jetset(seed=5), dataset="x", label_names=["a"])
    before = read_jetset(good).particles.copy()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_jetset(path, make_jetset(seed=6), dataset="x", label_names=["a"])
    monkeypatch.undo()
    # the old file is intact and no temp file is left behind
    np.testing.assert_array_equal(read_jetset(path).particles, before)
    assert [p.name for p in tmp_path.iterdir()] == ["final.h5"]


def test_sort_and_truncate_orders_by_pt_and_packs():
    parts = np.zeros((1, 5, 4), np.float32)
    parts[0, :, 0] = [3.0, 0.0, 10.0, 1.0, 7.0]
    mask = np.array([[True, False, True, True, True]])
    p, m = sort_and_truncate(parts, mask, 3)
    np.testing.assert_array_equal(p[0, :, 0], [10.0, 7.0, 3.0])
    assert m.tolist() == [[True, True, True]]
    p, m = sort_and_truncate(parts, mask, 7)
    np.testing.assert_array_equal(p[0, :, 0], [10.0, 7.0, 3.0, 1.0, 0, 0, 0])
    assert m.sum() == 4


def test_jet_features_of_two_massless_particles():
    # m^2 = 2 pT1 pT2 (cosh deta - cos dphi)
    pt = np.array([100.0, 50.0])
    eta = np.array([0.0, 0.4])
    phi = np.array([0.0, 0.3])
    parts = np.stack([pt, eta, phi, pt * np.cosh(eta)], -1)[None].astype(np.float32)
    jets = jet_features_from_particles(parts, np.ones((1, 2), bool))
    m_expected = np.sqrt(2 * 100 * 50 * (np.cosh(0.4) - np.cos(0.3)))
    assert jets[0, JET_FEATURES.index("mass")] == pytest.approx(m_expected, rel=1e-5)
    assert jets[0, JET_FEATURES.index("n_particles")] == 2
    assert 100 < jets[0, 0] < 150


def test_concatenate_pads_to_the_widest():
    a, b = make_jetset(3, 4), make_jetset(2, 7)
    c = JetSet.concatenate([a, b])
    assert c.particles.shape == (5, 7, 4) and c.max_particles == 7
    assert not c.mask[:3, 4:].any()
    c.validate()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), p=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_property_file_round_trip(tmp_path_factory, n, p, seed):
    js = make_jetset(n, p, seed)
    path = tmp_path_factory.mktemp("prop") / "p.h5"
    write_jetset(path, js, dataset="prop", label_names=["a", "b"])
    back = read_jetset(path)
    np.testing.assert_array_equal(back.particles, js.particles)
    assert back.particle_features == KINEMATIC_FEATURES
    assert json.loads(h5py.File(path)["jets"].attrs["jet_features"]) == list(JET_FEATURES)


def test_jet_mass_of_massless_particles_does_not_depend_on_float32_rounding() -> None:
    """A jet of one massless particle has mass 0, and two massless ones m^2 = 2 pT1 pT2 (cosh deta - cos dphi),
    whatever way the CPU rounded the float32 energy; a real mass that float32 resolves is kept."""
    rng = np.random.default_rng(3)
    pt = rng.uniform(20.0, 900.0, 64).astype(np.float32)
    eta = rng.uniform(-2.5, 2.5, 64).astype(np.float32)
    phi = rng.uniform(-np.pi, np.pi, 64).astype(np.float32)
    # the stored energy as float32 arithmetic gives it, and one float32 ulp either side of it
    e32 = (pt * np.cosh(eta)).astype(np.float32)
    masses = []
    for e in (e32, np.nextafter(e32, np.float32(np.inf)), np.nextafter(e32, np.float32(0))):
        parts = np.zeros((64, 2, 4), np.float32)
        parts[:, 0] = np.stack([pt, eta, phi, e], axis=1)
        mask = np.zeros((64, 2), bool)
        mask[:, 0] = True
        masses.append(jet_features_from_particles(parts, mask)[:, 3])
    # before float64 handling: up to sqrt(2 E dE) ~ 0.03-0.3 GeV here
    assert np.abs(np.concatenate(masses)).max() < 1e-3

    # two massless particles: the opening-angle formula, computed in float64 by hand
    parts = np.zeros((64, 2, 4), np.float32)
    parts[:, 0] = np.stack([pt, eta, phi, e32], axis=1)
    eta2, phi2, pt2 = eta + np.float32(0.1), phi - np.float32(0.05), np.float32(0.5) * pt
    parts[:, 1] = np.stack([pt2, eta2, phi2, (pt2 * np.cosh(eta2)).astype(np.float32)], axis=1)
    m2 = 2 * pt.astype(float) * pt2 * (np.cosh(eta.astype(float) - eta2) - np.cos(phi.astype(float) - phi2))
    got = jet_features_from_particles(parts, np.ones((64, 2), bool))[:, 3]
    np.testing.assert_allclose(got, np.sqrt(m2), rtol=1e-4)

    # a 2 GeV particle of mass 0.5 GeV (resolvable in float32) keeps its mass
    p = np.array([[[2.0, 0.3, 0.1, np.sqrt((2.0 * np.cosh(0.3)) ** 2 + 0.25)]]], np.float32)
    assert jet_features_from_particles(p, np.ones((1, 1), bool))[0, 3] == pytest.approx(0.5, rel=1e-4)
