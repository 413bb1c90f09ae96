"""The simple photo-z CNN Campagne compares with the Inception network (003 §2, Table A2).

=====  ===================================  ==============  ==========
layer  properties                           output          parameters
=====  ===================================  ==============  ==========
conv0  64 filters 5×5, pad 2, ReLU          (64, 64, 64)    8,064
pool0  average 2×2/2                        (64, 32, 32)    0
conv1  92 filters 3×3, pad 2, ReLU          (92, 34, 34)    53,084
pool1  average 2×2/2                        (92, 17, 17)    0
conv2  128 filters 3×3, pad 2, ReLU         (128, 19, 19)   106,112
pool2  average 2×2/2, 'SAME' padding        (128, 10, 10)   0
fc0    flatten ⊕ E(B−V), dense, ReLU        (1024)          13,109,248
fc1    dense → 180 logits                   (180)           184,500
=====  ===================================  ==============  ==========

The printed table stops at fc0; the second dense layer of §2 ("2 fully connected layers") is what
closes the gap to the printed total, 13,461,008 − 13,276,508 = 184,500 = 1024·180 + 180. Its
latent is fc0's output.

The convolutions carry no learnable activation: the conv rows equal weights plus biases (conv0 =
5·64·25 + 64), so the per-channel PReLU of the Inception network (+64 there) is absent, and we use
ReLU. Initialisation as for the Inception network (Xavier-uniform, biases 0.1).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SkyNet, init_xavier
from .inception import same_avg_pool


class SimpleCNN(SkyNet):
    """Simple photo-z CNN (003 Table A2).

    Parameters
    ----------
    num_bins : number of redshift bins K (180 in 003).

    Inputs: preprocessed u, g, r, i, z fluxes [N, 5, 64, 64] and E(B−V) [N, 1] in magnitudes.
    Output: logits [N, K]; ``probabilities`` gives the binned p(z).
    The latent (fc0's output, [N, 1024]) depends on the image and on E(B−V), which joins at fc0.
    """

    input_shape: ClassVar[tuple[int, int, int]] = (5, 64, 64)
    takes_ebv: ClassVar[bool] = True

    def __init__(self, num_bins: int = 180) -> None:
        super().__init__()
        self.num_outputs = num_bins
        self.latent_dim = 1024
        self.conv0 = nn.Conv2d(5, 64, kernel_size=5, padding=2)
        self.conv1 = nn.Conv2d(64, 92, kernel_size=3, padding=2)
        self.conv2 = nn.Conv2d(92, 128, kernel_size=3, padding=2)
        self.pool = nn.AvgPool2d(2)
        # 19 → 10 needs one padded row and column: the 'SAME' pooling of the Inception cells.
        self.pool2 = same_avg_pool(stride=2)
        self.fc0 = nn.Linear(128 * 10 * 10 + 1, 1024)
        self.fc1 = nn.Linear(1024, num_bins)
        init_xavier(self)

    def forward(self, x: Tensor, ebv: Tensor) -> Tensor:
        """Logits [N, K] of images [N, 5, 64, 64] and E(B−V) [N, 1] (mag)."""
        return self.head(self.features(x, ebv))

    def features(self, x: Tensor, ebv: Tensor) -> Tensor:
        """Latent [N, 1024] of images [N, 5, 64, 64] and E(B−V) [N, 1] (mag)."""
        x = self.pool(F.relu(self.conv0(x)))  # 32×32
        x = self.pool(F.relu(self.conv1(x)))  # 34 → 17
        x = self.pool2(F.relu(self.conv2(x)))  # 19 → 10
        return F.relu(self.fc0(torch.cat([x.flatten(1), ebv], dim=1)))

    def head(self, latent: Tensor) -> Tensor:
        """Logits [N, K] over the redshift bins, from the latent [N, 1024]."""
        return self.fc1(latent)
