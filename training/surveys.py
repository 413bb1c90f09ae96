"""Survey constants and the photometric conversions built on them.

Every number that describes a telescope, a filter or a sky comes from ``surveycodex`` (pixel scale,
mirror diameter, obscuration, zeropoint, sky brightness, PSF FWHM, effective wavelength, full-survey
exposure time), so the mocks can be traced to the survey's published values rather than to numbers
typed into this code.

Conventions (those of surveycodex): a filter's ``zeropoint`` is the AB magnitude that yields one
electron per second; ``sky_brightness`` is in mag/arcsec²; fluxes here are electrons.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import surveycodex


@dataclass(frozen=True)
class Band:
    """One filter of one survey, with the constants the simulator needs.

    Attributes are plain floats in the units named: ``zeropoint`` [mag giving 1 e-/s],
    ``sky_mag`` [mag/arcsec²], ``psf_fwhm`` [arcsec], ``wavelength`` [nm, effective],
    ``full_exposure`` [s, whole survey].
    """

    survey: str
    name: str
    zeropoint: float
    sky_mag: float
    psf_fwhm: float
    wavelength: float
    full_exposure: float

    def flux_rate(self, mag: float) -> float:
        """Electrons per second from an AB magnitude."""
        return 10.0 ** (-0.4 * (mag - self.zeropoint))

    def sky_rate(self, pixel_scale: float) -> float:
        """Sky electrons per second per pixel of side ``pixel_scale`` [arcsec]."""
        return self.flux_rate(self.sky_mag) * pixel_scale**2


@dataclass(frozen=True)
class Telescope:
    """A survey's telescope: ``pixel_scale`` [arcsec], ``diameter`` [m], linear ``obscuration``."""

    survey: str
    pixel_scale: float
    diameter: float
    obscuration: float


@cache
def telescope(survey: str) -> Telescope:
    """The telescope constants of ``survey`` (a surveycodex name: 'LSST', 'DES', 'HSC', ...)."""
    s = surveycodex.get_survey(survey)
    return Telescope(
        survey=survey,
        pixel_scale=float(s.pixel_scale.to_value("arcsec")),
        diameter=float(s.mirror_diameter.to_value("m")),
        obscuration=float(s.obscuration.value),
    )


@cache
def band(survey: str, name: str) -> Band:
    """The constants of filter ``name`` of ``survey``; raises ``ValueError`` if it has no such band."""
    s = surveycodex.get_survey(survey)
    if name not in s.available_filters:
        raise ValueError(
            f"survey {survey!r} has no band {name!r}; it has {list(s.available_filters)}"
        )
    f = s.get_filter(name)
    return Band(
        survey=survey,
        name=name,
        zeropoint=float(f.zeropoint.value),
        sky_mag=float(f.sky_brightness.value),
        psf_fwhm=float(f.psf_fwhm.to_value("arcsec")),
        wavelength=float(f.effective_wavelength.to_value("nm")),
        full_exposure=float(f.full_exposure_time.to_value("s")),
    )
