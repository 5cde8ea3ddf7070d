"""Metrics against hand-computed values on small score sets."""

from __future__ import annotations

import numpy as np
import pytest

from jetlab.physics import (
    bootstrap,
    inverse_background_efficiency,
    max_sic,
    mean_and_spread,
    roc_curve,
    roc_metrics,
    sic_curve,
    triangular_discriminator,
    triangular_discriminator_samples,
    wasserstein_1d,
)

# 4 signal, 4 background. Ordered by score: S S B S B S B B, so the ROC (fpr, tpr) corners are
# (0, .5), (.25, .5), (.25, .75), (.5, .75), (.5, 1), (1, 1).
SIG = [0.9, 0.8, 0.6, 0.3]
BKG = [0.7, 0.4, 0.2, 0.1]
LABELS = np.array([1] * 4 + [0] * 4)
SCORES = np.array(SIG + BKG)


def test_roc_metrics_hand_values():
    m = roc_metrics(LABELS, SCORES)
    assert m["auc"] == pytest.approx(13 / 16)  # 13 of 16 (s, b) pairs ordered correctly
    assert m["accuracy"] == pytest.approx(6 / 8)  # one bkg (0.7) and one sig (0.3) wrong
    assert m["rej_at_0.5"] == np.inf  # tpr 0.5 is reached at fpr 0
    assert m["rej_at_0.8"] == pytest.approx(1 / 0.3)  # fpr interpolated .25 -> .5 over tpr .75 -> 1
    assert m["fpr"].shape == m["tpr"].shape == m["thresholds"].shape
    assert m["tpr"][-1] == 1.0 and m["fpr"][-1] == 1.0


def test_inverse_background_efficiency_methods():
    ibe = inverse_background_efficiency
    assert ibe(LABELS, SCORES, 0.6, method="interp") == pytest.approx(1 / 0.1)
    assert ibe(LABELS, SCORES, 0.6, method="first_above") == pytest.approx(1 / 0.25)
    # OmniLearn convention is strictly above: at eps_s = 0.5 it moves on to tpr = .75
    assert ibe(LABELS, SCORES, 0.5, method="first_above") == pytest.approx(4.0)
    assert ibe(LABELS, SCORES, 0.8, method="first_above") == pytest.approx(2.0)
    np.testing.assert_allclose(ibe(LABELS, SCORES, [0.6, 0.8]), [10.0, 1 / 0.3])
    assert np.isnan(ibe(LABELS, SCORES, 1.0, method="first_above"))
    with pytest.raises(ValueError, match="'interp' or 'first_above'"):
        ibe(LABELS, SCORES, 0.5, method="nearest")
    with pytest.raises(ValueError, match=r"eps_s must lie in \[0, 1\]"):
        ibe(LABELS, SCORES, 1.5)


def test_sic_hand_values():
    eps_s, sic = sic_curve(LABELS, SCORES)
    # every ROC point (one per threshold), the fpr = 0 points excluded by min_fpr
    np.testing.assert_allclose(eps_s, [0.5, 0.75, 0.75, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(sic, [1.0, 1.5, 0.75 / np.sqrt(0.5), 1 / np.sqrt(0.5), 1 / np.sqrt(0.75), 1.0])
    assert max_sic(LABELS, SCORES) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="no ROC point has fpr > min_fpr"):
        max_sic(LABELS, SCORES, min_fpr=1.0)
    # at least 2 background events above the cut: fpr >= .5, corners (.5, .75), (.5, 1), (.75, 1), (1, 1)
    eps_s, sic = sic_curve(LABELS, SCORES, min_background_events=2)
    np.testing.assert_allclose(eps_s, [0.75, 1.0, 1.0, 1.0])
    assert max_sic(LABELS, SCORES, min_background_events=2) == pytest.approx(1 / np.sqrt(0.5))
    # the count is of events, not weights: a heavy background event still counts once
    w = np.array([1, 1, 1, 1, 5, 1, 1, 1.0])
    assert sic_curve(LABELS, SCORES, w, min_background_events=2)[0].tolist() == [0.75, 1.0, 1.0, 1.0]


def test_roc_curve_matches_sklearn_with_every_threshold():
    from sklearn.metrics import roc_curve as sk_roc

    w = np.array([1, 2, 1, 1, 3, 1, 1, 1.0])
    fpr, tpr, thr = roc_curve(LABELS, SCORES, w)
    ref = sk_roc(LABELS, SCORES, sample_weight=w, drop_intermediate=False)
    for got, want in zip((fpr, tpr, thr), ref):
        np.testing.assert_array_equal(got, want)
    assert len(fpr) == 9  # (0, 0) + one point per distinct score
    with pytest.raises(ValueError, match="roc_curve: labels must be 0"):
        roc_curve([0, 2, 1], [0.1, 0.2, 0.3])


def test_weights_equal_duplication_and_two_column_scores():
    w = np.array([1, 1, 2, 1, 1, 3, 1, 1.0])
    dup = np.repeat(np.arange(8), w.astype(int))
    a = roc_metrics(LABELS, SCORES, weights=w)
    b = roc_metrics(LABELS[dup], SCORES[dup])
    for key in ("auc", "accuracy", "rej_at_0.5", "rej_at_0.8"):
        assert a[key] == pytest.approx(b[key]), key
    probs = np.stack([1 - SCORES, SCORES], 1)
    assert roc_metrics(LABELS, probs)["auc"] == pytest.approx(13 / 16)


def test_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="labels must be 0"):
        roc_metrics([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="need both signal"):
        roc_metrics([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="differ in length"):
        roc_metrics([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        roc_metrics([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="weights shape"):
        roc_metrics([0, 1], [0.1, 0.2], weights=[1.0])


def test_triangular_discriminator_values():
    assert triangular_discriminator([1, 0], [0, 1], scale=1) == pytest.approx(1.0)
    assert triangular_discriminator([3, 5, 0], [6, 10, 0]) == 0.0  # normalised + empty bin
    expected = 0.5 * (0.25**2 / 0.75 + 0.25**2 / 1.25)
    assert triangular_discriminator([2, 2], [1, 3], scale=1) == pytest.approx(expected)
    assert triangular_discriminator([2, 2], [1, 3]) == pytest.approx(1e3 * expected)
    # non-uniform widths: counts become densities c / (N w), as np.histogram(density=True) does
    w = np.array([1.0, 3.0])
    p = np.array([1.0, 1.0]) / (2 * w)
    q = np.array([1.0, 3.0]) / (4 * w)
    ref = 0.5 * np.sum(w * (p - q) ** 2 / (p + q))
    assert triangular_discriminator([1, 1], [1, 3], w, scale=1) == pytest.approx(ref)
    # ...so for counts the widths cancel: the bin fractions' 0.5 (1/2-1/4)^2/(3/4) + 0.5 (1/2-3/4)^2/(5/4)
    assert ref == pytest.approx(expected)
    # densities (normalize=False) are weighed by their widths: the same densities on equal bins differ
    assert triangular_discriminator(p, q, w, scale=1, normalize=False) == pytest.approx(ref)
    assert triangular_discriminator(p, q, [2.0, 2.0], scale=1, normalize=False) != pytest.approx(ref)
    with pytest.raises(ValueError, match="equal shapes"):
        triangular_discriminator([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="q_hist has no positive content"):
        triangular_discriminator([1, 2], [0, 0])


def test_triangular_discriminator_samples():
    x = np.array([0.1, 0.2, 0.6, 0.7, 5.0])  # 5.0 is outside the edges and ignored
    y = np.array([0.1, 0.6, 0.65, 0.8])
    edges = np.array([0.0, 0.5, 1.0, 2.0])
    p = np.array([2, 2, 0]) / (4 * 0.5)
    q = np.array([1, 3, 0]) / (4 * 0.5)
    ref = 0.5 * np.sum(0.5 * (p[:2] - q[:2]) ** 2 / (p[:2] + q[:2]))
    assert triangular_discriminator_samples(x, y, edges, scale=1) == pytest.approx(ref)
    # unequal bins that hold entries: the estimate of 0.5 * integral (p - q)^2 / (p + q) from
    # np.histogram(density=True) (an entry of y moved into the wide bin [1, 2))
    y2 = np.array([0.1, 0.6, 0.65, 1.5])
    px, _ = np.histogram(x, edges, density=True)
    py, _ = np.histogram(y2, edges, density=True)
    ok = px + py > 0
    by_hand = 0.5 * np.sum(np.diff(edges)[ok] * (px[ok] - py[ok]) ** 2 / (px[ok] + py[ok]))
    assert triangular_discriminator_samples(x, y2, edges, scale=1) == pytest.approx(by_hand)
    # weights: doubling every y weight changes nothing after normalisation
    assert triangular_discriminator_samples(x, y, edges, wy=np.full(4, 2.0)) == pytest.approx(1e3 * ref)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=5000), rng.normal(0.5, 1, 5000)
    assert triangular_discriminator_samples(a, b, 20) > triangular_discriminator_samples(a, rng.normal(size=5000), 20)


def test_wasserstein_bootstrap_mean_and_spread():
    assert wasserstein_1d([0, 1], [1, 2]) == pytest.approx(1.0)
    assert wasserstein_1d([0, 1], [0, 1], [1, 0], [0, 1]) == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    x = rng.normal(size=400)
    mean, std = bootstrap(np.mean, x, n=200, seed=1)
    assert mean == pytest.approx(x.mean(), abs=0.02)
    assert std == pytest.approx(x.std() / np.sqrt(len(x)), rel=0.25)
    assert bootstrap(np.mean, x, n=20, seed=5) == bootstrap(np.mean, x, n=20, seed=5)
    # rows stay aligned across arrays; None passes through
    m2, s2 = bootstrap(lambda a, b, w: float(np.mean(a - b)) + (0 if w is None else 1), x, x.copy(), None, n=10)
    assert (m2, s2) == (0.0, 0.0)
    auc_mean, auc_std = bootstrap(lambda y, s: roc_metrics(y, s)["auc"], np.tile(LABELS, 50), np.tile(SCORES, 50), n=10)
    assert 0.7 < auc_mean < 0.92 and auc_std > 0
    with pytest.raises(ValueError, match="common length"):
        bootstrap(np.mean, x, x[:3])
    assert mean_and_spread([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_and_spread([4.0]) == (4.0, 0.0)


def test_max_sic_uses_the_full_roc_curve():
    # perfectly separated scores: every background-efficiency point above the 1e-4 floor has
    # eps_S = 1, so the best SIC is at the smallest eps_B = 1/1000 -> 1/sqrt(1e-3)
    from jetlab.physics.metrics import max_sic

    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(200), np.zeros(1000)]
    scores = np.r_[rng.uniform(2, 3, 200), rng.uniform(0, 1, 1000)]
    assert max_sic(labels, scores) == pytest.approx(1 / np.sqrt(1e-3), rel=1e-6)


def test_two_sample_auc_at_chance_for_one_distribution_and_analytic_for_a_shift():
    """Same Gaussian twice: AUC near 0.5. One column shifted by d = 1 sigma: the optimal classifier's
    AUC is Phi(d / sqrt(2)) = 0.760 (binormal ROC, by hand); the boosted trees must come close."""
    from scipy.stats import norm

    from jetlab.physics.metrics import two_sample_auc

    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(3000, 3)), rng.normal(size=(3000, 3))
    assert abs(two_sample_auc(a, b, seed=1) - 0.5) < 0.04
    shifted = b.copy()
    shifted[:, 1] += 1.0
    assert two_sample_auc(a, shifted, seed=1) == pytest.approx(norm.cdf(1.0 / np.sqrt(2.0)), abs=0.03)
    assert np.isnan(two_sample_auc(a[:1], b[:5]))
    with pytest.raises(ValueError, match="equal columns"):
        two_sample_auc(a, b[:, :2])


def test_binomial_standard_error_by_hand_and_bad_input():
    from jetlab.physics import binomial_standard_error

    # sqrt(0.25 * 0.75 / 300) = sqrt(0.000625) = 0.025; a fraction of 0 or 1 has no scatter
    assert binomial_standard_error(0.25, 300) == pytest.approx(0.025)
    assert binomial_standard_error(1.0, 40) == 0.0
    # it describes the scatter of the fraction over repeated samples of n trials
    rng = np.random.default_rng(0)
    fractions = rng.binomial(400, 0.62, size=20000) / 400
    assert binomial_standard_error(0.62, 400) == pytest.approx(fractions.std(), rel=0.02)
    with pytest.raises(ValueError, match="n must be >= 1"):
        binomial_standard_error(0.5, 0)
    with pytest.raises(ValueError, match=r"fraction must lie in \[0, 1\]"):
        binomial_standard_error(1.2, 10)
