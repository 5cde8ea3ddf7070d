"""Edge-case jets through the schema, preprocessing and the PET model.

Defined behaviour, end to end (JetSet -> model_inputs -> PET in eval mode):

* an empty jet (0 particles) is valid schema data; its particle inputs are all zero, its jet
  inputs finite, and the model gives finite logits for it without changing the logits of
  the other jets in the batch (no cross-talk through padding, attention or batch statistics);
* a one-particle jet is finite everywhere;
* more particles than ``max_particles``: the hardest ones are kept (readers, sort_and_truncate,
  JetDataset) while ``jets[:, 4]`` still counts all of them;
* NaN/inf in real inputs is an error naming the row, at the schema and preprocessing level.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures_formats import write_atlas_h5
from jetlab.data.preprocess import Standardizer, jet_inputs, model_inputs, particle_inputs
from jetlab.data.readers import read_atlas_toptag
from jetlab.data.schema import JetSet, SchemaError, jet_features_from_particles, read_jetset, sort_and_truncate, write_jetset
from jetlab.data.torchdata import JetDataset
from jetlab.model import PET, PETConfig

torch.set_num_threads(2)


def jetset(counts, p=None, seed=0) -> JetSet:
    """Jets with the given particle counts (0 allowed), pT-ordered, padded to ``p``."""
    rng = np.random.default_rng(seed)
    n = len(counts)
    p = p or max(max(counts), 1)
    pt = rng.exponential(30.0, (n, p)) + 1.0
    eta = rng.normal(0.2, 0.3, (n, p))
    phi = rng.normal(-0.5, 0.3, (n, p))
    parts = np.stack([pt, eta, phi, pt * np.cosh(eta)], -1)
    mask = np.arange(p)[None] < np.asarray(counts)[:, None]
    parts, mask = sort_and_truncate(parts, mask, p)
    return JetSet(parts, mask, jet_features_from_particles(parts, mask), np.arange(n) % 2).validate()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PET(PETConfig.tiny(num_classes=2, layer_scale_init=0.5)).eval()


def logits(model, x, mask, jets):
    with torch.no_grad():
        return model(torch.as_tensor(x), torch.as_tensor(mask), torch.as_tensor(jets))


# ------------------------------------------------------------------------------ empty jets
def test_empty_jet_is_valid_schema_data_and_round_trips(tmp_path):
    js = jetset([5, 0, 3])
    np.testing.assert_array_equal(js.jets[1], [0, 0, 0, 0, 0])  # zero four-vector, zero count
    back = read_jetset(write_jetset(tmp_path / "e.h5", js, dataset="t", label_names=["a", "b"]))
    assert not back.mask[1].any() and (back.particles[1] == 0).all()


def test_empty_jet_preprocessing_is_zero_and_finite():
    js = jetset([6, 0, 4, 1])
    x, mask, jets, std = model_inputs(js)
    assert np.isfinite(x).all() and np.isfinite(jets).all()
    assert (x[1] == 0).all() and not mask[1].any()
    # the standardiser ignores empty jets' (absent) particles: same as fitting without them
    ref = Standardizer.fit_jetset(js.subset([0, 2, 3]))
    np.testing.assert_allclose(std.particle_mean, ref.particle_mean, rtol=1e-6)
    np.testing.assert_allclose(std.particle_std, ref.particle_std, rtol=1e-6)


def test_only_empty_jets_need_a_given_standardizer():
    empty = jetset([0, 0])
    with pytest.raises(ValueError, match="no real particles"):
        model_inputs(empty)
    std = model_inputs(jetset([4, 7]))[3]
    x, mask, jets, _ = model_inputs(empty, std)
    assert (x == 0).all() and np.isfinite(jets).all()


def test_empty_jet_in_batch_does_not_change_other_jets(model):
    js = jetset([9, 0, 4, 1, 0, 12], p=12, seed=3)
    x, mask, jets, std = model_inputs(js)
    out = logits(model, x, mask, jets)
    assert torch.isfinite(out).all()  # empty jets get finite logits too
    normal = [0, 2, 3, 5]
    alone = logits(model, x[normal], mask[normal], jets[normal])
    torch.testing.assert_close(out[normal], alone, atol=1e-5, rtol=1e-5)
    # ... and each jet's logits are the same as when it is evaluated on its own
    for i in (0, 1, 3):
        torch.testing.assert_close(out[i : i + 1], logits(model, x[i : i + 1], mask[i : i + 1], jets[i : i + 1]), atol=1e-5, rtol=1e-5)


# -------------------------------------------------------------------------- one particle
def test_one_particle_jet_end_to_end(model):
    js = jetset([1, 1, 5], p=5, seed=1)
    x, mask, jets, _ = model_inputs(js)
    raw = particle_inputs(js)
    # the jet axis is the particle itself: deta = dphi = dR = 0, pT_rel clipped below 1
    np.testing.assert_allclose(raw[:2, 0, [0, 1, 6]], 0.0, atol=1e-5)
    assert np.isfinite(raw).all() and (raw[:2, 0, 2] < -5).all()
    assert (jet_inputs(js)[:2, 3] == 1).all()
    out = logits(model, x, mask, jets)
    assert torch.isfinite(out).all()


# --------------------------------------------------------------- more than max_particles
def test_sort_and_truncate_keeps_the_hardest_and_counts_all():
    js = jetset([30, 12], p=30, seed=2)
    p, m = sort_and_truncate(js.particles, js.mask, 8)
    for i in range(2):
        top = np.sort(js.feature("pt")[i][js.mask[i]])[::-1][:8]
        np.testing.assert_array_equal(p[i, :, 0], top)
    assert m.all()
    assert jet_features_from_particles(js.particles, js.mask)[:, 4].tolist() == [30, 12]


def test_atlas_reader_truncates_to_the_hardest_constituents(tmp_path):
    rng = np.random.default_rng(5)
    n, stored = 4, 40
    pt = rng.permutation(np.arange(1, stored + 1) * 1e3)  # distinct pT in MeV, unsorted
    clus = np.zeros((n, stored, 4))
    for i in range(n):
        order = rng.permutation(stored)
        clus[i, :, 0] = pt[order]
        clus[i, :, 1] = rng.normal(0, 0.3, stored)
        clus[i, :, 2] = rng.normal(0, 0.3, stored)
        clus[i, :, 3] = clus[i, :, 0] * np.cosh(clus[i, :, 1])
    jets = np.tile([500e3, 0.0, 0.0, 80e3], (n, 1))
    path = write_atlas_h5(tmp_path / "many.h5", clus, jets, np.zeros(n, int))
    js = read_atlas_toptag(path, max_particles=10)
    assert js.particles.shape == (n, 10, 4) and js.mask.all()
    for i in range(n):
        np.testing.assert_allclose(js.feature("pt")[i], np.arange(stored, stored - 10, -1), rtol=1e-6)
        # the other columns travel with their particle
        keep = np.argsort(-clus[i, :, 0])[:10]
        np.testing.assert_allclose(js.feature("eta")[i], clus[i, keep, 1], rtol=1e-6)
    assert (js.jets[:, 4] == stored).all()


def test_jetdataset_max_particles_keeps_leading_slots(tmp_path):
    js = jetset([20, 3, 0, 11], p=20, seed=4)
    path = write_jetset(tmp_path / "j.h5", js, dataset="t", label_names=["a", "b"])
    ds = JetDataset(path, max_particles=6)
    full = JetDataset(path, standardizer=ds.standardizer)
    for i in range(len(js)):
        item, ref = ds[i], full[i]
        assert item["x"].shape == (6, 13)
        np.testing.assert_allclose(np.asarray(item["x"]), np.asarray(ref["x"])[:6], rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(item["mask"]), np.asarray(ref["mask"])[:6])


# ------------------------------------------------------------------------------- NaN / inf
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("column", [0, 1, 2, 3])
def test_nonfinite_particle_is_named_by_row(value, column):
    js = jetset([5, 4, 6], p=6)
    js.particles[2, 1, column] = value
    with pytest.raises(SchemaError, match=r"where: particles has NaN/inf values \(first bad rows \[2\]\)"):
        js.validate("where")
    with pytest.raises(SchemaError, match=r"non-finite particle inputs in jets \[2\]"):
        model_inputs(js)


@pytest.mark.parametrize("column", [0, 1, 2, 3, 4])
def test_nonfinite_jet_feature_is_named_by_row(column):
    js = jetset([5, 4, 6], p=6)
    js.jets[1, column] = np.inf
    with pytest.raises(SchemaError, match=r"jets has NaN/inf values \(first bad rows \[1\]\)"):
        js.validate()
    # preprocessing must not let it through (a NaN standardiser poisons every jet)
    with pytest.raises(SchemaError, match=r"\[1\]"):
        model_inputs(js)


def test_garbage_in_padding_is_ignored_by_preprocessing_but_rejected_by_schema():
    js = jetset([5, 2], p=5)
    js.particles[1, 3] = np.nan  # a padded slot
    with pytest.raises(SchemaError, match=r"first bad rows \[1\]"):
        js.validate()
    x, mask, jets, _ = model_inputs(js)  # in-memory data: padding is masked out, as documented
    assert np.isfinite(x).all() and (x[1, 2:] == 0).all()
