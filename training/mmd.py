"""Maximum mean discrepancy with Gaussian kernels — one implementation for training and monitors.

002 eq. 2 aligns the Y10 and Y1 latent distributions by minimising MMD² with a sum of Gaussian
RBF kernels k(θ, θ′) = Σ_σ exp(−‖θ − θ′‖² / 2σ²). Two ways to choose the widths σ:

* ``"multi"`` — the fixed multi-bandwidth set of the domain-adaptation literature
  (``FIXED_SIGMAS``, 1e-6 … 1e6, Bousmalis et al. 2016), which DeepMerge and 002 build on; wide
  enough that some kernel is sensitive whatever the latent scale;
* ``"median"`` — one kernel with the median heuristic, σ² = median‖θ_i − θ_j‖² / 2 over the
  pooled sample (Gretton et al. 2012), scale-free.

``mmd2`` is the unbiased U-statistic of Gretton et al. (2012, eq. 3): the within-sample means
leave out the diagonal; it can be slightly negative when the two samples come from one
distribution. For equal sample sizes 002 eq. 2 is the same statistic except that it also leaves
out the cross pairs i = j (an equally unbiased variant). Everything works on torch tensors so the
training loss is differentiable; the permutation test of ``monitors/`` reuses ``kernel_matrix``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

Bandwidth = Literal["multi", "median"]
#: Kernel widths of the multi-bandwidth kernel, in latent units.
FIXED_SIGMAS: tuple[float, ...] = (
    1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 100.0,
    1e3, 1e4, 1e5, 1e6,
)  # fmt: skip


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """[N, M] squared Euclidean distances between the rows of x [N, D] and y [M, D]."""
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return d2.clamp_min(0.0)


def median_sigma(d2: Tensor) -> Tensor:
    """Median-heuristic width σ = sqrt(median(d²) / 2) over the off-diagonal entries of a pooled
    [N, N] squared-distance matrix (zero distances, e.g. duplicates, are left out)."""
    off = d2[~torch.eye(len(d2), dtype=torch.bool, device=d2.device)]
    off = off[off > 0]
    if off.numel() == 0:
        raise ValueError("median heuristic undefined: all latent vectors are identical")
    return (off.median() / 2.0).sqrt()


def sigmas_for(d2: Tensor, bandwidth: Bandwidth | Sequence[float]) -> Tensor:
    """The kernel widths [S] for ``bandwidth``: 'multi', 'median' or explicit values."""
    if isinstance(bandwidth, str):
        if bandwidth == "multi":
            return torch.tensor(FIXED_SIGMAS, dtype=d2.dtype, device=d2.device)
        if bandwidth == "median":
            return median_sigma(d2.detach())[None]
        raise ValueError(
            f"bandwidth must be 'multi', 'median' or a list of widths, got {bandwidth!r}"
        )
    sig = torch.as_tensor(list(bandwidth), dtype=d2.dtype, device=d2.device)
    if sig.ndim != 1 or sig.numel() == 0 or bool((sig <= 0).any()):
        raise ValueError(
            f"kernel widths must be a non-empty list of positive numbers, got {bandwidth!r}"
        )
    return sig


def gaussian_kernel(d2: Tensor, sigmas: Tensor) -> Tensor:
    """Σ_σ exp(−d² / 2σ²), elementwise over a squared-distance matrix (accumulated width by
    width, so memory stays that of one matrix)."""
    out = torch.zeros_like(d2)
    for s in sigmas:
        out = out + torch.exp(-d2 / (2.0 * s * s))
    return out


def kernel_matrix(z: Tensor, bandwidth: Bandwidth | Sequence[float] = "multi") -> Tensor:
    """[N, N] kernel matrix of the pooled sample z [N, D] (computed once, e.g. for permutations)."""
    d2 = squared_distances(z, z)
    # the expansion ‖a‖² + ‖b‖² − 2a·b leaves rounding residue on the diagonal, which the
    # narrowest widths (1e-6) would turn into a kernel value below 1
    d2 = d2 * (1.0 - torch.eye(len(z), dtype=d2.dtype, device=d2.device))
    return gaussian_kernel(d2, sigmas_for(d2, bandwidth))


def mmd2_from_kernel(k: Tensor, n_x: int) -> Tensor:
    """Unbiased MMD² from a pooled kernel matrix whose first ``n_x`` rows/columns are sample x."""
    n_y = k.shape[0] - n_x
    if n_x < 2 or n_y < 2:
        raise ValueError(f"need at least two vectors in each sample, got {n_x} and {n_y}")
    kxx, kyy, kxy = k[:n_x, :n_x], k[n_x:, n_x:], k[:n_x, n_x:]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n_x * (n_x - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n_y * (n_y - 1))
    return sxx + syy - 2.0 * kxy.mean()


def mmd2(x: Tensor, y: Tensor, bandwidth: Bandwidth | Sequence[float] = "multi") -> Tensor:
    """Unbiased MMD² between latent samples x [N, D] and y [M, D] (differentiable)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"need two [N, D] samples of equal D, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return mmd2_from_kernel(kernel_matrix(torch.cat([x, y]), bandwidth), len(x))
