"""Drawing a galaxy made of components through a band's PSF onto a survey pixel grid.

A scene is a list of GalSim profiles (Sérsic bulges and spheroids, exponential disks; unit flux,
each with its own flux per band) plus light maps: structure GalSim has no profile for (spiral arms,
star-forming knots, tidal tails), tabulated on a grid twice as fine as the survey pixels.

Rendering is done in Fourier space on one fixed grid per domain: GalSim evaluates each profile's
exact Fourier transform (``drawKImage``) once per object — shapes do not depend on the band — and
per band the image is ``ifft(Σ_c flux_c,b · K_c(k) · PSF_b(k) · pixel(k))``. This is the same
calculation GalSim's own FFT drawing does, but GalSim sizes a grid for each component and band
separately each time; one shared grid, set by the survey pixel, is an order of magnitude faster
on the morphology scenes (``bench/simulate.py``; docs/benchmarks.md, speed) and agrees with
GalSim's ``drawImage`` to 2e-3 of the peak (tested). The grid is periodic (``GRID_FACTOR``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import galsim
import numpy as np


@dataclass
class Component:
    """A unit-flux GalSim profile (centred on the stamp) and its flux rate per band [e-/s]."""

    profile: galsim.GSObject
    flux: np.ndarray  # [B]


@dataclass
class LightMap:
    """A non-negative map [M, M] (M = 2 × grid side), sampled at half the survey pixel, centred on
    the stamp (index M/2 is the origin), normalised to 1, and its flux rate per band [e-/s]."""

    array: np.ndarray
    flux: np.ndarray  # [B]


@dataclass
class Scene:
    components: list[Component] = field(default_factory=list)
    maps: list[LightMap] = field(default_factory=list)


@dataclass(frozen=True)
class Grid:
    """The periodic Fourier grid of a domain: ``n`` pixels of ``scale`` arcsec per side."""

    n: int
    scale: float

    @property
    def dk(self) -> float:
        return 2 * np.pi / (self.n * self.scale)

    @property
    def map_scale(self) -> float:
        return self.scale / 2

    def map_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) [arcsec] of light-map samples, [2n, 2n] each, origin at index n."""
        c = (np.arange(2 * self.n) - self.n) * self.map_scale
        return np.meshgrid(c, c)


#: Side of the periodic grid in stamp sides. Light more than (GRID_FACTOR − ½) stamp sides from the
#: centre wraps into the stamp: at 3× that error is mostly below the Y10 sky noise, at 2× a
#: merger's extended envelope wraps in far above it (figures: docs/training.md, the mocks).
GRID_FACTOR = 3


def grid_for(stamp: int, scale: float, factor: int = GRID_FACTOR) -> Grid:
    """The grid used for a stamp of ``stamp`` pixels: ``factor`` times its side, even."""
    n = factor * stamp
    return Grid(n + n % 2, scale)


def _kimage(profile: galsim.GSObject, grid: Grid) -> np.ndarray:
    """[n, n/2 + 1] complex FT of ``profile`` on the half-plane kx ≥ 0, rows in numpy FFT order.

    Images are real, so the other half-plane is the conjugate. (GalSim draws the whole plane:
    asked for the half-plane only, through an image with off-centre bounds, it is 20× slower.)
    """
    n = grid.n
    k = profile.drawKImage(nx=n, ny=n, scale=grid.dk).array  # kx, ky from −n/2 to n/2 − 1
    half = np.concatenate([k[:, n // 2 :], k[:, :1]], axis=1)  # kx = 0 … n/2 − 1, then −n/2
    return np.fft.ifftshift(half, axes=0)


@lru_cache(maxsize=32)
def _pixel_response(grid: Grid) -> np.ndarray:
    fy = np.fft.fftfreq(grid.n)  # cycles per pixel
    fx = np.fft.rfftfreq(grid.n)
    return np.outer(np.sinc(fy), np.sinc(fx))


def psf_kimage(psf: galsim.GSObject, grid: Grid) -> np.ndarray:
    """[n, n/2 + 1] FT of the PSF times the pixel response (half-plane, numpy order)."""
    return _kimage(psf, grid) * _pixel_response(grid)


def map_kimage(light: np.ndarray, grid: Grid) -> np.ndarray:
    """FT of a [2n, 2n] light map on the grid's half-plane frequencies (the map's lowest ones)."""
    full = np.fft.rfft2(np.fft.ifftshift(light))
    rows = np.fft.fftfreq(grid.n, 1.0 / grid.n).astype(int)  # 0..n/2-1, -n/2..-1
    return full[np.ix_(rows, np.arange(grid.n // 2 + 1))]


def draw_scene(
    scene: Scene,
    psf_k: list[np.ndarray],
    grid: Grid,
    stamp: int,
    shift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """[B, stamp, stamp] noiseless rate image [electrons / s / pixel] of ``scene``.

    ``psf_k`` holds one ``psf_kimage`` per band, on ``grid``; ``shift`` (dx, dy) [arcsec] moves the
    whole scene (a phase in Fourier space, exact for sub-pixel offsets). The scene's origin lands on
    the stamp's geometric centre, as in GalSim's ``drawImage`` — between the four central pixels
    when ``stamp`` is even.
    """
    parts = [(_kimage(c.profile, grid), c.flux) for c in scene.components]
    parts += [(map_kimage(m.array, grid), m.flux) for m in scene.maps]
    ky = np.fft.fftfreq(grid.n, grid.scale / (2 * np.pi))
    kx = np.fft.rfftfreq(grid.n, grid.scale / (2 * np.pi))
    # the crop below puts the grid origin on pixel stamp // 2; for an even stamp the geometric
    # centre is half a pixel lower in x and y
    centre = -0.5 * grid.scale if stamp % 2 == 0 else 0.0
    dx, dy = shift[0] + centre, shift[1] + centre
    phase = np.exp(-1j * (kx[None, :] * dx + ky[:, None] * dy))
    out = np.empty((len(psf_k), stamp, stamp), dtype=np.float64)
    lo = grid.n // 2 - stamp // 2
    for b, pk in enumerate(psf_k):
        total = sum(kimg * f[b] for kimg, f in parts)
        img = np.fft.fftshift(np.fft.irfft2(total * pk * phase, s=(grid.n, grid.n)))
        out[b] = img[lo : lo + stamp, lo : lo + stamp]
    return out


def normalised(a: np.ndarray) -> np.ndarray:
    """A light map [M, M] clipped at 0 and scaled to sum to 1 (left at 0 if it sums to 0)."""
    a = np.clip(a, 0.0, None)
    s = a.sum()
    return a / s if s > 0 else a


def disk_plane(x, y, pa: float, cos_i: float):
    """Sky coordinates [arcsec] → coordinates in the plane of a disk of position angle ``pa``
    [rad] and inclination cos i (major axis along x)."""
    xp = x * np.cos(pa) + y * np.sin(pa)
    yp = -x * np.sin(pa) + y * np.cos(pa)
    return xp, yp / cos_i


def sky_plane(xd, yd, pa: float, cos_i: float):
    """Inverse of ``disk_plane``: disk-plane coordinates → sky coordinates [arcsec]."""
    yp = yd * cos_i
    return xd * np.cos(pa) - yp * np.sin(pa), xd * np.sin(pa) + yp * np.cos(pa)
