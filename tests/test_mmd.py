"""MMD² (002 eq. 2): zero in expectation on one distribution, positive under a shift, and its
two bandwidth rules behave as documented."""

import pytest
import torch

from core.mmd import FIXED_SIGMAS, kernel_matrix, mmd2, mmd2_from_kernel, squared_distances

BANDWIDTHS = ["multi", "median", [0.5, 2.0]]


def _sample(n, d=16, shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


@pytest.mark.parametrize("bandwidth", BANDWIDTHS, ids=str)
def test_unbiased_under_the_null_and_positive_under_a_shift(bandwidth):
    null = torch.stack(
        [mmd2(_sample(60, seed=s), _sample(60, seed=1000 + s), bandwidth) for s in range(40)]
    )
    # unbiased: the mean over independent same-distribution pairs is zero within its error
    assert abs(null.mean()) < 3 * null.std() / 40**0.5
    assert (null < 0).any()  # a U-statistic, not a squared norm
    shifted = mmd2(_sample(60, seed=1), _sample(60, shift=0.5, seed=2), bandwidth)
    assert shifted > null.mean() + 5 * null.std()


def test_matches_the_textbook_formula():
    x, y = _sample(7, 3, seed=1), _sample(5, 3, shift=0.3, seed=2)
    k = lambda a, b: sum(torch.exp(-((a - b) ** 2).sum() / (2 * s**2)) for s in (0.7, 3.0))  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(5)) / 35
    torch.testing.assert_close(mmd2(x, y, [0.7, 3.0]), xx + yy - 2 * xy)


def test_median_heuristic_is_scale_free_and_multi_is_not():
    x, y = _sample(50, seed=3), _sample(50, shift=0.4, seed=4)
    torch.testing.assert_close(mmd2(x, y, "median"), mmd2(100 * x, 100 * y, "median"))
    assert not torch.isclose(mmd2(x, y, "multi"), mmd2(100 * x, 100 * y, "multi"))


def test_kernel_matrix_is_shared_with_the_permutation_test():
    x, y = _sample(20, seed=5), _sample(30, seed=6)
    k = kernel_matrix(torch.cat([x, y]))
    assert k.shape == (50, 50) and torch.allclose(k, k.T)
    torch.testing.assert_close(
        k.diagonal(), torch.full((50,), float(len(FIXED_SIGMAS)), dtype=k.dtype)
    )
    torch.testing.assert_close(mmd2_from_kernel(k, 20), mmd2(x, y))
    assert torch.all(squared_distances(x, x).diagonal() < 1e-9)


def test_gradient_reaches_the_latents():
    x = _sample(10, seed=7).requires_grad_()
    mmd2(x, _sample(10, shift=1.0, seed=8)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((_sample(1), _sample(5)), "at least two vectors"),
        ((_sample(5, 3), _sample(5, 4)), "equal D"),
        ((_sample(5), _sample(5), "silverman"), "bandwidth must be"),
        ((_sample(5), _sample(5), [1.0, -2.0]), "positive numbers"),
        ((torch.zeros(4, 3), torch.zeros(4, 3), "median"), "all latent vectors are identical"),
    ],
)
def test_bad_input_is_refused_with_a_message(args, match):
    with pytest.raises(ValueError, match=match):
        mmd2(*args)


def test_numpy_distances_and_width_agree_with_torch():
    """core.distances (numpy, for the processes without torch) gives core.mmd's numbers."""
    import numpy as np

    from core import distances
    from core.mmd import median_sigma, squared_distances

    x, y = _sample(300, 16, seed=3), _sample(40, 16, seed=4, shift=0.5)
    np.testing.assert_allclose(
        distances.squared_distances(x.numpy(), y.numpy()), squared_distances(x, y).numpy(),
        rtol=1e-10, atol=1e-10,
    )  # fmt: skip
    assert distances.median_sigma(x.numpy()) == pytest.approx(
        float(median_sigma(squared_distances(x, x))), rel=1e-12
    )
    with pytest.raises(ValueError, match="identical"):
        distances.median_sigma(np.ones((5, 3)))
