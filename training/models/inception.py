"""Inception photo-z network of Pasquet et al. (2019) as tabulated by Campagne (003 Table A1).

A 5×5 convolution, five inception cells and three dense layers turn a u, g, r, i, z cube and the
reddening E(B−V) into logits over 180 redshift bins spanning 0 ≤ z ≤ 1 (003 §2)::

    (5, 64, 64) ─conv0─► 64 ─pool─► (32²) i0 ─► 240  i1 ─► 340 ─pool─► (16²) i2 ─► 476  i3 ─► 476
        ─pool─► (8²) i4 ─► 348 ─flatten─► 22,272 ⊕ ebv ─fc0─► 1096 ─fc1─► 1096 (latent) ─fc2─► 180

Every convolution is followed by a PReLU with one slope per channel (Table A1's counts include
them: conv0 = 5·64·25 + 64 + 64 = 8,128); dense layers use ReLU; pooling is by averaging, which
003 prefers because single-pixel spikes would dominate a max. 27,596,372 trainable parameters.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SkyNet, init_xavier


def conv_prelu(in_channels: int, channels: int, kernel: int) -> nn.Sequential:
    """A 'same' convolution and its per-channel PReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, kernel, padding=kernel // 2), nn.PReLU(channels)
    )


def same_avg_pool(stride: int) -> nn.Sequential:
    """2×2 average pooling with TensorFlow's 'SAME' padding, which the original network used: one
    row and column of padding at the bottom and right. Replicating the edge makes each border window
    the mean of its in-image pixels, exactly as TensorFlow does, and exports to ONNX as a plain Pad.
    """
    return nn.Sequential(nn.ReplicationPad2d((0, 1, 0, 1)), nn.AvgPool2d(2, stride=stride))


class InceptionCell(nn.Module):
    """One inception cell of Table A1 (branch names as there), spatial size unchanged.

    Branches, concatenated in the order (s2_2, s2_1, s2_0, pool0)::

        s2_2: 1×1 → n2
        s2_1: 1×1 (s1_1) → n1, 5×5 → n2        (absent when ``with_5x5`` is False, as in i4)
        s2_0: 1×1 (s1_0) → n1, 3×3 → n2
        pool0: 1×1 (s1_2) → n1, 2×2 average pool, stride 1

    Output channels: 3·n2 + n1 (2·n2 + n1 without the 5×5 branch).
    """

    def __init__(self, in_channels: int, n1: int, n2: int, with_5x5: bool = True) -> None:
        super().__init__()
        self.s1_0 = conv_prelu(in_channels, n1, 1)
        self.s2_0 = conv_prelu(n1, n2, 3)
        self.s1_2 = conv_prelu(in_channels, n1, 1)
        self.pool0 = same_avg_pool(stride=1)
        self.with_5x5 = with_5x5
        if with_5x5:
            self.s1_1 = conv_prelu(in_channels, n1, 1)
            self.s2_1 = conv_prelu(n1, n2, 5)
        self.s2_2 = conv_prelu(in_channels, n2, 1)
        self.out_channels = (3 if with_5x5 else 2) * n2 + n1

    def forward(self, x: Tensor) -> Tensor:
        """[N, in_channels, H, W] → [N, out_channels, H, W] (every branch keeps H and W)."""
        branches = [self.s2_2(x)]
        if self.with_5x5:
            branches.append(self.s2_1(self.s1_1(x)))
        branches += [self.s2_0(self.s1_0(x)), self.pool0(self.s1_2(x))]
        return torch.cat(branches, dim=1)


class Inception(SkyNet):
    """Inception photo-z network (003 Table A1).

    Parameters
    ----------
    num_bins : number of redshift bins K (180 in 003, bin width 1/180 ≈ 5.5e-3 over [0, 1]).

    Inputs: preprocessed u, g, r, i, z fluxes [N, 5, 64, 64] and E(B−V) [N, 1] in magnitudes.
    Output: logits [N, K]; ``probabilities`` gives the binned p(z).
    The latent (fc1's output, [N, 1096]) lies after the layer where E(B−V) joins the image
    features, so it depends on both: a shift in the reddening of the traffic shows in its MMD.
    """

    input_shape: ClassVar[tuple[int, int, int]] = (5, 64, 64)
    takes_ebv: ClassVar[bool] = True

    def __init__(self, num_bins: int = 180) -> None:
        super().__init__()
        self.num_outputs = num_bins
        self.latent_dim = 1096
        self.conv0 = conv_prelu(5, 64, 5)
        self.pool = nn.AvgPool2d(2)  # the stride-2 'pool0' layers between stages
        self.i0 = InceptionCell(64, 48, 64)
        self.i1 = InceptionCell(240, 64, 92)
        self.i2 = InceptionCell(340, 92, 128)
        self.i3 = InceptionCell(476, 92, 128)
        self.i4 = InceptionCell(476, 92, 128, with_5x5=False)
        self.fc0 = nn.Linear(self.i4.out_channels * 8 * 8 + 1, 1096)
        self.fc1 = nn.Linear(1096, 1096)
        self.fc2 = nn.Linear(1096, num_bins)
        init_xavier(self)

    def forward(self, x: Tensor, ebv: Tensor) -> Tensor:
        """Logits [N, K] of images [N, 5, 64, 64] and E(B−V) [N, 1] (mag)."""
        return self.head(self.features(x, ebv))

    def features(self, x: Tensor, ebv: Tensor) -> Tensor:
        """Latent [N, 1096] of images [N, 5, 64, 64] and E(B−V) [N, 1] (mag)."""
        x = self.pool(self.conv0(x))  # 32×32
        x = self.pool(self.i1(self.i0(x)))  # 16×16
        x = self.pool(self.i3(self.i2(x)))  # 8×8
        x = torch.cat([self.i4(x).flatten(1), ebv], dim=1)  # E(B−V) joins before fc0
        return F.relu(self.fc1(F.relu(self.fc0(x))))

    def head(self, latent: Tensor) -> Tensor:
        """Logits [N, K] over the redshift bins, from the latent [N, 1096]."""
        return self.fc2(latent)
