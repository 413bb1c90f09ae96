"""ConvNet: the simple morphology classifier of DeepAdversaries (002 §3.1, Table 1).

=========  ======================================  ==============  ==========
layer      properties                              output          parameters
=========  ======================================  ==============  ==========
conv1      8 filters 5×5, pad 2, ReLU              (8, 100, 100)   608
bn1        batch normalisation                     (8, 100, 100)   16
pool       max 2×2, stride 2                       (8, 50, 50)     0
conv2      16 filters 3×3, pad 1, ReLU             (16, 50, 50)    1,168
bn2                                                (16, 50, 50)    32
pool                                               (16, 25, 25)    0
conv3      32 filters 3×3, pad 1, ReLU             (32, 25, 25)    4,640
bn3                                                (32, 25, 25)    64
pool                                               (32, 12, 12)    0
bottleneck dense, no activation — the latent       (256)           1,179,904
fc         dense → 3 logits (softmax in the paper) (3)             771
=========  ======================================  ==============  ==========

The rows sum to 1,187,203; the table's printed total, 1,186,432, leaves out the output layer.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from .base import SkyNet, init_dense_head


class ConvNet(SkyNet):
    """Three conv layers, a 256-d linear bottleneck (the latent) and a 3-class output.

    Parameters
    ----------
    num_classes : number of logits K (spiral, elliptical, merger).
    latent_dim : width D of the bottleneck.

    Input: preprocessed g, r, i images [N, 3, 100, 100]. Output: logits [N, K].
    """

    input_shape: ClassVar[tuple[int, int, int]] = (3, 100, 100)

    def __init__(self, num_classes: int = 3, latent_dim: int = 256) -> None:
        super().__init__()
        self.num_outputs = num_classes
        self.latent_dim = latent_dim
        self.conv1 = nn.Conv2d(3, 8, kernel_size=5, padding=2)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.bn3 = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bottleneck = nn.Linear(32 * 12 * 12, latent_dim)
        self.fc = nn.Linear(latent_dim, num_classes)
        init_dense_head(self.bottleneck, self.fc)  # convolutions keep PyTorch's default

    def forward(self, x: Tensor) -> Tensor:
        """Logits [N, K] of images [N, 3, 100, 100]."""
        return self.head(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        """Latent [N, 256] of images [N, 3, 100, 100]."""
        # Table 1 and §3.1 order each stage conv → ReLU → batch norm → max pool. (The authors'
        # released code normalises before the ReLU; we follow the paper.)
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = self.pool(bn(F.relu(conv(x))))
        # No activation on the bottleneck: Table 1 gives it none, so the latent is linear.
        return self.bottleneck(x.flatten(1))

    def head(self, latent: Tensor) -> Tensor:
        """Logits [N, K] from the latent [N, 256]."""
        return self.fc(latent)
