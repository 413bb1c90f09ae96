"""Photo-z mocks: LSST u, g, r, i, z cutouts (64×64, 0.2″) of galaxies at 0 < z < z_max, with the
Galactic E(B−V) each was observed through, in a shallow and a deep exposure (003 §2).

A galaxy is a Sérsic bulge with the CWW elliptical template plus an exponential disk whose spectrum
mixes the template of its type (Sbc, Scd or Im) with the next later one (continuous colours) and
is reddened by internal dust (Calzetti law, more for inclined disks), each redshifted through
GalSim's LSST bandpasses (``sed.py``); its size follows a size–luminosity relation in kpc
converted to arcsec with Planck18 angular-diameter distances; its luminosity is drawn from a Schechter function and the
sample is cut at r < ``mag_limit`` (19.8 by default, the GAMA spectroscopic limit: photo-z
training sets are spectroscopic samples), which gives a realistic n(z) rising then falling inside
[0, z_max] (Pasquet's 180-bin range is [0, 0.4]). Galactic extinction E(B−V) is drawn per object
(log-normal, median 0.03 mag, as at high Galactic latitude) and applied to every band with the
Fitzpatrick (1999) law, R_V = 3.1. The two domains are the same objects after one year (shallow)
and ten years (deep) of LSST exposure.
"""

from __future__ import annotations

from functools import cached_property

import galsim
import numpy as np

from ..surveys import band
from . import sed
from .domains import Domain, survey_years
from .psf import GSPARAMS, domain_psfs
from .render import Component, Scene, draw_scene, grid_for

BANDS = ("u", "g", "r", "i", "z")
STAMP = 64
#: Galaxy types: (disk template, bulge-to-total range, fraction of the sample)
TYPES = (
    ("E", (0.65, 1.0), 0.25),
    ("Sbc", (0.2, 0.55), 0.35),
    ("Scd", (0.05, 0.3), 0.28),
    ("Im", (0.0, 0.1), 0.12),
)
M_STAR, ALPHA = -21.2, -1.2  # r-band Schechter parameters (Blanton et al. 2003, h = 0.7)


def domains() -> tuple[Domain, Domain]:
    return (
        Domain(
            "deep",
            "LSST",
            BANDS,
            survey_years("LSST", BANDS, 10),
            STAMP,
            STAMP,
            description="LSST ten-year depth in u, g, r, i, z",
        ),
        Domain(
            "shallow",
            "LSST",
            BANDS,
            survey_years("LSST", BANDS, 1),
            STAMP,
            STAMP,
            description="LSST one-year depth in u, g, r, i, z",
        ),
    )


class PhotozSimulator:
    task = "photoz"
    classes = None

    def __init__(self, zmax: float = 0.4, mag_limit: float = 19.8) -> None:
        if not 0.05 <= zmax <= 1.0:
            raise ValueError(f"zmax must lie in [0.05, 1.0] (the tabulated SED range), got {zmax}")
        self.zmax = zmax
        self.zmin = 0.005  # below this the angular sizes exceed the stamp
        self.mag_limit = mag_limit
        self.domains = domains()

    def prepare(self) -> None:
        _ = self._tables
        for d in self.domains:
            domain_psfs(d, grid_for(d.native_size, d.pixel_scale))

    @cached_property
    def _tables(self) -> dict[str, np.ndarray]:
        """Per-template colour terms, distance modulus and angular scale on a z grid."""
        z = np.linspace(self.zmin, self.zmax, 400)
        k_r = {t: sed.colour_term(t, "r", z) for t in sed.TEMPLATES}
        return {
            "z": z,
            "dm": sed.distance_modulus(z) + 2.5 * np.log10(1 + z),
            "scale": np.array([sed.angular_scale(float(x)) for x in z[::20]]),
            "z_scale": z[::20],
            **{f"k_r_{t}": v for t, v in k_r.items()},
        }

    def _interp(self, key: str, z: float, grid: str = "z") -> float:
        t = self._tables
        return float(np.interp(z, t[grid], t[key]))

    # -- truth ------------------------------------------------------------------------------------
    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        """One galaxy brighter than ``mag_limit`` in r (rejection sampling from the same stream)."""
        fractions = np.array([f for _, _, f in TYPES])
        while True:
            z = self._draw_z(rng)
            kind = int(rng.choice(len(TYPES), p=fractions / fractions.sum()))
            m_abs = self._draw_schechter(rng)
            bt_lo, bt_hi = TYPES[kind][1]
            cos_i = rng.uniform(0.2, 1.0)
            t = {
                "z": z,
                "type": float(kind),
                "bt": rng.uniform(bt_lo, bt_hi),
                "disk_mix": rng.uniform(0.0, 1.0),
                # internal dust of the disk: more for later types and for more inclined disks
                "dust_ebv": 0.0 if kind == 0 else rng.uniform(0.0, 0.15) * (1 + 2 * (1 - cos_i)),
            }
            # apparent r of the composite, before Galactic extinction (for the selection)
            bt = t["bt"]
            lum = bt * 10 ** (-0.4 * self._r_colour(t, bulge=True)) + (1 - bt) * 10 ** (
                -0.4 * self._r_colour(t, bulge=False)
            )
            mag_r = m_abs + self._interp("dm", z) - 2.5 * np.log10(lum)
            if mag_r < self.mag_limit:
                break
        kpc = self._interp("scale", z, "z_scale")
        disk_re = 10 ** (0.55 - 0.15 * (m_abs + 20) + rng.normal(0, 0.12)) * kpc
        ebv = float(np.clip(rng.lognormal(np.log(0.03), 0.6), 0.0, 0.3))
        return {
            **t,
            "ebv": ebv,
            "abs_mag_r": m_abs,
            "mag_r": mag_r,
            "disk_re": disk_re,
            "bulge_re": float(np.clip(rng.lognormal(np.log(1.0), 0.3), 0.3, 3.0) * kpc),
            "bulge_n": rng.uniform(2.5, 4.5),
            "cos_i": cos_i,
            "bulge_q": rng.uniform(0.6, 1.0),
            "pa": rng.uniform(0, np.pi),
            "x0": rng.uniform(-0.5, 0.5) * 0.2,
            "y0": rng.uniform(-0.5, 0.5) * 0.2,
        }

    def _draw_z(self, rng) -> float:
        # volume-weighted prior ∝ z² up to z_max; the magnitude limit then shapes n(z)
        return float(self.zmin + (self.zmax - self.zmin) * rng.random() ** (1 / 3))

    def _draw_schechter(self, rng) -> float:
        """M_r from a Schechter luminosity function on [−23.5, −16] (rejection sampling)."""
        while True:
            m = rng.uniform(-23.5, -16.0)
            x = 10 ** (-0.4 * (m - M_STAR))
            # φ(M) ∝ x^(α+1) e^−x; its maximum on this range is at the faint end for α < −1
            xf = 10 ** (-0.4 * (-16.0 - M_STAR))
            if rng.random() < (x ** (ALPHA + 1) * np.exp(-x)) / (xf ** (ALPHA + 1) * np.exp(-xf)):
                return float(m)

    # -- rendering --------------------------------------------------------------------------------
    def _disk_sed(self, t: dict[str, float]) -> tuple[tuple[str, str], tuple[float, float]]:
        """The disk's spectrum: its type's template mixed with the next later one by ``disk_mix``
        (Im, the last, mixes with Scd), so colours fill the space between the CWW templates."""
        i = sed.TEMPLATES.index(TYPES[int(t["type"])][0])
        j = i + 1 if i + 1 < len(sed.TEMPLATES) else i - 1
        w = 0.3 * t["disk_mix"] if i == 0 else t["disk_mix"]  # ellipticals stay nearly E
        return (sed.TEMPLATES[i], sed.TEMPLATES[j]), (1 - w, w)

    def _r_colour(self, t: dict[str, float], bulge: bool) -> float:
        """Observed-r colour term of one component, internal dust included."""
        r_nm = band("LSST", "r").wavelength
        if bulge:
            return self._interp("k_r_E", t["z"])
        templates, weights = self._disk_sed(t)
        k = sed.mixed_colour_term(templates, weights, "r", t["z"])
        return k + sed.internal_dust_mag(t["dust_ebv"], r_nm, t["z"])

    def band_mags(self, t: dict[str, float], abs_mag: float, bulge: bool) -> np.ndarray:
        """[5] observed AB magnitudes of the bulge or the disk: template colour, internal dust
        (disk only), distance, and Galactic extinction."""
        z, out = t["z"], []
        templates, weights = (("E",), (1.0,)) if bulge else self._disk_sed(t)
        dm = self._interp("dm", z)  # includes the 2.5 log10(1 + z) of f_λ dilution
        for b in BANDS:
            wl = band("LSST", b).wavelength
            m = abs_mag + dm
            m += sed.mixed_colour_term(templates, weights, b, z)
            if not bulge:
                m += sed.internal_dust_mag(t["dust_ebv"], wl, z)
            out.append(m + sed.extinction_mag(t["ebv"], wl))
        return np.array(out)

    def render(self, t: dict[str, float], domain: Domain) -> np.ndarray:
        """[5, N, N] noiseless e-/s per native pixel (u, g, r, i, z; N = domain.native_size)."""
        self.prepare()
        grid = grid_for(domain.native_size, domain.pixel_scale)
        bt = t["bt"]
        rate = np.vectorize(lambda b, m: band(domain.survey, b).flux_rate(m))
        scene = Scene()
        if bt > 0.005:
            prof = galsim.Sersic(
                n=round(t["bulge_n"], 1), half_light_radius=t["bulge_re"], gsparams=GSPARAMS
            )
            prof = prof.shear(q=t["bulge_q"], beta=t["pa"] * galsim.radians)
            scene.components.append(
                Component(
                    prof,
                    rate(BANDS, self.band_mags(t, t["abs_mag_r"] - 2.5 * np.log10(bt), bulge=True)),
                )
            )
        if bt < 0.995:
            disk = galsim.InclinedExponential(
                inclination=np.arccos(t["cos_i"]) * galsim.radians,
                half_light_radius=t["disk_re"],
                scale_h_over_r=0.1,
                gsparams=GSPARAMS,
            ).rotate(t["pa"] * galsim.radians)
            scene.components.append(
                Component(
                    disk,
                    rate(
                        BANDS,
                        self.band_mags(t, t["abs_mag_r"] - 2.5 * np.log10(1 - bt), bulge=False),
                    ),
                )
            )
        psfs = domain_psfs(domain, grid)
        return draw_scene(scene, psfs, grid, domain.native_size, shift=(t["x0"], t["y0"]))
