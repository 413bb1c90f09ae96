"""The seeds' experiments re-run on our mocks, one module (and one ``skyguard experiment`` name)
each; every run writes a report directory: ``report.md``, ``report.json`` and PNGs.

* ``morphology`` — 002 (DeepAdversaries): ConvNet / ResNet18, regular vs MMD domain adaptation;
  accuracy tables, one-pixel attacks, latent distances d_E and their JS distance, church windows,
  isomaps (:func:`run_morphology`).
* ``photoz`` — 003: FGSM and PGD (L∞, L2) against the regular photo-z network, transfer to a
  second seed and to the other architecture, adversarial training at several fractions f_a
  (:func:`run_photoz`).
* ``lsbg`` — 004 (DeepShadows): CNN vs SVM vs random forest with bootstrap intervals, DES → HSC
  transfer before and after fine-tuning, random label noise, Grad-CAM of the confusion cells
  (:func:`run_lsbg`).

The run functions are imported on first use, so the command line can read an experiment's
options (``photoz.add_arguments``) without importing torch.
"""

from importlib import import_module

__all__ = ["run_lsbg", "run_morphology", "run_photoz"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(import_module(f".{name.removeprefix('run_')}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
