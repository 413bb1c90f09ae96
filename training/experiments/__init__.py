"""The seeds' experiments re-run on our mocks, one module (and one ``skyguard experiment`` name)
each; every run writes a report directory: ``report.md``, ``report.json`` and PNGs.

* ``morphology`` — 002 (DeepAdversaries): ConvNet / ResNet18, regular vs MMD domain adaptation;
  accuracy tables, one-pixel attacks, latent distances d_E and their JS distance, church windows,
  isomaps (:func:`run_morphology`).
"""

from .morphology import run_morphology

__all__ = ["run_morphology"]
