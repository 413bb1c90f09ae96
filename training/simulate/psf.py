"""Point-spread functions: atmosphere ⊗ telescope optics, one per survey band.

The optical part is GalSim's ``OpticalPSF`` for the survey's aperture (diameter and central
obscuration from surveycodex) at the band's effective wavelength; the atmospheric part is a
Kolmogorov profile whose FWHM is solved so that the *combined* PSF has the survey's published
median FWHM for that band (surveycodex ``psf_fwhm``). A PSF is built once per process and kept as
its Fourier transform on the domain's grid (``render.py``), so each cutout costs one multiply.
"""

from __future__ import annotations

from functools import cache

import galsim
import numpy as np

from ..surveys import band, telescope
from .domains import Domain
from .render import Grid, psf_kimage

#: GalSim accuracy settings shared by every profile of the mocks.
GSPARAMS = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=3e-3)


def _optics(survey: str, band_name: str, nstruts: int = 0) -> galsim.GSObject:
    t = telescope(survey)
    b = band(survey, band_name)
    return galsim.OpticalPSF(
        lam=b.wavelength,
        diam=t.diameter,
        obscuration=t.obscuration,
        nstruts=nstruts,
        strut_thick=0.03,
        strut_angle=45 * galsim.degrees,
        gsparams=GSPARAMS,
    )


@cache
def atmospheric_fwhm(survey: str, band_name: str, fwhm_scale: float = 1.0) -> float:
    """Kolmogorov FWHM [arcsec] that makes atmosphere ⊗ optics reach the survey's PSF FWHM.

    ``fwhm_scale`` multiplies the target (e.g. < 1 for a better-seeing domain).
    """
    target = band(survey, band_name).psf_fwhm * fwhm_scale
    optics = _optics(survey, band_name)
    scale = telescope(survey).pixel_scale / 8

    def total(atm: float) -> float:
        psf = galsim.Convolve(galsim.Kolmogorov(fwhm=atm, gsparams=GSPARAMS), optics)
        return psf.drawImage(nx=128, ny=128, scale=scale, method="no_pixel").calculateFWHM()

    # Widths add roughly in quadrature; two secant corrections bring it within 0.1%.
    atm = float(np.sqrt(max(target**2 - optics.calculateFWHM() ** 2, (0.5 * target) ** 2)))
    for _ in range(2):
        atm *= target / total(atm)
    return atm


@cache
def psf(survey: str, band_name: str, fwhm_scale: float = 1.0) -> galsim.GSObject:
    """The band's PSF (flux 1): Kolmogorov ⊗ OpticalPSF, cached per process."""
    atm = galsim.Kolmogorov(fwhm=atmospheric_fwhm(survey, band_name, fwhm_scale), gsparams=GSPARAMS)
    return galsim.Convolve(atm, _optics(survey, band_name), gsparams=GSPARAMS)


@cache
def psf_k(survey: str, band_name: str, fwhm_scale: float, grid: Grid) -> np.ndarray:
    """The PSF ⊗ pixel Fourier transform [n, n/2 + 1] complex (n = ``grid.n``; half-plane, numpy
    FFT order; see ``render.py``), cached per process."""
    return psf_kimage(psf(survey, band_name, fwhm_scale), grid)


def domain_psfs(domain: Domain, grid: Grid) -> list[np.ndarray]:
    """``psf_k`` [n, n/2 + 1] complex of every band of ``domain`` on ``grid``, in band order
    (cached per process)."""
    return [psf_k(domain.survey, b, domain.fwhm_scale, grid) for b in domain.bands]


@cache
def bright_star_psf(survey: str, band_name: str, fwhm_scale: float = 1.0) -> galsim.GSObject:
    """PSF for saturated-looking bright stars: the core plus the spider's diffraction spikes and a
    wide scattered-light halo (Moffat β=2), as seen around bright stars in DES and HSC images.

    Returned with flux 1; it is only ever drawn a few times per cutout, so it stays analytic.
    """
    atm = galsim.Kolmogorov(fwhm=atmospheric_fwhm(survey, band_name, fwhm_scale), gsparams=GSPARAMS)
    core = galsim.Convolve(atm, _optics(survey, band_name, nstruts=4))
    halo = galsim.Moffat(beta=2.0, fwhm=4.0 * band(survey, band_name).psf_fwhm, gsparams=GSPARAMS)
    return galsim.Add([core.withFlux(0.9), halo.withFlux(0.1)])
