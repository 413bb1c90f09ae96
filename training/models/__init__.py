"""The seed papers' network architectures, one module each, written in plain PyTorch.

==============  ===============  ======================  ======  ======  ===========
name            class            seed                    input   latent  outputs
==============  ===============  ======================  ======  ======  ===========
``convnet``     ``ConvNet``      002 Table 1             3×100²  256     3 classes
``resnet18``    ``ResNet18``     002 §3.1, He+2016       3×100²  256     3 classes
``deepshadows`` ``DeepShadows``  004 Table 1             3×64²   1024    2 classes
``inception``   ``Inception``    003 Table A1            5×64²   1096    180 z bins
``simple_cnn``  ``SimpleCNN``    003 Table A2            5×64²   1024    180 z bins
==============  ===============  ======================  ======  ======  ===========

All are :class:`SkyNet` s: ``forward`` returns logits [N, K] and equals
``head(features(...))``, ``features`` gives the latent [N, D] used for MMD and drift, and the
photo-z networks take E(B−V) [N, 1] as a second input (``takes_ebv``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .base import SkyNet, init_xavier
from .convnet import ConvNet
from .deepshadows import DeepShadows
from .inception import Inception, InceptionCell
from .resnet import BasicBlock, ResNet18
from .simple_cnn import SimpleCNN

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "convnet": ConvNet,
    "resnet18": ResNet18,
    "deepshadows": DeepShadows,
    "inception": Inception,
    "simple_cnn": SimpleCNN,
}


def build(name: str, **kw) -> nn.Module:
    """A new, freshly initialised network by registry name; ``kw`` go to its constructor."""
    try:
        cls = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"Unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}."
        ) from None
    return cls(**kw)


__all__ = [
    "ARCHITECTURES",
    "BasicBlock",
    "ConvNet",
    "DeepShadows",
    "Inception",
    "InceptionCell",
    "ResNet18",
    "SimpleCNN",
    "SkyNet",
    "build",
    "init_xavier",
]
