"""Pairwise squared distances and the median-heuristic width in numpy, for the parts of the
runtime that must not import torch (the OOD scorer in every gateway worker, the Spark driver's
drift test). ``core.mmd`` holds the torch versions the training loss and the permutation test use;
the two agree to rounding (``tests/test_mmd.py``)."""

from __future__ import annotations

from typing import Literal

import numpy as np

#: How MMD kernel widths are chosen (``core.mmd``): 002's fixed multi-bandwidth set, or the
#: median heuristic.
Bandwidth = Literal["multi", "median"]


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, M] squared Euclidean distances between the rows of a [N, D] and b [M, D], clipped at 0
    (the expansion ‖a‖² + ‖b‖² − 2a·b leaves small negative rounding residue)."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def median_sigma(x: np.ndarray) -> float:
    """Median-heuristic width σ = sqrt(median(d²) / 2) over the distinct pairs i < j of the rows
    of x [N, D] with d > 0, in x's units; the lower median for an even count, as torch takes it
    (``core.mmd.median_sigma``, which samples pairs above ``MEDIAN_PAIRS``; this one is meant for
    the few thousand latents a bundle keeps)."""
    x = np.asarray(x, dtype=np.float64)
    d2 = squared_distances(x, x)[np.triu_indices(len(x), 1)]
    d2 = d2[d2 > 0]
    if d2.size == 0:
        raise ValueError("median heuristic undefined: all latent vectors are identical")
    lower_median = np.partition(d2, (d2.size - 1) // 2)[(d2.size - 1) // 2]
    return float(np.sqrt(lower_median / 2.0))
