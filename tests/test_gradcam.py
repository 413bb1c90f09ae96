"""Grad-CAM (004 App. B) and the confusion-cell examples of 004 Fig. 6."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training.gradcam import CELL_NAMES, confusion_cell_examples, grad_cam
from training.models import build

SIZE = 32
REGION = (slice(4, 12), slice(20, 28))  # rows, columns of the region the score looks at


class RegionNet(nn.Module):
    """A score that depends only on the pixels of ``REGION``: the input is masked there, then a
    stride-2 convolution (feature maps 16 × 16, so the map is upsampled), ReLU and a global sum.
    Logits (−s, s)."""

    def __init__(self) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, SIZE, SIZE)
        mask[0, 0][REGION] = 1.0
        self.register_buffer("mask", mask)
        self.conv = nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1)
        self.drop = nn.Dropout(0.5)
        with torch.no_grad():
            self.conv.weight.uniform_(0.1, 1.0)  # positive: every channel raises the score
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.drop(self.conv(x * self.mask))).sum(dim=(1, 2, 3))[:, None]
        return torch.cat([-s, s], dim=1)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, SIZE, SIZE), generator=gen)


def _assert_clean(model: nn.Module) -> None:
    """No hook left behind, no gradient written on the parameters, eval mode."""
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert all(p.grad is None for p in model.parameters())
    assert not model.training


def test_shape_range_and_clean_model():
    model = RegionNet().train()
    cams = grad_cam(model, _images(5), target_class=1, batch_size=2)
    assert cams.shape == (5, SIZE, SIZE) and cams.dtype == np.float32
    assert cams.min() >= 0.0 and np.allclose(cams.max(axis=(1, 2)), 1.0)
    _assert_clean(model)


def test_peaks_in_the_region_the_score_depends_on():
    cams = grad_cam(RegionNet(), _images(4), target_class=1)
    rows, cols = REGION
    inside = np.zeros((SIZE, SIZE), bool)
    # one feature-map pixel (2 input pixels) of halo: the 3×3 stride-2 kernel and the upsampling
    inside[rows.start - 2 : rows.stop + 2, cols.start - 2 : cols.stop + 2] = True
    for cam in cams:
        assert inside.flat[np.argmax(cam)]
        assert cam[inside].sum() > 0.95 * cam.sum()


def test_class_against_the_evidence_gives_a_zero_map():
    """Class 0's score −s falls with every activation: all weights negative, ReLU leaves 0."""
    cams = grad_cam(RegionNet(), _images(3), target_class=0)
    assert np.all(cams == 0.0)


def test_default_target_is_the_predicted_class():
    model = RegionNet()
    x = _images(3)
    np.testing.assert_array_equal(grad_cam(model, x), grad_cam(model, x, target_class=1))


def test_hooks_removed_on_error():
    model = RegionNet().train()
    with pytest.raises(ValueError, match=r"target_class must lie in \[0, 1\], got \[2\]"):
        grad_cam(model, _images(2), target_class=2)
    _assert_clean(model)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": torch.zeros(3, SIZE, SIZE)}, r"x must be images \[N, C, H, W\]"),
        ({"layer": "nope"}, "model has no module named 'nope'"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
    ],
)
def test_input_errors(kwargs, match):
    args = {"model": RegionNet(), "x": _images(2), **kwargs}
    with pytest.raises(ValueError, match=match):
        grad_cam(**args)


def test_deepshadows_matches_eqs_b1_b2():
    """On the real DeepShadows (64 × 64, batch 2): the default layer is relu(conv3(·)), the
    output of 004's Keras conv3, and the map is eqs. B.1–B.2 computed by hand."""
    torch.manual_seed(0)
    model = build("deepshadows").train()
    x = torch.randn(2, *model.input_shape)
    cams = grad_cam(model, x, batch_size=1)
    assert cams.shape == (2, 64, 64) and cams.min() >= 0 and cams.max() <= 1
    _assert_clean(model)

    h = x
    for conv, bn in ((model.conv1, model.bn1), (model.conv2, model.bn2)):
        h = model.pool(bn(F.relu(conv(h))))
    a = F.relu(model.conv3(h))
    a.retain_grad()
    z = model.out(F.relu(model.fc1(model.pool(model.bn3(a)).flatten(1))))[:, 0]
    sign = torch.where(z > 0, 1.0, -1.0)  # predicted class: LSBG where z > 0
    (sign * z / 2).sum().backward()
    ref = F.relu((a.grad.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
    ref = F.interpolate(ref, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    ref = (ref / ref.amax(dim=(1, 2), keepdim=True)).detach().numpy()
    np.testing.assert_allclose(cams, ref, atol=1e-5)


@pytest.mark.parametrize("n_per_cell", [0, 2, 50])
def test_confusion_cells(n_per_cell):
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    cells = confusion_cell_examples(y_true, y_pred, n_per_cell, seed=3)
    assert set(cells) == set(CELL_NAMES)
    for (t, p), idx in cells.items():
        members = np.sum((y_true == t) & (y_pred == p))
        assert len(idx) == min(n_per_cell, members) and len(set(idx.tolist())) == len(idx)
        assert np.all(y_true[idx] == t) and np.all(y_pred[idx] == p)
    again = confusion_cell_examples(y_true, y_pred, n_per_cell, seed=3)
    assert all(np.array_equal(cells[k], again[k]) for k in cells)


def test_confusion_cells_eligible_and_empty():
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 1, 1])
    eligible = np.array([True, False, True, True, False])
    cells = confusion_cell_examples(y_true, y_pred, 5, seed=0, eligible=eligible)
    assert cells[(0, 0)].tolist() == [0] and cells[(1, 1)].tolist() == [2, 3]
    assert cells[(0, 1)].size == 0 and cells[(1, 0)].size == 0
    labels = np.arange(40) % 2
    draws = {tuple(confusion_cell_examples(labels, labels, 3, seed=s)[(0, 0)]) for s in range(5)}
    assert len(draws) > 1  # the seed matters
    with pytest.raises(ValueError, match="y_true and y_pred must be label arrays"):
        confusion_cell_examples(y_true, y_pred[:3], 1)
