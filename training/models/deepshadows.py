"""DeepShadows: the LSBG-vs-artifact classifier of Tanoglidis et al. (004 §3.2, Table 1).

Written channels-first (the paper's Keras model is channels-last; the flattened order differs, which
matters only when porting Keras weights). Parameters per Table 1, which counts as Keras does — batch
norm with 4 per channel, its running mean and variance included:

=======  ========================================  ============  =========  ==================
layer    properties                                output        Table 1    ours (trainable)
=======  ========================================  ============  =========  ==================
conv1    16 filters 3×3, same, ReLU, L2 0.13       (16, 64, 64)  448        448
bn1      then max 2×2/2, dropout 0.4               (16, 32, 32)  64         32 + 32 running
conv2    32 filters, as conv1                      (32, 32, 32)  4,640      4,640
bn2      then pool, dropout                        (32, 16, 16)  128        64 + 64 running
conv3    64 filters, as conv1                      (64, 16, 16)  18,496     18,496
bn3      then pool, dropout, flatten               (4096)        256        128 + 128 running
fc1      dense, ReLU, L2 0.12 — the latent         (1024)        4,195,328  4,195,328
out      dense, one sigmoid unit                   (1)           1,025      1,025
=======  ========================================  ============  =========  ==================

Totals: 4,220,385 as Keras counts, 4,220,161 trainable.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SkyNet


class DeepShadows(SkyNet):
    """Three conv/batch-norm/pool/dropout stages, a 1024-unit dense layer (the latent) and one
    output unit, returned as two-class logits.

    The paper's last layer is a single sigmoid unit giving P(LSBG). ``head`` keeps that one unit,
    z, (same 1,025 parameters) and returns the logits (0, z) for (artifact, LSBG): their softmax
    is exactly (1 − σ(z), σ(z)), and cross-entropy on them is exactly the paper's binary
    cross-entropy. So this network has the same two-class interface as the others.

    Input: preprocessed g, r, z images [N, 3, 64, 64]. Output: logits [N, 2].
    """

    input_shape: ClassVar[tuple[int, int, int]] = (3, 64, 64)
    classes = ("artifact", "lsbg")

    def __init__(self, dropout: float = 0.4, bn_momentum: float = 0.01) -> None:
        super().__init__()
        self.num_outputs = 2
        self.latent_dim = 1024
        # Keras' BatchNormalization defaults (momentum 0.99, epsilon 1e-3); PyTorch's momentum is
        # the weight of the new batch, hence 0.01. Its running statistics then average over ~100
        # steps: a short run whose L2 penalty is still shrinking the kernels ends with running
        # statistics that lag the batches (the quick recipes use 0.1).
        m = bn_momentum
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(16, eps=1e-3, momentum=m)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(32, eps=1e-3, momentum=m)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.bn3 = nn.BatchNorm2d(64, eps=1e-3, momentum=m)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(64 * 8 * 8, 1024)
        self.out = nn.Linear(1024, 1)
        # Keras' default initialisation (Glorot-uniform kernels, zero biases), which the
        # paper's model was trained from.
        for m in (self.conv1, self.conv2, self.conv3, self.fc1, self.out):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits [N, 2] (artifact, LSBG) of images [N, 3, 64, 64]."""
        return self.head(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        """Latent [N, 1024] of images [N, 3, 64, 64]."""
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = self.dropout(self.pool(bn(F.relu(conv(x)))))
        return F.relu(self.fc1(x.flatten(1)))

    def head(self, latent: Tensor) -> Tensor:
        """Logits [N, 2] = (0, z) for (artifact, LSBG), from the latent [N, 1024]."""
        z = self.out(latent)
        return torch.cat([torch.zeros_like(z), z], dim=1)

    def l2_penalty(self) -> Tensor:
        """Table 1's L2 regularisation as Keras adds it to the loss: 0.13 Σw² over the conv
        kernels [O, I, 3, 3] plus 0.12 Σw² over the first dense layer's kernel (biases are not
        penalised); a 0-d tensor."""
        conv = sum(m.weight.square().sum() for m in (self.conv1, self.conv2, self.conv3))
        return 0.13 * conv + 0.12 * self.fc1.weight.square().sum()
