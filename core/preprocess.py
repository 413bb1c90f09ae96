"""Preprocessing: the one place raw cutouts become network input (../shared/DESIGN.md); numpy only.

Training, the service and the monitors all call these functions, and a model bundle records the
``Preprocessing`` it was trained with (``to_dict``), so a bundle says how to prepare its own input.

Morphology (002 §2.2): "clipping the pixel values to 0.1 and 99.9 percentiles ... We then perform
arcsinh stretching to make fainter objects more apparent ... scaling each of the three filters with
arcsinh(cx), where c = 0.85 is a constant used to scale the outputs to the range [0, 1]". We read
x as the raw, sky-subtracted pixel value in the cutout's own unit (electrons for the mocks, as in
002, whose Y1 and Y10 images are exposure-scaled counts): arcsinh(c·x) is then linear only within
about 1/c of zero — the sky noise — and logarithmic over the galaxy, which is what makes faint
structure (and the noise around it) visible; the result is min–max rescaled to [0, 1] per image
and band. Applied to x already rescaled to [0, 1], as one could also read the sentence, the same c
would be an almost linear map that hides everything fainter than ~1% of the peak, which cannot
"make fainter objects more apparent". Because c has the unit 1/BUNIT, 002's value (0.85, for
their image unit) does not carry over. For our electron images the default is c = 0.01 e⁻¹, which
puts the LSST Y10 sky noise (σ ≈ 160–360 e⁻ in g, r, i) near the bend between the linear and the
logarithmic part (c·σ ≈ 1.6–3.6); with c = 0.85 e⁻¹ every background is saturated noise. The
value is a display-and-input choice to be revisited with the models; a bundle records c with
the unit it expects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

#: AB magnitude of one nanomaggy (SDSS's flux unit, the unit of 003's images).
NANOMAGGY_ZP = 22.5


@dataclass(frozen=True)
class Preprocessing:
    """Parameters of the morphology stretch (recorded in every bundle).

    low, high : percentiles [%] each image band is clipped to (002: 0.1 and 99.9).
    c : arcsinh scale [1 / BUNIT]; linear within ~1/c of zero, logarithmic beyond (0.01 e⁻¹).
    """

    name: str = "morphology_stretch"
    low: float = 0.1
    high: float = 99.9
    c: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high <= 100.0:
            raise ValueError(
                f"need 0 <= low < high <= 100 percentiles, got low={self.low}, high={self.high}"
            )
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


def morphology_stretch(
    images: np.ndarray, low: float = 0.1, high: float = 99.9, c: float = 0.01
) -> np.ndarray:
    """002 §2.2 stretch of raw cutouts, per image and band.

    images : [N, B, H, W] or [B, H, W] raw, sky-subtracted flux (electrons for the mocks; c is in
        1 / that unit).
    Returns float32 of the same shape in [0, 1]: clipped to the ``low``/``high`` percentiles,
    arcsinh(c·x), then min–max rescaled to [0, 1]. A constant band gives zeros.
    """
    x = np.asarray(images)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim not in (3, 4):
        raise ValueError(f"images must be [N, B, H, W] or [B, H, W], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain invalid values (NaNs or infs)")
    lo, hi = plane_percentiles(x, (low, high))
    y = np.clip(x, lo, hi, dtype=np.float64)  # one float64 buffer, transformed in place
    y *= c
    np.arcsinh(y, out=y)
    y_lo, y_hi = np.arcsinh(c * lo), np.arcsinh(c * hi)
    span = y_hi - y_lo
    y -= y_lo
    np.divide(y, span, out=y, where=span > 0)
    np.copyto(y, 0.0, where=~(span > 0))  # as the zeros the old np.divide(out=zeros) left
    return y.astype(np.float32)


def plane_percentiles(x: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """``np.percentile(x, q, axis=(-2, -1), keepdims=True)`` (linear method) for each q in
    [0, 100], to the last bit (a zero may differ in sign: sort and partition order ±0
    differently), as float64 [..., 1, 1], without converting ``x`` [..., H, W] (float32/64).

    Each plane is sorted in ``x``'s own dtype (exact: a float32 → float64 cast keeps order and
    value) and the order statistics are interpolated in float64 as numpy does. numpy's SIMD
    sort beats the multi-index ``np.partition`` that ``np.percentile`` runs, and the stretch's
    percentiles are the service's main preprocessing cost (figures: docs/benchmarks.md,
    serving).
    """
    if not all(0 <= q <= 100 for q in qs):
        raise ValueError(f"percentiles must be in the range [0, 100], got {list(qs)}")
    n = x.shape[-2] * x.shape[-1]
    ordered = np.sort(x.reshape(-1, n), axis=1)
    out = []
    for q in qs:
        where = q / 100 * (n - 1)
        b = min(int(np.floor(where)), n - 1)
        t = where - b
        lower = ordered[:, b].astype(np.float64)
        upper = ordered[:, min(b + 1, n - 1)].astype(np.float64)
        d = upper - lower
        # numpy's _lerp: from the nearer end, so that t = 1 gives the upper value exactly
        value = lower + d * t if t < 0.5 else upper - d * (1 - t)
        out.append(value.reshape(*x.shape[:-2], 1, 1))
    return out


def rgb_composite(images: np.ndarray, prep: Preprocessing | None = None) -> np.ndarray:
    """An RGB picture of one cutout for plots: [3, H, W] (bands blue→red, e.g. g, r, i) → [H, W, 3].

    The first band is shown blue and the last red, each stretched as the network sees it.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[0] != 3:
        raise ValueError(f"rgb_composite needs three bands [3, H, W], got shape {images.shape}")
    stretched = (prep or Preprocessing())(images)
    return np.moveaxis(stretched[::-1], 0, -1)


@dataclass(frozen=True)
class FluxScale:
    """Photo-z input (003 §2): the raw flux images, converted to nanomaggies band by band.

    003 feeds the network SDSS frames in nanomaggies ("float values possibly negative") and sets
    its attack budget ε = 0.01 in that unit, "far below the image background". Converting our
    electrons with each band's zeropoint, f = x · 10^(−0.4 (magzp − 22.5)), makes ε mean the same
    here, and makes deep and shallow cutouts of one galaxy agree in signal (only the noise
    differs). ``magzp`` [B] (AB mag of one electron in the exposure, the FITS ``MAGZP``) is the
    training domain's; a cutout from another exposure passes its own to ``__call__``.

    ``unit_nmgy`` is the flux one input unit stands for: input = flux [nmgy] / unit_nmgy. 003's
    SDSS galaxies (r < 17.8) reach tens of nanomaggies per pixel; ours (r < 19.8, LSST pixels
    0.2″) reach ~1 and the sky noise is ~1e-3, so in nanomaggies the signal is ~100× smaller than
    the networks' 0.1 initial biases and a few epochs learn only the redshift prior (figures:
    docs/training.md, preprocessing). Photo-z uses unit_nmgy = 0.01; attack budgets are then
    given in these units (003's ε = 0.01 nmgy is 1.0).
    """

    name: str = "flux_nanomaggies"
    magzp: tuple[float, ...] = field(default_factory=tuple)
    unit_nmgy: float = 1.0

    def __post_init__(self) -> None:
        zp = np.asarray(self.magzp, dtype=np.float64)
        if zp.ndim != 1 or zp.size == 0 or not np.all(np.isfinite(zp)):
            raise ValueError(
                f"magzp must be a non-empty list of finite magnitudes, got {self.magzp}"
            )
        object.__setattr__(self, "magzp", tuple(float(v) for v in zp))
        if not self.unit_nmgy > 0:
            raise ValueError(f"unit_nmgy must be positive, got {self.unit_nmgy}")

    def to_dict(self) -> dict:
        return {"name": self.name, "magzp": list(self.magzp), "unit_nmgy": self.unit_nmgy}

    def __call__(self, images: np.ndarray, magzp: np.ndarray | None = None) -> np.ndarray:
        """[N, B, H, W] or [B, H, W] electrons → float32 nanomaggies. ``magzp``: [B], or [N, B]
        per cutout; default the bundle's."""
        x = np.asarray(images, dtype=np.float64)
        if x.ndim not in (3, 4):
            raise ValueError(f"images must be [N, B, H, W] or [B, H, W], got shape {x.shape}")
        zp = np.asarray(self.magzp if magzp is None else magzp, dtype=np.float64)
        if zp.shape[-1] != x.shape[-3]:
            raise ValueError(f"{zp.shape[-1]} zeropoints for {x.shape[-3]} bands")
        scale = 10.0 ** (-0.4 * (zp - NANOMAGGY_ZP)) / self.unit_nmgy
        return (x * scale[..., None, None]).astype(np.float32)


def preprocessing_from_dict(d: dict) -> Preprocessing | FluxScale:
    """The preprocessing a bundle records (``to_dict``), rebuilt; unknown names raise."""
    kinds = {"morphology_stretch": Preprocessing, "flux_nanomaggies": FluxScale}
    name = d.get("name")
    if name not in kinds:
        raise ValueError(f"unknown preprocessing {name!r}; known: {sorted(kinds)}")
    if name == "flux_nanomaggies":
        return FluxScale(magzp=tuple(d["magzp"]), unit_nmgy=float(d.get("unit_nmgy", 1.0)))
    return Preprocessing.from_dict(d)
