"""Grad-CAM heat maps (Selvaraju et al. 2017) as 004 App. B uses them, and the confusion-matrix
examples 004 Fig. 6 shows them for.

004 eqs. B.1–B.2: with A^k [m, n] the K feature maps of the last convolutional layer and y^c the
score of class c, the weight of map k is the spatial mean of ∂y^c/∂A^k, and the map is
ReLU(Σ_k α_k^c A^k). We then upsample it bilinearly to the input size and divide it by its maximum,
so each image's map lies in [0, 1] (a map that is zero everywhere stays zero).

The class score. Selvaraju's y^c is the pre-softmax score, but logits are defined only up to a
constant per image: DeepShadows returns (0, z), whose first "score" never moves. We use the
centred logit y^c − mean_j y^j. For two classes this is ±z/2, a positive multiple of the gradient
of the probability 004 differentiates ("the output score (probability) for the class c"), so the
normalised maps are the same; unlike the probability it does not saturate (in float32, σ(z) = 1
for z ≳ 17, and its gradient is then 0) on the confident examples 004 Fig. 6 picks.

The feature maps. 004's Keras conv layers include their ReLU, so A^k ≥ 0. Our DeepShadows applies
``F.relu`` as a function between ``conv3`` and ``bn3``; for it the default layer is therefore the
input of ``bn3``, i.e. relu(conv3(x)) — 004's last conv layer output. For other networks the
default is the output of the last ``nn.Conv2d`` in registration order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models.deepshadows import DeepShadows

#: 004's names of the binary confusion cells (true, predicted), label 1 = LSBG = positive.
CELL_NAMES: dict[tuple[int, int], str] = {(0, 0): "TN", (0, 1): "FP", (1, 0): "FN", (1, 1): "TP"}


def grad_cam(
    model: nn.Module,
    x: np.ndarray | Tensor,
    target_class: int | np.ndarray | None = None,
    layer: nn.Module | str | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Grad-CAM maps [N, H, W] in [0, 1] of preprocessed images ``x`` [N, C, H, W].

    model : a classifier returning logits [N, K], K ≥ 2 (any network taking one input; photo-z
        networks, which also take E(B−V), are not supported). Left in eval mode.
    target_class : the class c explained — an int for all images, an array [N], or None for
        each image's predicted class (argmax of the logits).
    layer : the module whose output holds the feature maps [N, K', m, n] (a module or its name in
        ``model.named_modules()``); None for the default described in the module docstring.
    batch_size : images per forward/backward pass.

    Runs on the model's device. Hooks are removed and no parameter ``.grad`` is written, also when
    an error is raised.
    """
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    if x.ndim != 4:
        raise ValueError(f"x must be images [N, C, H, W], got shape {tuple(x.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n, _, height, width = x.shape
    targets = None
    if target_class is not None:
        targets = np.asarray(target_class, dtype=np.int64)
        if targets.ndim > 1 or targets.size not in (1, n):
            raise ValueError(
                f"target_class must be an int or an array [{n}], got shape {targets.shape}"
            )
        targets = np.broadcast_to(targets, (n,)).copy()
    module, use_input = _feature_layer(model, layer)
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    out = np.empty((n, height, width), dtype=np.float32)
    with _capture(module, use_input) as captured, torch.enable_grad():
        for start in range(0, n, batch_size):
            xb = x[start : start + batch_size].to(device=device, dtype=dtype)
            # the input carries the graph even when the parameters are frozen
            xb = xb.detach().requires_grad_(True)
            captured.clear()
            logits = model(xb)
            if len(captured) != 1:
                raise ValueError(
                    f"the Grad-CAM layer ran {len(captured)} times in one forward pass; "
                    "it must run exactly once"
                )
            feats = captured[0]
            if feats.ndim != 4:
                raise ValueError(
                    f"the Grad-CAM layer must give feature maps [N, K, m, n], got shape "
                    f"{tuple(feats.shape)}"
                )
            if logits.ndim != 2 or logits.shape[1] < 2:
                raise ValueError(
                    f"the model must return logits [N, K] with K >= 2, got {tuple(logits.shape)}"
                )
            k = logits.shape[1]
            if targets is None:
                tb = logits.argmax(1)
            else:
                tb = torch.as_tensor(targets[start : start + len(xb)], device=logits.device)
                if tb.min() < 0 or tb.max() >= k:
                    bad = sorted({int(t) for t in tb.tolist() if not 0 <= t < k})
                    raise ValueError(f"target_class must lie in [0, {k - 1}], got {bad}")
            centred = logits - logits.mean(1, keepdim=True)
            score = centred.gather(1, tb[:, None]).sum()
            # autograd.grad writes no .grad on the parameters (nor on xb)
            (grads,) = torch.autograd.grad(score, feats)
            weights = grads.mean(dim=(2, 3), keepdim=True)  # α_k^c, eq. B.1
            cam = F.relu((weights * feats).sum(1, keepdim=True))  # eq. B.2
            cam = F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)
            cam = cam[:, 0].detach().clamp_min(0)
            peak = cam.amax(dim=(1, 2), keepdim=True)
            cam = torch.where(peak > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny), 0.0)
            out[start : start + len(xb)] = cam.cpu().numpy()
    return out


def confusion_cell_examples(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_per_cell: int,
    seed: int = 0,
    eligible: np.ndarray | None = None,
    num_classes: int | None = None,
) -> dict[tuple[int, int], np.ndarray]:
    """Indices of at most ``n_per_cell`` objects in each confusion-matrix cell (true, predicted),
    drawn without replacement with ``seed`` and sorted; empty arrays for empty cells.

    y_true, y_pred : integer labels [N]. eligible : optional boolean mask [N] of the objects that
    may be drawn (004 Fig. 6 shows only confident ones: P_out > 0.8 or < 0.2).
    num_classes : K, so cells run over K × K (default: 1 + the largest label, at least 2; the
    binary cells are named in ``CELL_NAMES``).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must be label arrays [N] of one length, got shapes "
            f"{y_true.shape} and {y_pred.shape}"
        )
    if n_per_cell < 0:
        raise ValueError(f"n_per_cell must be non-negative, got {n_per_cell}")
    mask = np.ones(len(y_true), bool) if eligible is None else np.asarray(eligible, bool)
    if mask.shape != y_true.shape:
        raise ValueError(f"eligible must be a boolean mask [{len(y_true)}], got {mask.shape}")
    if num_classes is None:
        num_classes = max(2, int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1)
    rng = np.random.default_rng(seed)
    cells = {}
    for t in range(num_classes):
        for p in range(num_classes):
            members = np.flatnonzero(mask & (y_true == t) & (y_pred == p))
            take = min(n_per_cell, members.size)
            cells[(t, p)] = np.sort(rng.choice(members, size=take, replace=False))
    return cells


def _feature_layer(model: nn.Module, layer: nn.Module | str | None) -> tuple[nn.Module, bool]:
    """(module, whether its *input* rather than its output holds the feature maps)."""
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"model has no module named {layer!r}")
        return modules[layer], False
    if layer is not None:
        return layer, False
    if isinstance(model, DeepShadows):
        return model.bn3, True  # bn3(relu(conv3(x))): its input is 004's last conv output
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model has no nn.Conv2d; pass the Grad-CAM layer explicitly")
    return convs[-1], False


@contextmanager
def _capture(module: nn.Module, use_input: bool) -> Iterator[list[Tensor]]:
    """Collect the module's output (or first input) on each forward call; the hook is removed on
    exit, error or not."""
    captured: list[Tensor] = []
    if use_input:
        handle = module.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    else:
        handle = module.register_forward_hook(lambda _m, _a, out: captured.append(out))
    try:
        yield captured
    finally:
        handle.remove()
