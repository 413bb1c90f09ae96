"""The seeds' experiments re-run on our mocks, one module (and one ``skyguard experiment`` name)
each; every run writes a report directory: ``report.md``, ``report.json`` and PNGs.

* ``morphology`` — 002 (DeepAdversaries): ConvNet / ResNet18, regular vs MMD domain adaptation;
  accuracy tables, one-pixel attacks, latent distances d_E and their JS distance, church windows,
  isomaps (:func:`run_morphology`).
* ``lsbg`` — 004 (DeepShadows): CNN vs SVM vs random forest with bootstrap intervals, DES → HSC
  transfer before and after fine-tuning, random label noise, Grad-CAM of the confusion cells
  (:func:`run_lsbg`).
"""

from .lsbg import run_lsbg
from .morphology import run_morphology

__all__ = ["run_lsbg", "run_morphology"]
