"""The online MMD² detector: exact incremental statistic, calibrated run length, detection."""

import numpy as np
import pytest
import torch

from core.mmd import mmd2_from_kernel
from monitors.online import OnlineMMDDrift


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _run_length(det: OnlineMMDDrift, draw, limit: int) -> int:
    """Tested latents until the first alarm (limit if none)."""
    det.reset()
    for _ in range(det.window - 1):
        det.update(draw())
    for t in range(limit):
        if det.update(draw()).is_drift:
            return t + 1
    return limit


def test_incremental_statistic_equals_direct_mmd2(rng):
    """After every latent, the O(W) update equals MMD² recomputed from scratch on the window."""
    det = OnlineMMDDrift(rng.normal(size=(200, 3)), window=10, ert=30, n_bootstraps=100)
    stream = rng.normal(size=(35, 3)) + 0.3
    for i, x in enumerate(stream):
        s = det.update(x)
        if i < 9:
            assert s.step == -1 and np.isnan(s.statistic)
            continue
        win = torch.from_numpy(stream[i - 9 : i + 1])
        z = torch.cat([win, det.r])
        k = det._k(z, z)
        assert s.statistic == pytest.approx(float(mmd2_from_kernel(k, 10)), rel=1e-9, abs=1e-12)
        # reading the statistic does not add to the stream: score() twice is the same answer
        assert det.score() == det.score() == s and det._seen == i + 1


def test_false_alarms_come_once_per_expected_run_time(rng):
    """On streams from the reference distribution the mean run length to a false alarm is within
    [0.5, 1.5] × ERT over many trials (mean of geometric run lengths: SE ≈ ERT/√trials)."""
    d, ert = 4, 150
    det = OnlineMMDDrift(rng.normal(size=(400, d)), window=20, ert=ert, seed=1)
    lengths = [_run_length(det, lambda: rng.normal(size=d), 20 * ert) for _ in range(60)]
    assert 0.5 * ert <= np.mean(lengths) <= 1.5 * ert, np.mean(lengths)


def test_a_shift_is_detected_quickly(rng):
    d, ert = 4, 150
    det = OnlineMMDDrift(rng.normal(size=(400, d)), window=20, ert=ert, seed=1)
    delays = [_run_length(det, lambda: rng.normal(size=d) + 1.0, 20 * ert) for _ in range(10)]
    assert max(delays) <= det.window, delays


def test_bad_configuration_and_input_are_refused(rng):
    x = rng.normal(size=(100, 3))
    with pytest.raises(ValueError, match="at least 3 windows"):
        OnlineMMDDrift(x, window=20, ert=40)
    with pytest.raises(ValueError, match="calibration pool"):
        OnlineMMDDrift(x, window=40, ert=400)
    det = OnlineMMDDrift(x, window=5, ert=20, n_bootstraps=50)
    with pytest.raises(ValueError, match="finite"):
        det.update(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"\[3\]"):
        det.update(np.zeros(4))
