"""The permutation MMD² drift test: exact statistics, calibrated p-values, power on a shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.mmd import kernel_matrix, mmd2, mmd2_from_kernel
from monitors.drift import MMDDrift, permutation_mmd2


def test_matrix_product_equals_reindexing(rng):
    """Every permutation's statistic equals MMD² of the re-indexed kernel matrix."""
    z = torch.from_numpy(rng.normal(size=(30, 5)))
    k = kernel_matrix(z, "median")
    gen = torch.Generator().manual_seed(3)
    observed, permuted = permutation_mmd2(k, 12, 7, gen)
    assert float(observed) == pytest.approx(float(mmd2_from_kernel(k, 12)), rel=1e-10)
    assert float(observed) == pytest.approx(float(mmd2(z[:12], z[12:], "median")), rel=1e-10)
    # replay the same draws: the first 12 of each argsort are the first sample
    gen = torch.Generator().manual_seed(3)
    order = torch.argsort(torch.rand((7, 30), generator=gen), dim=1)
    for p in range(7):
        first = order[p, :12]
        rest = torch.tensor([i for i in range(30) if i not in set(first.tolist())])
        idx = torch.cat([first, rest])
        direct = mmd2_from_kernel(k[idx][:, idx], 12)
        assert float(permuted[p]) == pytest.approx(float(direct), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("bandwidth", ["median", "multi"])
def test_no_drift_on_a_copy_and_p_value_agrees_with_decision(rng, bandwidth):
    ref = rng.normal(size=(100, 8))
    det = MMDDrift(ref, bandwidth=bandwidth, n_permutations=99, seed=1)
    s = det.score(ref[:60] + 0.0)
    assert 0 < s.p_value <= 1 and s.p_value > 0.05
    # a window of the same distribution: no drift, and the decision is the statistic against the
    # permutation threshold, which lies above the observed statistic
    out = det.predict(rng.normal(size=(60, 8)))
    assert not out["is_drift"] and out["p_value"] > 0.05, out
    assert out["statistic"] <= out["threshold"]
    # a shifted one: drift, the statistic beyond the threshold
    out = det.predict(rng.normal(size=(60, 8)) + 1.0)
    assert out["is_drift"] and out["p_value"] < 0.05 and out["statistic"] > out["threshold"], out


def test_false_alarm_rate_is_calibrated(rng):
    """Reference and window drawn from one distribution: rejections at α = 0.05 within
    [0.5, 1.5] α over many trials (each trial draws both samples: the permutation test's level
    holds over both; for one fixed reference the rate scatters around α the less, the larger
    the reference)."""
    trials = 300
    rejected = 0
    for t in range(trials):
        det = MMDDrift(rng.normal(size=(80, 4)), n_permutations=99, alpha=0.05, seed=t)
        rejected += det.predict(rng.normal(size=(40, 4)))["is_drift"]
    assert 0.5 * 0.05 <= rejected / trials <= 1.5 * 0.05, rejected


def test_shift_is_detected(rng):
    ref = rng.normal(size=(150, 16))
    det = MMDDrift(ref, n_permutations=199, seed=4)
    hits = [det.predict(rng.normal(size=(100, 16)) + 0.4)["is_drift"] for _ in range(10)]
    assert all(hits)


def test_inputs_are_checked(rng):
    with pytest.raises(ValueError, match=r"x_ref must be \[N_ref >= 2, D\]"):
        MMDDrift(np.zeros(5))
    det = MMDDrift(rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match=r"x must be \[N, 3\], got shape \(4, 2\)"):
        det.score(np.zeros((4, 2)))
    bad = np.zeros((4, 3))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaNs or infs"):
        det.score(bad)


def test_float32_precision_agrees_with_float64(rng):
    """The opt-in float32 kernel gives the float64 statistic to ~1e-4 relative and the same p-value
    (same permutations: same seed)."""
    x_ref = rng.normal(size=(300, 16))
    x = rng.normal(size=(200, 16)) + 0.15
    s64 = MMDDrift(x_ref, seed=3).score(x)
    s32 = MMDDrift(x_ref, seed=3, precision="float32").score(x)
    assert s32.statistic == pytest.approx(s64.statistic, rel=1e-3)
    assert s32.p_value == pytest.approx(s64.p_value, abs=2 / 201)
    with pytest.raises(ValueError, match="precision"):
        MMDDrift(x_ref, precision="float16")


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("bandwidth", ["median", "multi"])
def test_pooled_distances_match_the_full_kernel(rng, monkeypatch, cache, bandwidth):
    """The test's kernel (cached reference block, window rows, their transpose) is the pooled
    sample's kernel matrix, and repeated tests against one reference agree with a fresh one."""
    import monitors.drift as drift
    from core.mmd import gaussian_kernel, sigmas_for

    if not cache:
        monkeypatch.setattr(drift, "REF_CACHE_MAX", 0)
    ref, x = rng.normal(size=(60, 6)), rng.normal(size=(25, 6)) + 0.2
    det = MMDDrift(ref, bandwidth=bandwidth, seed=5)
    assert (det._d2_ref is not None) == cache
    xt = torch.from_numpy(x.astype(np.float32)).to(det.x_ref)
    d2 = det._pooled_distances(xt)
    k = gaussian_kernel(d2, sigmas_for(d2, bandwidth), inplace=True)
    full = kernel_matrix(torch.cat([det.x_ref, xt]), bandwidth)
    torch.testing.assert_close(k, full, rtol=1e-12, atol=1e-12)
    det.score(rng.normal(size=(25, 6)))  # an earlier test leaves the cache as it was
    again = MMDDrift(ref, bandwidth=bandwidth, seed=5).score(x)
    assert det.score(x).statistic == pytest.approx(again.statistic, rel=1e-12)
