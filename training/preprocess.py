"""Preprocessing: the one place raw cutouts become network input (../shared/DESIGN.md); numpy only.

Training, the service and the monitors all call these functions, and a model bundle records the
``Preprocessing`` it was trained with (``to_dict``), so a bundle says how to prepare its own input.

Morphology (002 §2.2): "clipping the pixel values to 0.1 and 99.9 percentiles ... We then perform
arcsinh stretching ... by scaling each of the three filters with arcsinh(cx), where c = 0.85 is a
constant used to scale the outputs to the range [0, 1]". Read literally, arcsinh(0.85·x) of a
[0, 1] input ends at arcsinh(0.85) ≈ 0.77, not 1; we divide by arcsinh(c) so that the output spans
[0, 1] exactly. Each image and band is clipped and min–max rescaled to [0, 1] on its own, so the
network sees shape and contrast, not absolute flux or colour (the bands' relative levels are
rescaled away; 002's phrase about preserving colour ratios does not survive per-band rescaling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    """Parameters of the morphology stretch (recorded in every bundle).

    low, high : percentiles [%] each image band is clipped to (002: 0.1 and 99.9).
    c : arcsinh softening; the output is arcsinh(c·x) / arcsinh(c) of x in [0, 1] (002: 0.85).
    """

    name: str = "morphology_stretch"
    low: float = 0.1
    high: float = 99.9
    c: float = 0.85

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high <= 100.0:
            raise ValueError(f"need 0 <= low < high <= 100 percentiles, got low={self.low}, "
                             f"high={self.high}")
        if not self.c > 0:
            raise ValueError(f"arcsinh softening c must be positive, got {self.c}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        unknown = set(d) - {"name", "low", "high", "c"}
        if unknown:
            raise ValueError(f"unknown preprocessing parameters {sorted(unknown)}")
        return cls(**d)

    def with_params(self, **kw) -> Preprocessing:
        """A copy with some parameters changed (unknown names raise ``TypeError``)."""
        return replace(self, **kw)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return morphology_stretch(images, self.low, self.high, self.c)


def morphology_stretch(images: np.ndarray, low: float = 0.1, high: float = 99.9,
                       c: float = 0.85) -> np.ndarray:
    """002 §2.2 stretch of raw cutouts, per image and band.

    images : [N, B, H, W] or [B, H, W] raw flux (any unit; the result does not depend on it).
    Returns float32 of the same shape in [0, 1]: clipped to the ``low``/``high`` percentiles,
    min–max rescaled to [0, 1], then arcsinh(c·x) / arcsinh(c). A constant band gives zeros.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim not in (3, 4):
        raise ValueError(f"images must be [N, B, H, W] or [B, H, W], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain invalid values (NaNs or infs)")
    lo, hi = np.percentile(x, [low, high], axis=(-2, -1), keepdims=True)
    span = hi - lo
    scaled = np.divide(np.clip(x, lo, hi) - lo, span, out=np.zeros_like(x), where=span > 0)
    return (np.arcsinh(c * scaled) / np.arcsinh(c)).astype(np.float32)


def rgb_composite(images: np.ndarray, prep: Preprocessing | None = None) -> np.ndarray:
    """An RGB picture of one cutout for plots: [3, H, W] (bands blue→red, e.g. g, r, i) → [H, W, 3].

    The first band is shown blue and the last red, each stretched as the network sees it.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[0] != 3:
        raise ValueError(f"rgb_composite needs three bands [3, H, W], got shape {images.shape}")
    stretched = (prep or Preprocessing())(images)
    return np.moveaxis(stretched[::-1], 0, -1)
