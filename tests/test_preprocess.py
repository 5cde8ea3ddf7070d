"""Model-input preprocessing: values, padding, standardisation round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetlab.data.preprocess import (
    PARTICLE_INPUTS,
    Standardizer,
    available_groups,
    jet_inputs,
    model_inputs,
    particle_inputs,
)
from jetlab.data.schema import ALL_PARTICLE_FEATURES, JetSet, SchemaError, jet_features_from_particles


def one_jet(pts, etas, phis, extra_cols=None, features=None):
    pt, eta, phi = (np.asarray(v, float) for v in (pts, etas, phis))
    cols = [pt, eta, phi, pt * np.cosh(eta)]
    if extra_cols is not None:
        cols += list(extra_cols)
    parts = np.stack(cols, -1)[None].astype(np.float32)
    mask = np.ones(parts.shape[:2], bool)
    return JetSet(parts, mask, jet_features_from_particles(parts, mask), [0], particle_features=features or ("pt", "eta", "phi", "energy"))


def test_particle_inputs_hand_computed():
    js = one_jet([300.0, 100.0], [-1.0, -1.2], [3.1, -3.1])
    x = particle_inputs(js)
    jpt, jeta, jphi = js.jets[0, 0], js.jets[0, 1], js.jets[0, 2]
    assert jeta < 0  # jet in the backward direction: delta-eta sign is flipped
    np.testing.assert_allclose(x[0, :, 0], -(np.array([-1.0, -1.2]) - jeta), atol=1e-5)
    # phi wraps across +-pi: both particles are within 0.2 of the jet axis
    assert np.all(np.abs(x[0, :, 1]) < 0.2)
    np.testing.assert_allclose(x[0, :, 3], np.log([300.0, 100.0]), rtol=1e-6)
    np.testing.assert_allclose(x[0, :, 2], np.log(1 - np.array([300.0, 100.0]) / jpt), rtol=1e-5)
    np.testing.assert_allclose(x[0, :, 6], np.hypot(x[0, :, 0], x[0, :, 1]), rtol=1e-6)
    assert np.all(x[0, :, 7:] == 0)  # no PID in this dataset
    assert available_groups(js) == ("kinematics",)


def test_pid_group_is_filled_when_present():
    names = ALL_PARTICLE_FEATURES[:10]
    extra = [
        np.array([1.0, 0.0]),  # charge
        np.array([1.0, 0.0]),  # charged hadron
        np.array([0.0, 0.0]),  # neutral hadron
        np.array([0.0, 1.0]),  # photon
        np.array([0.0, 0.0]),  # electron
        np.array([0.0, 0.0]),  # muon
    ]
    js = one_jet([50.0, 20.0], [0.1, 0.2], [0.0, 0.1], extra, names)
    assert available_groups(js) == ("kinematics", "pid")
    x = particle_inputs(js)
    assert x[0, 0, PARTICLE_INPUTS.index("charge")] == 1.0
    assert x[0, 1, PARTICLE_INPUTS.index("is_photon")] == 1.0
    assert x[0, 1, PARTICLE_INPUTS.index("is_charged_hadron")] == 0.0


def test_padding_is_exactly_zero_after_standardisation():
    js = one_jet([50.0, 20.0, 5.0], [0.1, 0.2, 0.0], [0.0, 0.1, -0.1])
    js.mask[0, 2] = False
    js.particles[0, 2] = 0.0
    x, mask, jets, std = model_inputs(js)
    assert np.all(x[0, 2] == 0.0) and mask.tolist() == [[True, True, False]]
    assert jets.shape == (1, 4)
    np.testing.assert_allclose(jet_inputs(js)[0], [js.jets[0, 0], js.jets[0, 1], js.jets[0, 3], 3.0])


def test_single_particle_jet_is_finite():
    js = one_jet([100.0], [0.5], [0.2])
    x = particle_inputs(js)
    assert np.isfinite(x).all()
    assert x[0, 0, 2] < -5  # log(1 - pT/pT_jet) with pT == pT_jet is clipped, not -inf


def test_nonfinite_inputs_are_reported():
    js = one_jet([100.0, 50.0], [0.5, 0.3], [0.2, 0.1])
    js.particles[0, 1, 2] = np.inf
    with pytest.raises(SchemaError, match=r"non-finite particle inputs in jets \[0\]"):
        particle_inputs(js)


def test_standardizer_serialisation_and_mismatch():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (50, 7, 13)).astype(np.float32)
    mask = rng.random((50, 7)) > 0.3
    j = rng.normal(0, 5, (50, 4)).astype(np.float32)
    s = Standardizer.fit(x, mask, j)
    # flags/charge are not standardised
    assert np.all(s.particle_mean[7:] == 0) and np.all(s.particle_std[7:] == 1)
    y = s.transform_particles(x, mask)
    assert abs(y[mask][:, :7].mean()) < 1e-4 and abs(y[mask][:, :7].std() - 1) < 1e-3
    s2 = Standardizer.from_dict(s.to_dict())
    np.testing.assert_array_equal(s2.particle_std, s.particle_std)
    d = s.to_dict()
    d["particle_inputs"] = d["particle_inputs"][:-1]
    with pytest.raises(ValueError, match="standardizer was made for particle inputs"):
        Standardizer.from_dict(d)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 6),
    p=st.integers(1, 9),
    scale=st.floats(1e-3, 1e3),
)
def test_property_standardisation_round_trip(seed, n, p, scale):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, p, 13)) * scale).astype(np.float32)
    mask = rng.random((n, p)) > 0.4
    mask[0, 0] = True
    j = (rng.normal(size=(n, 4)) * scale).astype(np.float32)
    s = Standardizer.fit(x, mask, j)
    back = s.inverse_particles(s.transform_particles(x, mask), mask)
    np.testing.assert_allclose(back[mask], x[mask], rtol=1e-4, atol=1e-4 * scale)
    assert np.all(back[~mask] == 0)
    np.testing.assert_allclose(s.inverse_jets(s.transform_jets(j)), j, rtol=1e-4, atol=1e-4 * scale)
