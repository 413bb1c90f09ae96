"""Scores as the seeds define them, on hand-checkable cases."""

import numpy as np
import pytest

from training.metrics import (
    binary_scores,
    bootstrap_intervals,
    classification_scores,
    pdf_mean,
    photoz_scores,
)


def test_weighted_scores_and_confusion():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    s = classification_scores(y, p, 3)
    assert s["accuracy"] == pytest.approx(6 / 8)
    assert s["confusion"] == [[3, 1, 0], [0, 2, 0], [1, 0, 1]]
    # weighted recall equals accuracy; weighted precision by hand: (4·3/4 + 2·2/3 + 2·1) / 8
    assert s["recall"] == pytest.approx(6 / 8)
    assert s["precision"] == pytest.approx((4 * 0.75 + 2 * 2 / 3 + 2 * 1.0) / 8)


def test_binary_completeness_purity_auc():
    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    s = binary_scores(y, p)
    assert s["completeness"] == pytest.approx(2 / 3) and s["purity"] == pytest.approx(2 / 3)
    assert s["auc"] == pytest.approx(8 / 9)


def test_bootstrap_interval_covers_and_narrows_with_n():
    rng = np.random.default_rng(0)

    def interval(n):
        y = rng.integers(0, 2, n)
        p = np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)
        ci = bootstrap_intervals(lambda i: binary_scores(y[i], p[i]), n, n_boot=300)
        return ci["accuracy"], binary_scores(y, p)["accuracy"]

    (lo_s, hi_s), acc_s = interval(100)
    (lo_l, hi_l), acc_l = interval(2000)
    assert lo_s <= acc_s <= hi_s and lo_l <= acc_l <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 2.5  # ∝ 1/√n


def test_photoz_scores_of_003():
    z_spec = np.array([0.1, 0.2, 0.3, 0.1])
    z_phot = np.array([0.1, 0.2 + 1.2 * 0.01, 0.3, 0.1 + 1.1 * 0.2])  # δz = 0, 0.01, 0, 0.2
    s = photoz_scores(z_phot, z_spec)
    assert s["bias"] == pytest.approx(0.21 / 4)
    assert s["eta"] == pytest.approx(0.25)
    assert s["sigma_mad"] == pytest.approx(
        1.4826 * np.median(np.abs([0, 0.01, 0, 0.2] - np.float64(0.005)))
    )


def test_pdf_mean_of_a_two_bin_pdf():
    edges = np.linspace(0, 0.4, 181)
    pdf = np.zeros((1, 180))
    pdf[0, 10], pdf[0, 20] = 0.5, 0.5
    centres = 0.5 * (edges[1:] + edges[:-1])
    assert pdf_mean(pdf, edges)[0] == pytest.approx((centres[10] + centres[20]) / 2)
