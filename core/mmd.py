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

import torch
from torch import Tensor

from core.distances import Bandwidth

#: Kernel widths of the multi-bandwidth kernel, in latent units.
FIXED_SIGMAS: tuple[float, ...] = (
    1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 100.0,
    1e3, 1e4, 1e5, 1e6,
)  # fmt: skip


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """[N, M] squared Euclidean distances between the rows of x [N, D] and y [M, D]."""
    if x.requires_grad or y.requires_grad:
        d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
        return d2.clamp_min(0.0)
    # no gradient wanted (the permutation test): one fused product, in place, no N×M temporaries
    d2 = torch.addmm((y * y).sum(1)[None, :], x, y.T, alpha=-2.0)
    return d2.add_((x * x).sum(1)[:, None]).clamp_min_(0.0)


#: Above this many distinct pairs the median heuristic is taken over a fixed-seed random sample
#: of this many pairs (relative error of the median ≈ 0.1 %); below it, over all of them.
MEDIAN_PAIRS = 2**21


def median_sigma(d2: Tensor) -> Tensor:
    """Median-heuristic width σ = sqrt(median(d²) / 2) over the distinct pairs i < j of a pooled
    [N, N] squared-distance matrix (zero distances, e.g. duplicates, are left out). For
    N(N−1)/2 > ``MEDIAN_PAIRS`` the median is that of a fixed-seed sample of pairs, so the width
    is reproducible and costs O(MEDIAN_PAIRS), not O(N²)."""
    n = len(d2)
    if n * (n - 1) // 2 <= MEDIAN_PAIRS:
        i, j = torch.triu_indices(n, n, 1, device=d2.device)
    else:
        g = torch.Generator().manual_seed(0)
        i = torch.randint(0, n, (MEDIAN_PAIRS,), generator=g)
        j = torch.randint(0, n - 1, (MEDIAN_PAIRS,), generator=g)
        j = j + (j >= i)  # a uniform j ≠ i
        i, j = i.to(d2.device), j.to(d2.device)
    off = d2[i, j]
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


def gaussian_kernel(d2: Tensor, sigmas: Tensor, inplace: bool = False) -> Tensor:
    """Σ_σ exp(−d² / 2σ²), elementwise over a squared-distance matrix d2 [N, M] (latent units²)
    for widths ``sigmas`` [S] (latent units): [N, M], d2's dtype (accumulated width by width, so
    memory stays that of one matrix).

    ``inplace`` (no gradient only): d2 is a scratch buffer the caller gives up; with one width
    the kernel is written into it (no new N×M buffer), with several it serves as the scratch."""
    if d2.requires_grad:
        out = torch.zeros_like(d2)
        for s in sigmas:
            out = out + torch.exp(-d2 / (2.0 * s * s))
        return out
    scale = [-0.5 / float(s) ** 2 for s in sigmas]
    if inplace and len(scale) == 1:
        return d2.mul_(scale[0]).exp_()
    # first width written straight into the result, the others through one scratch buffer
    out = torch.mul(d2, scale[0]).exp_()
    middle, last = scale[1:-1], scale[1:][-1:]
    tmp = torch.empty_like(d2) if middle or (last and not inplace) else None
    for c in middle:
        out.add_(torch.mul(d2, c, out=tmp).exp_())
    for c in last:  # the last width may consume d2 itself
        out.add_((d2.mul_(c) if inplace else torch.mul(d2, c, out=tmp)).exp_())
    return out


def kernel_matrix(z: Tensor, bandwidth: Bandwidth | Sequence[float] = "multi") -> Tensor:
    """[N, N] kernel matrix of the pooled sample z [N, D] (computed once, e.g. for permutations)."""
    d2 = squared_distances(z, z)
    # the expansion ‖a‖² + ‖b‖² − 2a·b leaves rounding residue on the diagonal, which the
    # narrowest widths (1e-6) would turn into a kernel value below 1
    d2 = d2.clone() if d2.requires_grad else d2
    d2.fill_diagonal_(0.0)
    return gaussian_kernel(d2, sigmas_for(d2, bandwidth), inplace=not d2.requires_grad)


def mmd2_from_kernel(k: Tensor, n_x: int) -> Tensor:
    """Unbiased MMD² (a 0-d tensor) from a pooled kernel matrix k [N_x + N_y, N_x + N_y] whose
    first ``n_x`` rows/columns are sample x."""
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
