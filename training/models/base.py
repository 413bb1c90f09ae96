"""What every skyguard network shares: the split into ``features`` and ``head``.

Training (MMD acts on the latent), ONNX export (outputs ``probs``/``pdf`` *and* ``latent``), the
drift monitor (MMD between latents) and the canary runner (distance moved in latent space) all need
the penultimate layer, so every network is written as two halves::

    latent = model.features(image[, ebv])   # [N, D], D = model.latent_dim
    logits = model.head(latent)             # [N, K], K = model.num_outputs
    model(image[, ebv]) == model.head(model.features(image[, ebv]))

``forward`` returns *logits*; ``probabilities`` applies the softmax (class probabilities, or the
photo-z p(z) over the redshift bins). Keeping the softmax out of ``forward`` lets training use the
numerically stable ``F.cross_entropy`` and lets attacks take gradients of the logits.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn


class SkyNet(nn.Module):
    """Base class of the skyguard architectures (abstract: subclasses define the two halves).

    Attributes
    ----------
    input_shape : (C, H, W) of the preprocessed image the network takes, channels first.
    latent_dim : D, width of the latent (penultimate) layer.
    num_outputs : K, number of logits: classes, or redshift bins for photo-z.
    takes_ebv : whether ``features`` takes a second input, E(B−V) [N, 1] in magnitudes.
    """

    input_shape: ClassVar[tuple[int, int, int]]
    latent_dim: int
    num_outputs: int
    takes_ebv: ClassVar[bool] = False

    def features(self, *inputs: Tensor) -> Tensor:
        """Latent vectors [N, D] of images [N, C, H, W] (and E(B−V) [N, 1] for photo-z)."""
        raise NotImplementedError

    def head(self, latent: Tensor) -> Tensor:
        """Logits [N, K] from latent vectors [N, D]."""
        raise NotImplementedError

    def forward(self, *inputs: Tensor) -> Tensor:
        """Logits [N, K]; the same inputs as ``features``. Subclasses restate it with named
        arguments, ``forward(x)`` or ``forward(x, ebv)``, which torch.export and the ONNX
        exporter take as input names."""
        return self.head(self.features(*inputs))

    def probabilities(self, *inputs: Tensor) -> Tensor:
        """Softmax of the logits, [N, K], rows summing to 1."""
        return torch.softmax(self(*inputs), dim=1)

    def l2_penalty(self) -> Tensor:
        """Weight penalty that belongs to the architecture (Keras-style ``kernel_regularizer``),
        to be added to the loss: a 0-d tensor (shape [], not [1]) on the parameters' device;
        zero unless the seed paper's table prescribes one."""
        return torch.zeros((), device=next(self.parameters()).device)

    def example_inputs(self, n: int = 2, seed: int = 0) -> tuple[Tensor, ...]:
        """Seeded random inputs of the right shapes (for tests, ONNX export, benchmarks):
        images [n, C, H, W] ~ N(0, 1), and for photo-z E(B−V) [n, 1] ~ U(0, 0.1) mag."""
        gen = torch.Generator().manual_seed(seed)
        images = torch.randn((n, *self.input_shape), generator=gen)
        if not self.takes_ebv:
            return (images,)
        return images, 0.1 * torch.rand((n, 1), generator=gen)


def init_xavier(module: nn.Module, bias: float = 0.1) -> None:
    """Xavier-uniform weights and constant biases for every convolution and dense layer, the
    initialisation 003 §2 takes over from Pasquet et al. (2019) for the photo-z networks."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.constant_(m.bias, bias)


def init_dense_head(bottleneck: nn.Linear, fc: nn.Linear) -> None:
    """Small normal weights and zero biases on the morphology networks' bottleneck (σ 0.005) and
    output layer (σ 0.01), as in the 002 authors' released code (the paper does not say)."""
    nn.init.normal_(bottleneck.weight, std=0.005)
    nn.init.zeros_(bottleneck.bias)
    nn.init.normal_(fc.weight, std=0.01)
    nn.init.zeros_(fc.bias)
