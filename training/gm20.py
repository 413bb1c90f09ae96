"""Gini and M20 from statmorph, and the G–M20 classes of 002 §2.1.

statmorph's ``SourceMorphology`` computes every statistic it knows in its constructor (CAS, MID,
Sérsic fits, ... ≈0.4 s per 100×100 image). We need two, so ``GiniM20`` evaluates only Gini and
M20 (and what they depend on: the Petrosian radius and the Gini segmentation map). The numbers are
statmorph's own code, unchanged.

Class boundaries (Lotz et al. 2004 merger line, Rodriguez-Gomez et al. 2019 bulge statistic), as
002 §2.1 states them:
  merger      G > −0.14 M20 + 0.33
  elliptical  otherwise, if G > (0.693 M20 + 3.96) / 4.95
  spiral      otherwise
The lines meet at (G, M20) = (0.565, −1.679).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi

#: Class order used by every morphology file, model and answer.
MORPHOLOGY_CLASSES = ("spiral", "elliptical", "merger")


def gm20_class(gini: np.ndarray | float, m20: np.ndarray | float) -> np.ndarray:
    """Class index (0 spiral, 1 elliptical, 2 merger), int, of Gini and M20 [N] (or scalars,
    dimensionless; any broadcastable shape) from the 002 §2.1 boundaries."""
    g, m = np.asarray(gini, dtype=float), np.asarray(m20, dtype=float)
    merger = g > -0.14 * m + 0.33
    elliptical = g > (0.693 * m + 3.96) / 4.95
    return np.where(merger, 2, np.where(elliptical, 1, 0))


def _morphology_class():
    import statmorph

    class GiniM20(statmorph.SourceMorphology):
        """statmorph's measurement restricted to Gini and M20."""

        def _calculate_morphology(self) -> None:
            _ = self.gini
            _ = self.m20

        def _check_segmaps(self) -> None:  # compares with the MID segmap, which we do not compute
            pass

        @property
        def _asymmetry_center(self) -> np.ndarray:
            # statmorph minimises the rotational asymmetry (a Nelder–Mead search, ~0.5 s) only to
            # centre the ellipse whose Petrosian radius sets the Gini segment's threshold; on a
            # noiseless image the flux-weighted centroid it starts that search from is as good.
            return np.array([self._xc_stamp, self._yc_stamp])

        # The images are noiseless and have no background: statmorph's search for an empty sky
        # box (~0.25 s) would only confirm that.
        sky_mean = 0.0
        sky_sigma = 0.0

    return GiniM20


_GINI_M20 = None


def gini_m20(image: np.ndarray, threshold: float) -> tuple[float, float]:
    """Gini and M20 of the source at the centre of ``image`` [H, W].

    The detection segment is the 8-connected region above ``threshold`` (same units as the image)
    that contains the brightest pixel near the centre; statmorph then builds its own Gini segment
    from the Petrosian radius. Returns (nan, nan) when statmorph cannot measure.
    """
    global _GINI_M20
    if _GINI_M20 is None:
        _GINI_M20 = _morphology_class()
    image = np.asarray(image, dtype=np.float64)
    labels, _ = ndi.label(image > threshold, structure=np.ones((3, 3)))
    h, w = image.shape
    box = image[h // 2 - h // 8 : h // 2 + h // 8, w // 2 - w // 8 : w // 2 + w // 8]
    iy, ix = np.unravel_index(np.argmax(box), box.shape)
    label = labels[h // 2 - h // 8 + iy, w // 2 - w // 8 + ix]
    if label == 0:
        return float("nan"), float("nan")
    segmap = (labels == label).astype(np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _GINI_M20(image, segmap, 1, weightmap=np.ones_like(image))
    if m.gini == -99.0 or m.m20 == -99.0:
        return float("nan"), float("nan")
    return float(m.gini), float(m.m20)
