"""Per-cutout out-of-distribution score: where a latent vector falls among the bundle's reference
latents.

The score of a latent z is the percentile of its distance to the k-th nearest reference latent
among the same distances of the reference latents themselves (each measured leaving itself out):

    d_k(z)  = distance from z to its k-th nearest reference latent
    score   = 100 · #{r in reference : d_k(r) < d_k(z)} / N_ref        (0 … 100)

A cutout like the training data scores uniformly in [0, 100] (about 5% above 95 by construction),
one far from everything seen in training scores 100. It is a percentile a pipeline can threshold
directly (``score > 99`` flags about 1% of in-distribution cutouts), independent of the latent
space's scale and dimension. k = 10 by default: robust to one odd neighbour, local enough to see
holes between clusters. Distances are Euclidean in the latent space, as 002 §4.1 measures d_E.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.distances import squared_distances


@dataclass
class KnnOodScorer:
    """Fitted on reference latents [N_ref, D]; ``score`` maps latents [N, D] to percentiles [N]."""

    reference: np.ndarray
    k: int = 10

    def __post_init__(self) -> None:
        ref = np.asarray(self.reference, dtype=np.float64)
        if ref.ndim != 2 or len(ref) < 2:
            raise ValueError(f"reference latents must be [N_ref >= 2, D], got shape {ref.shape}")
        self.reference = ref
        self.k = min(self.k, len(ref) - 1)  # a tiny reference set (tests) caps k
        d2 = squared_distances(ref, ref)
        np.fill_diagonal(d2, np.inf)  # leave each reference out of its own neighbours
        self._ref_kth = np.sort(np.sqrt(np.partition(d2, self.k - 1, axis=1)[:, self.k - 1]))

    def kth_distance(self, latents: np.ndarray) -> np.ndarray:
        """[N] distance of each latent [N, D] to its k-th nearest reference latent."""
        z = np.asarray(latents, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.reference.shape[1]:
            raise ValueError(f"latents must be [N, {self.reference.shape[1]}], got shape {z.shape}")
        d2 = squared_distances(z, self.reference)
        return np.sqrt(np.partition(d2, self.k - 1, axis=1)[:, self.k - 1])

    def score(self, latents: np.ndarray) -> np.ndarray:
        """[N] OOD percentiles in [0, 100] (module docstring)."""
        d = self.kth_distance(latents)
        return 100.0 * np.searchsorted(self._ref_kth, d, side="left") / len(self._ref_kth)
