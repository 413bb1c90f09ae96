"""ResNet18 with a 256-d bottleneck: the larger morphology classifier of 002 §3.1.

The backbone is the 18-layer network of He et al. (2016, Table 1): a 7×7/2 stem and 3×3/2 max
pool, then four stages of two BasicBlocks with 64, 128, 256, 512 channels, global average pooling.
002 follows it with "two dense layers": a 512 → 256 bottleneck (the latent) and the 3-class output.
Written here because torchvision cannot be installed beside our CPU torch; the module names and
the parameter count (11,176,512 for the backbone) are those of ``torchvision.models.resnet18``, so
its backbone weights load by name (leave out its 1000-class ``fc``).

Parameters: backbone 11,176,512 + bottleneck 131,328 + output 771 = 11,308,611. 002 quotes
"≈11.2M", which is the backbone alone (11.18M); with the two dense layers it is 11.31M.
On 100×100 inputs the stages see 25, 25, 13, 7 and 4 pixels on a side.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from .base import SkyNet, init_dense_head


class BasicBlock(nn.Module):
    """Two 3×3 conv + batch-norm layers with an identity shortcut (He et al. 2016, Fig. 2); a
    1×1/stride conv shortcut where the block changes the width or halves the resolution."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """[N, in_channels, H, W] → [N, channels, ⌈H / stride⌉, ⌈W / stride⌉]."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.downsample(x))


class ResNet18(SkyNet):
    """ResNet18 backbone, a linear 256-d bottleneck (the latent) and a 3-class output.

    Parameters
    ----------
    num_classes : number of logits K (spiral, elliptical, merger).
    latent_dim : width D of the bottleneck.
    dropout : dropout rate before the global pooling; 0.5 in the authors' released code (the
        paper does not mention it). Inactive in eval mode, so exports are unaffected.

    Input: preprocessed g, r, i images [N, 3, 100, 100]. Output: logits [N, K].
    """

    input_shape: ClassVar[tuple[int, int, int]] = (3, 100, 100)

    def __init__(self, num_classes: int = 3, latent_dim: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_outputs = num_classes
        self.latent_dim = latent_dim
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        stages, in_ch = [], 64
        for i, ch in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(in_ch, ch, stride), BasicBlock(ch, ch)))
            in_ch = ch
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.dropout = nn.Dropout(dropout)
        self.bottleneck = nn.Linear(512, latent_dim)
        self.fc = nn.Linear(latent_dim, num_classes)

        # He initialisation for the convolutions, as torchvision does
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        init_dense_head(self.bottleneck, self.fc)

    def forward(self, x: Tensor) -> Tensor:
        """Logits [N, K] of images [N, 3, 100, 100]."""
        return self.head(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        """Latent [N, 256] of images [N, 3, 100, 100]."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(x).mean(dim=(2, 3))  # global average pooling → [N, 512]
        # Linear bottleneck, no activation, as for ConvNet: the output layer reads it directly.
        return self.bottleneck(x)

    def head(self, latent: Tensor) -> Tensor:
        """Logits [N, K] from the latent [N, 256]."""
        return self.fc(latent)
