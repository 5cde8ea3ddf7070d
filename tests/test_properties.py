"""Property-based tests (hypothesis) for metric functions and preprocessing round trips.

Complements the hand-computed values in test_metrics.py and the standardiser / file round
trips in test_preprocess.py and test_schema.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fixtures_formats import write_atlas_h5
from jetlab.data.readers import read_atlas_toptag
from jetlab.data.schema import sort_and_truncate
from jetlab.physics import (
    inverse_background_efficiency,
    max_sic,
    roc_metrics,
    sic_curve,
    triangular_discriminator,
)

FAST = settings(max_examples=40, deadline=None)


@st.composite
def labelled_scores(draw, min_size=4, max_size=60):
    """Binary labels (both classes present) and integer-valued scores (ties allowed).

    Integer-valued scores in [0, 40] keep strictly monotone transforms exact: distinct scores
    stay distinct and equal ones stay equal after exp, cube or affine maps in float64.
    """
    n = draw(st.integers(min_size, max_size))
    labels = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    assume(0 < labels.sum() < n)
    scores = draw(arrays(np.float64, n, elements=st.integers(0, 40).map(float)))
    return labels, scores


def auc(y, s, w=None) -> float:
    return roc_metrics(y, s, w)["auc"]


# ------------------------------------------------------------------------------------ AUC
@FAST
@given(data=labelled_scores(), a=st.floats(0.01, 100.0), b=st.floats(-50.0, 50.0))
def test_auc_invariant_under_monotone_transforms(data, a, b):
    y, s = data
    ref = auc(y, s)
    assert auc(y, a * s + b) == pytest.approx(ref, abs=1e-12)
    assert auc(y, np.exp(s / 10.0)) == pytest.approx(ref, abs=1e-12)
    assert auc(y, (s - 20.0) ** 3) == pytest.approx(ref, abs=1e-12)
    assert 0.0 <= ref <= 1.0


@FAST
@given(data=labelled_scores(), use_weights=st.booleans(), seed=st.integers(0, 1000))
def test_auc_of_reversed_scores_and_swapped_labels(data, use_weights, seed):
    y, s = data
    w = np.random.default_rng(seed).uniform(0.1, 3.0, len(y)) if use_weights else None
    ref = auc(y, s, w)
    assert auc(y, 1.0 - s, w) == pytest.approx(1.0 - ref, abs=1e-9)  # ties count 1/2 both ways
    assert auc(1 - y, s, w) == pytest.approx(1.0 - ref, abs=1e-9)


@FAST
@given(data=labelled_scores(), k=st.integers(2, 4))
def test_integer_weights_equal_duplicated_events(data, k):
    y, s = data
    w = np.where(np.arange(len(y)) % 3 == 0, float(k), 1.0)
    rep = np.repeat(np.arange(len(y)), w.astype(int))
    assert auc(y, s, w) == pytest.approx(auc(y[rep], s[rep]), abs=1e-9)


# ------------------------------------------------------------------ rejection and SIC
@FAST
@given(data=labelled_scores(min_size=6), method=st.sampled_from(["interp", "first_above"]))
def test_rejection_is_non_increasing_in_signal_efficiency(data, method):
    y, s = data
    eps = np.linspace(0.0, 0.99, 34)
    rej = np.asarray(inverse_background_efficiency(y, s, eps, method=method))
    defined = rej[~np.isnan(rej)]  # NaN only past the last ROC point (first_above near 1)
    assert (defined >= 1.0 - 1e-12).all()  # eps_B <= 1
    eps_b = np.where(np.isinf(defined), 0.0, 1.0 / defined)  # inf rejection = eps_B 0
    assert (np.diff(eps_b) >= -1e-12).all()  # eps_B non-decreasing <=> 1/eps_B non-increasing
    # and the order of eps_s values does not matter (vectorised == pointwise)
    for e, r in zip(eps[::11], rej[::11]):
        single = inverse_background_efficiency(y, s, float(e), method=method)
        assert (np.isnan(single) and np.isnan(r)) or single == pytest.approx(r)


@FAST
@given(data=labelled_scores(min_size=6))
def test_sic_is_consistent_with_roc_and_rejection(data):
    y, s = data
    m = roc_metrics(y, s)
    eps_s, sic = sic_curve(y, s)
    keep = m["fpr"] > 1e-4
    np.testing.assert_array_equal(eps_s, m["tpr"][keep])
    np.testing.assert_allclose(sic, m["tpr"][keep] / np.sqrt(m["fpr"][keep]))
    assert max_sic(y, s) == pytest.approx(float(np.max(sic)))
    # at each ROC point, interp rejection uses the lowest fpr reaching that tpr: SIC <= eps * sqrt(rej)
    for e, v in zip(eps_s, sic):
        rej = inverse_background_efficiency(y, s, float(e))
        assert e == 0 or v <= e * np.sqrt(rej) * (1 + 1e-9)
    # a perfect classifier: rejection is infinite below eps_s = 1
    assert inverse_background_efficiency(y, y.astype(float), 0.9) == np.inf


# ----------------------------------------------------------------- triangular discriminator
def hist(n):
    return arrays(np.float64, n, elements=st.floats(0.0, 1e4, allow_subnormal=False))


@FAST
@given(n=st.integers(1, 30), data=st.data(), scale=st.floats(1e-3, 1e4), widths=st.booleans())
def test_triangular_discriminator_symmetric_bounded_zero_on_identical(n, data, scale, widths):
    p = data.draw(hist(n))
    q = data.draw(hist(n))
    assume(p.sum() > 0 and q.sum() > 0)
    w = data.draw(arrays(np.float64, n, elements=st.floats(0.01, 10.0))) if widths else None
    d = triangular_discriminator(p, q, w, scale=scale)
    assert d == pytest.approx(triangular_discriminator(q, p, w, scale=scale), rel=1e-12, abs=1e-12 * scale)
    # densities integrate to 1 each, and (p - q)^2 / (p + q) <= p + q bin by bin: 0 <= d <= scale
    assert -1e-12 <= d <= scale * (1 + 1e-12)
    assert triangular_discriminator(p, p, w, scale=scale) == 0.0
    assert triangular_discriminator(p, 7.5 * p, w, scale=scale) == pytest.approx(0.0, abs=1e-12 * scale)


@FAST
@given(n=st.integers(2, 20), data=st.data(), scale=st.floats(1e-3, 1e4))
def test_triangular_discriminator_reaches_scale_for_disjoint_supports(n, data, scale):
    cut = data.draw(st.integers(1, n - 1))
    p = np.r_[data.draw(hist(cut)), np.zeros(n - cut)]
    q = np.r_[np.zeros(cut), data.draw(hist(n - cut))]
    assume(p.sum() > 0 and q.sum() > 0)
    assert triangular_discriminator(p, q, scale=scale) == pytest.approx(scale, rel=1e-12)


# ------------------------------------------------------------------------ sort_and_truncate
@st.composite
def padded_particles(draw):
    n = draw(st.integers(1, 6))
    p = draw(st.integers(1, 12))
    pt = draw(arrays(np.float64, (n, p), elements=st.integers(1, 30).map(float)))  # ties allowed
    other = draw(arrays(np.float64, (n, p, 3), elements=st.floats(-5, 5, width=32)))
    mask = draw(arrays(np.bool_, (n, p)))
    parts = np.concatenate([pt[..., None], other], -1).astype(np.float32)
    parts[~mask] = draw(st.sampled_from([0.0, 99.0]))  # padding may hold garbage before sorting
    return parts, mask


@FAST
@given(data=padded_particles(), k=st.integers(1, 14))
def test_sort_and_truncate_properties(data, k):
    parts, mask = data
    p, m = sort_and_truncate(parts, mask, k)
    assert p.shape == (len(parts), k, 4) and m.shape == (len(parts), k) and p.dtype == np.float32
    # idempotent
    p2, m2 = sort_and_truncate(p, m, k)
    np.testing.assert_array_equal(p2, p)
    np.testing.assert_array_equal(m2, m)
    for i in range(len(parts)):
        real = parts[i][mask[i]]
        n_keep = min(len(real), k)
        assert m[i].sum() == n_keep and m[i, :n_keep].all()  # front-packed
        assert (p[i, n_keep:] == 0).all()  # zero padding
        kept = p[i, :n_keep]
        assert (np.diff(kept[:, 0]) <= 0).all()  # pT ordered
        # the multiset of kept pT is the top-k of the real pT
        np.testing.assert_array_equal(np.sort(kept[:, 0]), np.sort(real[:, 0])[len(real) - n_keep :])
        # every kept row is a real input particle, unchanged
        for row in kept:
            assert (real == row).all(1).any()


# ----------------------------------------------------------- ATLAS reader vs written values
@st.composite
def atlas_content(draw):
    n = draw(st.integers(1, 5))
    p = draw(st.integers(1, 8))
    # distinct pT per jet (MeV, exactly representable), 0 = padding anywhere in the row
    clus = np.zeros((n, p, 4))
    for i in range(n):
        pts = draw(st.lists(st.integers(10, 5000), min_size=p, max_size=p, unique=True))  # >= 10 GeV: the reader checks the MeV scale
        real = draw(arrays(np.bool_, p))
        clus[i, :, 0] = np.where(real, np.asarray(pts, float) * 1e3, 0.0)
        clus[i, :, 1] = draw(arrays(np.float64, p, elements=st.floats(-2.5, 2.5, width=32)))
        clus[i, :, 2] = draw(arrays(np.float64, p, elements=st.floats(-3.0, 3.0, width=32)))
        clus[i, :, 3] = clus[i, :, 0] * np.cosh(clus[i, :, 1])
    jets = draw(arrays(np.float64, (n, 4), elements=st.floats(3.5e5, 4e6, width=32)))  # MeV, pT > 350 GeV as published
    labels = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    weights = draw(arrays(np.float64, n, elements=st.floats(0.0, 10.0, width=32)))
    return clus, jets, labels, weights


@settings(max_examples=25, deadline=None)
@given(content=atlas_content(), k=st.integers(1, 10))
def test_atlas_reader_returns_written_values(tmp_path_factory, content, k):
    clus, jets, labels, weights = content
    path = write_atlas_h5(tmp_path_factory.mktemp("atlas") / "prop.h5", clus, jets, labels, weights)
    js = read_atlas_toptag(path, max_particles=k)
    c32 = clus.astype(np.float32)  # the file stores float32
    assert js.particles.shape == (len(clus), k, 4)
    for i in range(len(clus)):
        real = c32[i, :, 0] > 0
        order = np.argsort(-c32[i, :, 0], kind="stable")[: min(real.sum(), k)]
        n_keep = len(order)
        assert js.mask[i].sum() == n_keep and js.mask[i, :n_keep].all()
        scale = np.array([1e-3, 1.0, 1.0, 1e-3], np.float32)
        np.testing.assert_allclose(js.particles[i, :n_keep], c32[i, order] * scale, rtol=1e-6)
        assert (js.particles[i, n_keep:] == 0).all()
    j32 = jets.astype(np.float32)
    np.testing.assert_allclose(js.jets[:, :4], j32 * np.array([1e-3, 1, 1, 1e-3], np.float32), rtol=1e-6)
    np.testing.assert_array_equal(js.jets[:, 4], (c32[..., 0] > 0).sum(1))
    np.testing.assert_array_equal(js.labels, labels)
    np.testing.assert_allclose(js.weights, weights.astype(np.float32))
