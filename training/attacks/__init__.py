"""Adversarial attacks on skyguard networks, one module per attack.

* ``fgsm`` — Fast Gradient Sign Method, one L∞ step (003 eq. 5);
* ``pgd`` — Projected Gradient Descent in L∞ (003 eq. 7) or L2 (003 eqs. 8–9), optional random
  start.

Both are batched, seeded, untargeted or targeted, and work for classifiers and for the 180-bin
photo-z output alike: the caller passes the loss (``losses.attack_loss``) and the target (a class
index, or a redshift-bin index). Perturbed images are clamped to the valid input range when the
model's preprocessing has one (``bounds``; the arcsinh stretch maps to [0, 1], photo-z fluxes are
unbounded).
"""

from .fgsm import fgsm
from .pgd import pgd

__all__ = ["fgsm", "pgd"]
