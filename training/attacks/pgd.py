"""PGD: iterated gradient steps projected on the ε-ball (003 eqs. 6–9; Madry et al. 2018).

L∞ (003 eq. 7): δ ← P∞_ε[δ + α sign(∇_δ ℓ)], P∞ clipping each pixel to [−ε, ε].
L2 (003 eqs. 8–9): δ ← P2_ε[δ + α ∇_δ ℓ / ‖∇_δ ℓ‖₂], P2_ε(δ) = ε δ / max(ε, ‖δ‖₂), norms taken
per image over all bands and pixels. 003 prints ‖ℓ‖₂ in the denominator of eq. 8; the normalised
gradient is what the method needs (a step of length α), so that is what is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from .fgsm import LossFn, clamp, input_gradient

Norm = Literal["linf", "l2"]


def _per_image_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def project(delta: Tensor, eps: float, norm: Norm) -> Tensor:
    """Project perturbations [N, ...] onto the ε-ball of ``norm``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / torch.maximum(_per_image_norm(delta), torch.tensor(eps)))


def pgd(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    eps: float,
    alpha: float,
    n_iter: int,
    loss_fn: LossFn,
    *,
    norm: Norm = "linf",
    extra: tuple[Tensor, ...] = (),
    targeted: bool = False,
    random_start: bool = False,
    bounds: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, Tensor], None] | None = None,
) -> Tensor:
    """``n_iter`` steps of size ``alpha`` inside the ``norm`` ball of radius ``eps`` around x.

    x [N, C, H, W] in model-input units; ``target`` as for ``fgsm``. ``random_start`` begins from
    a uniform point of the L∞ ball (or a uniform direction at a uniform radius for L2), drawn with
    ``generator`` (seeded runs). ``on_step(k, x_k)``, when given, sees the perturbed images after
    each step k = 1 … n_iter (e.g. to record when each image first flips). Returns perturbed images, detached, within ``bounds``.
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if eps < 0 or alpha <= 0 or n_iter < 1:
        raise ValueError(f"need eps >= 0, alpha > 0, n_iter >= 1; got {eps}, {alpha}, {n_iter}")
    x = x.detach()
    if random_start:
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        if norm == "linf":
            delta = eps * (2 * u - 1)
        else:
            d = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            r = torch.rand((len(x),), generator=generator, dtype=x.dtype).to(x.device)
            delta = d / _per_image_norm(d) * (eps * r).view(-1, *([1] * (x.ndim - 1)))
    else:
        delta = torch.zeros_like(x)
    step = -alpha if targeted else alpha
    adv = clamp(x + delta, bounds)
    if norm == "linf":
        # P∞ then the valid range is one clamp to their intersection (x lies in both), so a step
        # is three tensor operations (sign, add, clamp), each a new tensor: ``on_step`` may keep it.
        lo, hi = clamp(x - eps, bounds), clamp(x + eps, bounds)
    for k in range(1, n_iter + 1):
        grad = input_gradient(model, adv, target, loss_fn, extra)
        if norm == "linf":
            adv = torch.clamp(torch.add(adv, grad.sign(), alpha=step), lo, hi)
        else:
            delta = project(adv - x + step * grad / _per_image_norm(grad), eps, norm)
            adv = clamp(x + delta, bounds)
        if on_step is not None:
            on_step(k, adv)
    return adv
