"""Windowed MMD² two-sample test of recent latents against a bundle's reference latents.

The statistic is the unbiased MMD² of 002 eq. 2 (``core.mmd``: the same kernels as the
``mmd`` training recipe — the fixed multi-bandwidth Gaussian set, or the median heuristic). Its
null distribution comes from permutations of the pooled sample, and the p-value counts the
observed statistic among them, (1 + #{perm ≥ observed}) / (1 + P), so it is never 0 and a test at
level α rejects a true null with probability at most α.

All permutations are evaluated at once from one kernel matrix K [n, n] of the pooled sample: with
the permutations' membership indicators S [P, n] (1 for the first sample), the three kernel sums
of every permutation are quadratic forms,

    Σ_XX = diag(S K₀ Sᵀ),  Σ_YY = diag((1−S) K₀ (1−S)ᵀ),  Σ_XY = diag(S K (1−S)ᵀ),

K₀ being K with a zero diagonal (the unbiased estimator leaves out i = j). One matrix product
K Sᵀ [n, P] gives diag(S K Sᵀ); with the row sums and the diagonal of K the three sums follow
(Σ_XY = S·rowsum − diag(S K Sᵀ), and so on), instead of one re-indexed n×n matrix per
permutation.

``score`` returns numbers, ``predict`` decides; publishing to Prometheus is separate
(``monitors.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from core.mmd import Bandwidth, gaussian_kernel, sigmas_for, squared_distances

#: Reference sets up to this size keep their [N_ref, N_ref] squared distances between tests
#: (8,192 → 256 MiB in float32, 512 MiB in float64); larger ones recompute them every test.
REF_CACHE_MAX = 8192


@dataclass(frozen=True)
class DriftScore:
    """statistic : MMD² of the window against the reference; p_value : permutation p-value;
    threshold : the statistic's (1 − α) permutation quantile (the value a window must exceed to
    be called drift at level α); n_ref, n : sample sizes."""

    statistic: float
    p_value: float
    threshold: float
    n_ref: int
    n: int


def permutation_mmd2(
    k: torch.Tensor, n_x: int, n_permutations: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased MMD² of the split (first ``n_x`` | rest) of a pooled kernel matrix k [n, n], and of
    ``n_permutations`` random relabellings of it: (observed [], permuted [P])."""
    n = k.shape[0]
    n_y = n - n_x
    if n_x < 2 or n_y < 2:
        raise ValueError(f"need at least two vectors in each sample, got {n_x} and {n_y}")
    # row 0 is the observed split, rows 1.. random ones: a random permutation's first n_x members
    s = torch.zeros((n_permutations + 1, n), dtype=k.dtype, device=k.device)
    s[0, :n_x] = 1
    order = torch.argsort(torch.rand((n_permutations, n), generator=generator), dim=1)
    s[1:].scatter_(1, order[:, :n_x].to(k.device), 1.0)
    # one product: a = Σ_{i,j ∈ X} K_ij (diagonal included); the other two sums follow from the
    # row sums r and the diagonal d of K, so K is neither copied nor multiplied again
    a = (s.T * (k @ s.T)).sum(0)
    r, d = k.sum(1), torch.diagonal(k)
    r_x, d_x = s @ r, s @ d
    sxx = a - d_x
    syy = r.sum() - 2.0 * r_x + a - (d.sum() - d_x)
    sxy = r_x - a
    stats = sxx / (n_x * (n_x - 1)) + syy / (n_y * (n_y - 1)) - 2.0 * sxy / (n_x * n_y)
    return stats[0], stats[1:]


class MMDDrift:
    """Permutation MMD² test of windows of latents against reference latents.

    x_ref : np.ndarray  # [N_ref, D] reference latents (the bundle's held-out source latents)
    bandwidth : "multi" (002's fixed widths) or "median" (the pooled sample's median heuristic)
    n_permutations : P, permutations per test
    alpha : level of ``predict``
    seed : seeds the permutations (each ``score`` call draws new ones from the same stream)
    precision : "float32" (default: the latents' own precision) or "float64" for the kernel
        matrix and the permutation product. float32 is faster and takes half the memory; the
        rounding it adds to the statistic is far inside the spread of its permutation
        distribution, so the p-values stay the same (figures: docs/benchmarks.md, monitoring)
    """

    def __init__(
        self,
        x_ref: np.ndarray,
        bandwidth: Bandwidth = "median",
        n_permutations: int = 200,
        alpha: float = 0.05,
        seed: int = 0,
        device: str = "cpu",
        precision: Literal["float32", "float64"] = "float32",
    ) -> None:
        x_ref = np.asarray(x_ref, dtype=np.float32)
        if x_ref.ndim != 2 or len(x_ref) < 2:
            raise ValueError(f"x_ref must be [N_ref >= 2, D], got shape {x_ref.shape}")
        if not np.all(np.isfinite(x_ref)):
            raise ValueError("x_ref contains invalid values (NaNs or infs)")
        if n_permutations < 1 or not 0 < alpha < 1:
            raise ValueError(
                f"need n_permutations >= 1 and 0 < alpha < 1, got {n_permutations}, {alpha}"
            )
        if precision not in ("float64", "float32"):
            raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
        self.x_ref = torch.from_numpy(x_ref).to(device, getattr(torch, precision))
        # the reference block of every pooled distance matrix, computed once (below the cap)
        self._d2_ref = None
        if len(x_ref) <= REF_CACHE_MAX:
            self._d2_ref = squared_distances(self.x_ref, self.x_ref).fill_diagonal_(0.0)
        self.bandwidth = bandwidth
        self.n_permutations = n_permutations
        self.alpha = alpha
        self.generator = torch.Generator().manual_seed(seed)

    def score(self, x: np.ndarray) -> DriftScore:
        """The test of window x [N, D] against the reference (numbers only)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.x_ref.shape[1]:
            raise ValueError(f"x must be [N, {self.x_ref.shape[1]}], got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x contains invalid values (NaNs or infs)")
        d2 = self._pooled_distances(torch.from_numpy(x).to(self.x_ref))
        k = gaussian_kernel(d2, sigmas_for(d2, self.bandwidth), inplace=True)
        observed, permuted = permutation_mmd2(
            k, len(self.x_ref), self.n_permutations, self.generator
        )
        permuted = permuted.double()
        p = (1.0 + float((permuted >= observed).sum())) / (1.0 + self.n_permutations)
        threshold = float(torch.quantile(permuted, 1.0 - self.alpha))
        return DriftScore(float(observed), p, threshold, len(self.x_ref), len(x))

    def _pooled_distances(self, x: torch.Tensor) -> torch.Tensor:
        """[n, n] squared distances of the pooled sample (reference rows first, then x [N, D]),
        zero diagonal. The reference block comes from the cache; the window's rows are one
        product against the pooled sample and the reference-window block one more product
        (cheaper than copying the transpose of the other: BLAS writes the strided block in
        place) — ¾ of the full product's work, ¼ of it done once per reference."""
        n_r = len(self.x_ref)
        z = torch.cat([self.x_ref, x])
        zz = (z * z).sum(1)
        d2 = torch.empty((len(z), len(z)), dtype=z.dtype, device=z.device)
        rows, upper = d2[n_r:], d2[:n_r, n_r:]  # views: the products write into d2
        torch.addmm(zz[None, :], x, z.T, alpha=-2.0, out=rows)
        rows.add_(zz[n_r:, None]).clamp_min_(0.0)
        rows[:, n_r:].fill_diagonal_(0.0)
        torch.addmm(zz[None, n_r:], self.x_ref, x.T, alpha=-2.0, out=upper)
        upper.add_(zz[:n_r, None]).clamp_min_(0.0)
        if self._d2_ref is not None:
            d2[:n_r, :n_r] = self._d2_ref
        else:
            d2[:n_r, :n_r] = squared_distances(self.x_ref, self.x_ref).fill_diagonal_(0.0)
        return d2

    def predict(self, x: np.ndarray) -> dict:
        """``score`` of a window x [N, D] of latents, plus the decision at level ``alpha``:
        drift when p < α."""
        s = self.score(x)
        return {
            "is_drift": bool(s.p_value < self.alpha),
            "p_value": s.p_value,
            "statistic": s.statistic,
            "threshold": s.threshold,
            "alpha": self.alpha,
            "n_ref": s.n_ref,
            "n": s.n,
        }
