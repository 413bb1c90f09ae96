"""What a survey domain is: survey, bands, exposure, stamp geometry — and the derived sky and PSF.

Two domains of one task see the *same* objects (same truth, same index) through different
observing conditions: deeper or shallower exposures (morphology Y10/Y1, photo-z deep/shallow) or a
different survey altogether (lsbg DES-like/HSC-like).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..surveys import band, telescope


@dataclass(frozen=True)
class Domain:
    """One observing configuration of a task.

    Attributes
    ----------
    name : short id used in file names ('y10', 'y1', 'des', ...).
    survey : surveycodex survey whose telescope, filters and sky are used.
    bands : band names in storage order.
    exposure : [len(bands)] exposure time per band, s.
    native_size : stamp side in the survey's own pixels (drawn and noised at this size).
    out_size : stored stamp side; if different from ``native_size`` the noisy image is resampled
        flux-conservingly onto it (lsbg: 30″ cutouts resampled to 64×64, 004 §2.3).
    fwhm_scale : multiplies the survey's median PSF FWHM (1 = median seeing).
    description : one line for the dataset attributes and reports.
    """

    name: str
    survey: str
    bands: tuple[str, ...]
    exposure: tuple[float, ...]
    native_size: int
    out_size: int
    fwhm_scale: float = 1.0
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.exposure) != len(self.bands):
            raise ValueError(
                f"domain {self.name!r}: {len(self.bands)} bands but {len(self.exposure)} exposure times"
            )
        for b in self.bands:
            band(self.survey, b)  # raises for a band the survey does not have

    @property
    def pixel_scale(self) -> float:
        """Native pixel scale [arcsec]."""
        return telescope(self.survey).pixel_scale

    @property
    def out_pixel_scale(self) -> float:
        """Pixel scale of the stored stamp [arcsec]."""
        return self.pixel_scale * self.native_size / self.out_size

    @property
    def optics_key(self) -> tuple:
        """Domains with equal keys render identical noiseless scenes (only the noise differs)."""
        return (self.survey, self.bands, self.native_size, self.fwhm_scale)

    def sky_rate(self) -> np.ndarray:
        """[B] sky electrons / s / native pixel."""
        return np.array([band(self.survey, b).sky_rate(self.pixel_scale) for b in self.bands])

    def sky_level(self) -> np.ndarray:
        """[B] sky electrons per native pixel in one exposure (the Poisson variance of empty sky)."""
        return self.sky_rate() * np.asarray(self.exposure)

    def magzp(self) -> np.ndarray:
        """[B] AB magnitude of a source giving 1 electron in the whole exposure (FITS MAGZP)."""
        return np.array(
            [
                band(self.survey, b).zeropoint + 2.5 * np.log10(t)
                for b, t in zip(self.bands, self.exposure, strict=True)
            ]
        )

    def psf_fwhm(self) -> np.ndarray:
        """[B] PSF FWHM [arcsec] the domain is simulated with."""
        return np.array([band(self.survey, b).psf_fwhm * self.fwhm_scale for b in self.bands])

    def attrs(self) -> dict:
        """Everything about the domain, as HDF5/FITS-friendly scalars and arrays."""
        t = telescope(self.survey)
        return {
            "domain": self.name,
            "description": self.description,
            "survey": self.survey,
            "bands": list(self.bands),
            "exposure_s": np.asarray(self.exposure, dtype=np.float64),
            "pixel_scale_arcsec": self.out_pixel_scale,
            "native_pixel_scale_arcsec": self.pixel_scale,
            "native_size": self.native_size,
            "sky_e_per_native_pixel": self.sky_level(),
            "magzp": self.magzp(),
            "psf_fwhm_arcsec": self.psf_fwhm(),
            "psf_model": (
                f"Kolmogorov ⊗ OpticalPSF(D={t.diameter} m, obscuration={t.obscuration:.4f}), "
                "atmospheric FWHM solved so the total matches the survey's median"
            ),
            "bunit": "electron",
            "sky_subtracted": True,
        }


def survey_years(survey: str, bands: tuple[str, ...], years: float) -> tuple[float, ...]:
    """Exposure per band after ``years`` of a 10-year survey (surveycodex full exposure / 10 per year).

    For LSST this is 240 s in g and 552 s in r and i per year, as 002 §2.2 uses.
    """
    return tuple(band(survey, b).full_exposure * years / 10.0 for b in bands)
