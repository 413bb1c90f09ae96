"""FGSM: x* = x + ε · sign(∇_x ℓ(f(x), y)) (003 eq. 5; Goodfellow et al. 2015)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

#: loss(logits [N, K], target [N]) → per-sample losses [N]
LossFn = Callable[[Tensor, Tensor], Tensor]


def input_gradient(
    model: nn.Module, x: Tensor, target: Tensor, loss_fn: LossFn, extra: tuple[Tensor, ...] = ()
) -> Tensor:
    """∇_x of the summed per-sample loss, [N, C, H, W]; the model's parameters get no gradient."""
    x = x.detach().requires_grad_(True)
    loss = loss_fn(model(x, *extra), target).sum()
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def clamp(x: Tensor, bounds: tuple[float, float] | None) -> Tensor:
    """x [N, C, H, W] (any shape) clipped to ``bounds`` (input units); x itself for None."""
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


def fgsm(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    eps: float,
    loss_fn: LossFn,
    *,
    extra: tuple[Tensor, ...] = (),
    targeted: bool = False,
    bounds: tuple[float, float] | None = None,
) -> Tensor:
    """One signed-gradient step of size ``eps`` (input units) on images x [N, C, H, W].

    Untargeted, ``target`` is the true label and the loss is increased; targeted, ``target`` is
    the wanted label and the loss is decreased. ``extra`` are further model inputs (E(B−V) [N, 1]).
    The model is used as it is (call ``model.eval()`` first for inference-mode batch norm).
    Returns the perturbed images, detached, within ``bounds`` when given.
    """
    if eps < 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    grad = input_gradient(model, x, target, loss_fn, extra)
    step = -eps if targeted else eps
    return clamp(x.detach() + step * grad.sign(), bounds).detach()
