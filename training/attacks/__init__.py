"""Adversarial attacks on skyguard networks, one module per attack.

* ``fgsm`` — Fast Gradient Sign Method, one L∞ step (003 eq. 5);
* ``pgd`` — Projected Gradient Descent in L∞ (003 eq. 7) or L2 (003 eqs. 8–9), optional random
  start;
* ``onepixel`` — one-pixel attack by differential evolution (002 §2.3, Su et al.), black box: a
  torch model or an ONNX Runtime session, whole populations of many images per forward pass.

FGSM and PGD are batched, seeded, untargeted or targeted, and work for classifiers and for the 180-bin
photo-z output alike: the caller passes the loss (``losses.attack_loss``) and the target (a class
index, or a redshift-bin index). Perturbed images are clamped to the valid input range when the
model's preprocessing has one (``bounds``; the arcsinh stretch maps to [0, 1], photo-z fluxes are
unbounded).
"""

from .fgsm import fgsm
from .onepixel import (
    OnePixelResult,
    Predictor,
    one_pixel,
    one_pixel_each_wrong_class,
    onnx_predictor,
    torch_predictor,
)
from .pgd import pgd

__all__ = [
    "OnePixelResult",
    "Predictor",
    "fgsm",
    "one_pixel",
    "one_pixel_each_wrong_class",
    "onnx_predictor",
    "pgd",
    "torch_predictor",
]
