"""Weighted cross-entropy (002 eq. 1) and the photo-z one-hot cross-entropy (003 §2)."""

import numpy as np
import pytest
import torch

from training.losses import (
    class_weights,
    photoz_cross_entropy,
    weighted_cross_entropy,
    z_bin_edges,
    z_to_bin,
)


def test_class_weights_follow_002_eq1():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    torch.testing.assert_close(class_weights(labels, 3), torch.tensor([10 / 18, 10 / 9, 10 / 3]))
    with pytest.raises(ValueError, match="needs examples"):
        class_weights(np.array([0, 0, 2]), 3)


def test_weighted_cross_entropy_is_the_weighted_mean_of_per_example_losses():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(8, 3, generator=g), torch.tensor([0, 1, 2, 0, 0, 1, 2, 2])
    w = torch.tensor([0.5, 1.0, 2.0])
    nll = -torch.log_softmax(logits, 1)[torch.arange(8), labels]
    torch.testing.assert_close(
        weighted_cross_entropy(logits, labels, w), (w[labels] * nll).sum() / w[labels].sum()
    )


def test_redshift_bins_and_one_hot_loss():
    edges = z_bin_edges(0.4)
    assert len(edges) == 181 and edges[-1] == pytest.approx(0.4)
    bins = z_to_bin(np.array([0.0, 0.0011, 0.0023, 0.4]), edges)
    assert bins.tolist() == [0, 0, 1, 179]
    logits = torch.full((1, 180), -20.0)
    logits[0, 90] = 20.0
    z = torch.tensor([edges[90] + 1e-4])
    assert photoz_cross_entropy(logits, z, edges) < 1e-6  # confident and right
    assert photoz_cross_entropy(logits, torch.tensor([0.01]), edges) > 30  # confident and wrong
    with pytest.raises(ValueError, match="outside the binned range"):
        z_to_bin(np.array([0.5]), edges)
