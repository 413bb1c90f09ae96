"""The per-cutout OOD percentile: calibrated on fresh draws of the reference distribution,
saturated far from it, scale-free."""

import numpy as np
import pytest

from monitors.ood import KnnOodScorer


def test_in_distribution_scores_are_uniform(rng):
    ref = rng.normal(size=(800, 16))
    fresh = rng.normal(size=(2000, 16))
    s = KnnOodScorer(ref).score(fresh)
    assert s.min() >= 0 and s.max() <= 100
    assert abs(s.mean() - 50) < 4
    assert 0.03 < np.mean(s > 95) < 0.08


def test_far_latents_score_100_and_scale_does_not_matter(rng):
    ref = rng.normal(size=(500, 8))
    far = rng.normal(size=(50, 8)) + 6.0
    assert np.all(KnnOodScorer(ref).score(far) == 100)
    near = rng.normal(size=(200, 8))
    a = KnnOodScorer(ref).score(near)
    b = KnnOodScorer(1e3 * ref).score(1e3 * near)
    np.testing.assert_allclose(a, b)


def test_bad_shapes_are_refused(rng):
    with pytest.raises(ValueError, match=r"\[N_ref >= 2, D\], got shape \(1, 4\)"):
        KnnOodScorer(rng.normal(size=(1, 4)))
    assert KnnOodScorer(rng.normal(size=(5, 4))).k == 4
    with pytest.raises(ValueError, match=r"latents must be \[N, 4\], got shape \(3, 5\)"):
        KnnOodScorer(rng.normal(size=(50, 4))).score(rng.normal(size=(3, 5)))
