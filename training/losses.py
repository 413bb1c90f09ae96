"""Training losses of the seeds: weighted cross-entropy (002 eq. 1) and the photo-z cross-entropy
against the one-hot redshift bin (003 §2). MMD (002 eq. 2) lives in ``core.mmd``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: Photo-z output: 180 bins over [0, z_max] (Pasquet et al. 2019; 003 §2 uses z_max = 0.4 here).
N_Z_BINS = 180


def class_weights(labels: np.ndarray, num_classes: int) -> Tensor:
    """[K] weights w_m = N / (K n_m) of 002 eq. 1 from the training labels [N].

    Raises ``ValueError`` if a class has no example (its weight would be infinite).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    if len(counts) > num_classes or (counts == 0).any():
        raise ValueError(
            f"every class 0..{num_classes - 1} needs examples, got counts {counts.tolist()}"
        )
    return torch.as_tensor(counts.sum() / (num_classes * counts), dtype=torch.float32)


def weighted_cross_entropy(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """002 eq. 1: −Σ_i w_{y_i} log p_i(y_i) / Σ_i w_{y_i} over the batch (logits [N, K])."""
    return F.cross_entropy(logits, labels, weight=weights.to(logits.device))


def z_bin_edges(z_max: float = 0.4, n_bins: int = N_Z_BINS) -> np.ndarray:
    """[n_bins + 1] redshift bin edges over [0, z_max]."""
    if z_max <= 0 or n_bins < 2:
        raise ValueError(
            f"need z_max > 0 and at least two bins, got z_max={z_max}, n_bins={n_bins}"
        )
    return np.linspace(0.0, z_max, n_bins + 1)


def z_to_bin(z: np.ndarray | Tensor, edges: np.ndarray) -> Tensor:
    """Bin index [N] of each redshift; z outside [edges[0], edges[-1]] raises ``ValueError``."""
    z = torch.as_tensor(z, dtype=torch.float64)
    if bool(((z < edges[0]) | (z > edges[-1])).any()):
        raise ValueError(f"redshifts outside the binned range [{edges[0]}, {edges[-1]}]")
    idx = torch.bucketize(z, torch.as_tensor(edges[1:-1], dtype=torch.float64), right=True)
    return idx.to(torch.int64)


def photoz_cross_entropy(logits: Tensor, z: Tensor, edges: np.ndarray) -> Tensor:
    """003 §2: cross-entropy between the 180-bin output (logits [N, B]) and the one-hot bin of z."""
    return F.cross_entropy(logits, z_to_bin(z, edges).to(logits.device))


def per_sample_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Unweighted cross-entropy per sample [N] (the loss attacks ascend): target is a class index,
    or for photo-z the redshift-bin index (``z_to_bin``)."""
    return F.cross_entropy(logits, target, reduction="none")
