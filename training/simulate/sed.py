"""Colours from GalSim's CWW SED templates redshifted through GalSim's LSST bandpasses.

``apparent_mag(template, band, z, abs_mag_r)`` gives the observed AB magnitude of a galaxy of
rest-frame absolute r magnitude ``abs_mag_r`` and spectral template ``template`` at redshift ``z``,
including the K-correction:

    m_b = M_r + DM(z) + 2.5 log10(1 + z) + [mag_b(SED(λ/(1+z))) − mag_r(SED(λ))]

GalSim's ``SED.atRedshift`` only stretches the wavelengths; the ``2.5 log10(1+z)`` term restores
the (1+z) dilution of f_λ, and the bracket is the template's colour between the observed band
and rest-frame r. ``DM`` is the luminosity distance modulus of astropy's Planck18 cosmology.
The bracket is tabulated once per template and band on a fine z grid (Δz = 0.002) and
interpolated, since integrating an SED through a bandpass costs milliseconds.

Galactic extinction ``extinction_mag(ebv, band)`` is A_b = R_V E(B−V) · (A_λ/A_V) at the band's
effective wavelength, with the Fitzpatrick (1999) law and R_V = 3.1 (package ``extinction``).
Dust inside the galaxy, ``internal_dust_mag``, uses the Calzetti et al. (2000) starburst law
(R_V = 4.05) at the rest-frame wavelength the band sees. A spectrum between two templates,
``mixed_colour_term``, is their flux-weighted sum.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Literal

import numpy as np

Template = Literal["E", "Sbc", "Scd", "Im"]
TEMPLATES: tuple[Template, ...] = ("E", "Sbc", "Scd", "Im")
LSST_BANDS = ("u", "g", "r", "i", "z", "y")
R_V = 3.1
_Z_GRID = np.linspace(0.0, 1.0, 501)


def _galsim_share(*parts: str) -> str:
    import galsim

    return os.path.join(galsim.meta_data.share_dir, *parts)


@cache
def _bandpass(band: str):
    import galsim

    if band not in LSST_BANDS:
        raise ValueError(f"no GalSim LSST bandpass for band {band!r}; have {LSST_BANDS}")
    return galsim.Bandpass(
        _galsim_share("bandpasses", f"LSST_{band}.dat"), wave_type="nm"
    ).withZeropoint("AB")


@cache
def _sed(template: Template):
    import galsim

    if template not in TEMPLATES:
        raise ValueError(f"unknown SED template {template!r}; have {TEMPLATES}")
    return galsim.SED(
        _galsim_share("SEDs", f"CWW_{template}_ext.sed"), wave_type="Ang", flux_type="flambda"
    )


@cache
def _colour_table(template: Template, band: str) -> np.ndarray:
    """[len(_Z_GRID)] mag_band(SED at z) − mag_r(SED at rest), for one template."""
    sed = _sed(template)
    ref = sed.calculateMagnitude(_bandpass("r"))
    bp = _bandpass(band)
    return np.array([sed.atRedshift(z).calculateMagnitude(bp) - ref for z in _Z_GRID])


def distance_modulus(z: np.ndarray | float) -> np.ndarray:
    """Luminosity-distance modulus [mag], z's shape (e.g. [N]; 0-d for a scalar), at redshift
    ``z`` (Planck18), z in (0, 1] (floored at 1e-4)."""
    from astropy.cosmology import Planck18

    z = np.asarray(z, dtype=np.float64)

    return np.asarray(Planck18.distmod(np.maximum(z, 1e-4)).value)


def colour_term(template: Template, band: str, z: np.ndarray | float) -> np.ndarray:
    """mag_band(template at z) − mag_r(template at rest) [mag], interpolated in z ∈ [0, 1]."""
    z = np.asarray(z, dtype=np.float64)
    if np.any((z < 0) | (z > _Z_GRID[-1])):
        raise ValueError(f"redshift outside the tabulated range [0, {_Z_GRID[-1]}]")
    return np.interp(z, _Z_GRID, _colour_table(template, band))


def mixed_colour_term(
    templates: tuple[Template, ...], weights: tuple[float, ...], band: str, z: float
) -> float:
    """Colour term of the spectrum Σ w_i SED_i (each SED normalised to M_r = 0 at rest)."""
    flux = sum(
        w * 10 ** (-0.4 * colour_term(t, band, z)) for t, w in zip(templates, weights, strict=True)
    )
    return float(-2.5 * np.log10(flux))


@cache
def _calzetti_ratio(rest_nm: float) -> float:
    import extinction

    return float(extinction.calzetti00(np.array([rest_nm * 10.0]), 1.0, 4.05)[0])


def internal_dust_mag(ebv: float, wavelength_nm: float, z: float) -> float:
    """A [mag] of internal dust E(B−V) = ``ebv`` seen in a band of effective wavelength
    ``wavelength_nm`` at redshift ``z`` (Calzetti 2000, R_V = 4.05, at λ/(1+z))."""
    return float(4.05 * ebv * _calzetti_ratio(round(wavelength_nm / (1 + z), 1)))


def apparent_mag(template: Template, band: str, z: float, abs_mag_r: float) -> float:
    """Observed AB magnitude in LSST ``band`` of a galaxy with rest-frame M_r at redshift z."""
    return float(
        abs_mag_r + distance_modulus(z) + 2.5 * np.log10(1.0 + z) + colour_term(template, band, z)
    )


@cache
def _extinction_ratio(wavelength_nm: float) -> float:
    import extinction

    return float(extinction.fitzpatrick99(np.array([wavelength_nm * 10.0]), 1.0, R_V)[0])


def extinction_mag(ebv: float, wavelength_nm: float) -> float:
    """A_λ [mag] for colour excess ``ebv`` at effective wavelength ``wavelength_nm`` (F99, R_V=3.1)."""
    return float(R_V * ebv * _extinction_ratio(wavelength_nm))


@cache
def angular_scale(z: float) -> float:
    """Arcseconds per proper kiloparsec at redshift ``z`` (Planck18)."""
    from astropy.cosmology import Planck18

    return float(Planck18.arcsec_per_kpc_proper(z).value)
