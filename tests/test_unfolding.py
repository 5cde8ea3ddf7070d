"""Iterative Bayesian unfolding: exact identities and closure on known smearing."""

from __future__ import annotations

import numpy as np
import pytest

from jetlab.physics import (
    IBUResult,
    Response,
    ibu,
    ibu_unfold_samples,
    response_matrix,
    triangular_discriminator,
)


def smearing(n: int, off: float = 0.2) -> np.ndarray:
    """Column-stochastic tridiagonal migration matrix (each gen bin leaks ``off`` to neighbours)."""
    R = np.eye(n) * (1 - 2 * off)
    for i in range(n):
        if i > 0:
            R[i - 1, i] = off
        if i < n - 1:
            R[i + 1, i] = off
    return R / R.sum(0, keepdims=True)


def test_diagonal_response_returns_measurement():
    m = np.array([5.0, 20.0, 40.0, 10.0, 1.0])
    for prior in (np.ones(5), np.array([1.0, 2, 3, 4, 5])):
        for it in (1, 4):
            np.testing.assert_allclose(ibu(m, np.eye(5), prior, it), m)
    # an inefficient but diagonal detector: divide by the efficiency
    np.testing.assert_allclose(ibu(m, 0.5 * np.eye(5), np.ones(5), 3), 2 * m)


def test_closure_on_known_smearing_and_normalisation():
    truth = np.array([100.0, 400.0, 800.0, 500.0, 150.0, 50.0])
    R = smearing(6)
    measured = R @ truth
    prior = np.ones(6)
    t = truth / truth.sum()
    errors = []
    for it in (1, 2, 4, 16, 200):
        u = ibu(measured, R, prior, it)
        assert u.sum() == pytest.approx(measured.sum(), rel=1e-12)  # full efficiency: total preserved
        errors.append(np.abs(u / u.sum() - t).sum())
    assert all(b < a for a, b in zip(errors, errors[1:]))  # moves monotonically toward the truth
    # from a flat prior, 4 iterations already beat the smeared measurement; many converge
    assert errors[2] < 0.5 * np.abs(measured / measured.sum() - t).sum()
    assert errors[-1] < 1e-4
    # with the truth as prior the answer is a fixed point
    np.testing.assert_allclose(ibu(measured, R, truth, 5), truth, rtol=1e-10)
    # zero iterations: the prior scaled to the measured total
    np.testing.assert_allclose(ibu(measured, R, prior, 0), np.full(6, measured.sum() / 6))


def test_fakes_are_subtracted():
    R = smearing(4)
    truth = np.array([10.0, 30.0, 20.0, 5.0])
    fakes = np.array([3.0, 0.0, 1.0, 2.0])
    u = ibu(R @ truth + fakes, R, truth, 3, fakes=fakes)
    np.testing.assert_allclose(u, truth, rtol=1e-10)


def test_response_matrix_hand_example():
    nan = np.nan
    gen = np.array([0.5, 0.5, 0.5, 1.5, 1.5, nan, 1.5, 5.0])
    reco = np.array([0.4, 1.2, nan, 1.6, 1.7, 0.3, 9.0, 1.1])
    w = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 2.0, 1.0])
    r = response_matrix(gen, reco, [0, 1, 2], [0, 1, 2], weights=w)
    assert isinstance(r, Response)
    # gen bin 0: weights 1 (-> reco 0), 1 (-> reco 1), 2 (lost) => total 4
    # gen bin 1: 1, 1 (-> reco 1), 2 (reco out of range, lost) => total 4
    np.testing.assert_allclose(r.truth, [4.0, 4.0])
    np.testing.assert_allclose(r.migrations, [[1.0, 0.0], [1.0, 2.0]])
    np.testing.assert_allclose(r.matrix, [[0.25, 0.0], [0.25, 0.5]])
    np.testing.assert_allclose(r.efficiency, [0.5, 0.5])
    # fakes: NaN gen with reco 0.3 (bin 0) and gen out of range with reco 1.1 (bin 1)
    np.testing.assert_allclose(r.fakes, [1.0, 1.0])
    np.testing.assert_allclose(r.reco, [2.0, 4.0])  # bin 1: 1.2, 1.6, 1.7 and the fake 1.1
    np.testing.assert_allclose(r.fake_fraction, [0.5, 0.25])
    with pytest.raises(ValueError, match="bins_gen must be strictly increasing"):
        response_matrix(gen, reco, [0, 0], [0, 1])
    with pytest.raises(ValueError, match="row-aligned"):
        response_matrix(gen, reco[:3], [0, 1, 2], [0, 1, 2])


def test_ibu_unfold_samples_closure():
    rng = np.random.default_rng(7)
    n = 40000
    sim_gen = rng.normal(0.0, 1.0, n)
    sim_reco = sim_gen + rng.normal(0, 0.4, n)
    data_gen = rng.normal(0.4, 0.8, n)
    data_reco = data_gen + rng.normal(0, 0.4, n)
    bins = np.linspace(-4, 4, 17)
    res = ibu_unfold_samples(sim_gen, sim_reco, data_reco, bins, n_iterations=5)
    assert isinstance(res, IBUResult)
    assert res.history.shape == (5, 16)
    np.testing.assert_allclose(res.history[-1], res.unfolded)
    widths = np.diff(bins)
    for h in (res.unfolded, res.prior, *res.history):
        assert np.sum(h * widths) == pytest.approx(1.0)
    truth, _ = np.histogram(data_gen, bins)
    measured, _ = np.histogram(data_reco, bins)
    d_unfolded = triangular_discriminator(res.unfolded, truth, widths)
    d_prior = triangular_discriminator(res.prior, truth, widths)
    d_reco = triangular_discriminator(measured, truth, widths)
    assert d_unfolded < 0.2 * d_prior
    assert d_unfolded < 0.5 * d_reco
    # iterations move toward the data truth
    d_hist = [triangular_discriminator(h, truth, widths) for h in res.history]
    assert d_hist[-1] < d_hist[0]
    # event weights act like a different simulation: reweighting sim to the data truth shape
    # gives a prior that already matches, and unfolding keeps it there
    dens = lambda x, mu, s: np.exp(-0.5 * ((x - mu) / s) ** 2) / s  # noqa: E731
    w = dens(sim_gen, 0.4, 0.8) / dens(sim_gen, 0.0, 1.0)
    res_w = ibu_unfold_samples(sim_gen, sim_reco, data_reco, (bins, bins), 3, weights=w)
    assert triangular_discriminator(res_w.prior, truth, widths) < 0.2 * d_prior
    assert triangular_discriminator(res_w.unfolded, truth, widths) < 0.2 * d_prior


def test_ibu_input_errors():
    R = np.eye(3)
    with pytest.raises(ValueError, match="measured_hist has shape"):
        ibu(np.ones(4), R, np.ones(3))
    with pytest.raises(ValueError, match="prior has shape"):
        ibu(np.ones(3), R, np.ones(2))
    with pytest.raises(ValueError, match="non-negative integer"):
        ibu(np.ones(3), R, np.ones(3), n_iterations=-1)
    with pytest.raises(ValueError, match="must be non-negative"):
        ibu(np.ones(3), -R, np.ones(3))
    with pytest.raises(ValueError, match="n_iterations must be >= 1"):
        ibu_unfold_samples([0.1], [0.1], [0.1], [0, 1], n_iterations=0)
