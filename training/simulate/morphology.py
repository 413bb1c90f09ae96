"""Morphology mocks: LSST g, r, i cutouts (100×100, 0.2″) of spirals, ellipticals and mergers at
z = 0.05, observed after one (Y1) and ten (Y10) years (002 §2).

Each class is built from physical ingredients, sized with Planck18 angular distances and coloured
with CWW templates (``sed.py``):

* spiral — Sérsic bulge (E template) + inclined exponential disk (Sbc/Scd) + logarithmic spiral
  arms (2 or 3, Scd) + star-forming knots strung along the arms (Im);
* elliptical — a high-Sérsic spheroid (E), sometimes with a faint disk (S0-like);
* merger — two or three progenitors (spheroid or bulge+disk) at small projected separation, with
  tidal tails drawn as streams of star particles and an offset diffuse envelope (asymmetry).

The parameter ranges overlap on purpose near the class boundaries (bulge-dominated spirals vs
disky ellipticals; late mergers with faint tails vs ellipticals; wide pairs vs knotty spirals), and
the fainter part of the luminosity range puts arms and tails at Y1 surface-brightness noise.
Every object also gets statmorph's Gini and M20 on its noiseless i-band image and the 002 §2.1
G–M20 class (``annotate``).
"""

from __future__ import annotations

import galsim
import numpy as np
from scipy import ndimage as ndi

from ..gm20 import MORPHOLOGY_CLASSES, gini_m20, gm20_class
from . import sed
from .domains import Domain, survey_years
from .psf import GSPARAMS, domain_psfs
from .render import (
    Component,
    Grid,
    LightMap,
    Scene,
    disk_plane,
    draw_scene,
    grid_for,
    normalised,
    sky_plane,
)

REDSHIFT = 0.05
BANDS = ("g", "r", "i")
STAMP = 100
#: Class fractions after 002's merger augmentation (14,312 : 8,151 : 12,710).
CLASS_FRACTIONS = (0.41, 0.23, 0.36)


def domains() -> tuple[Domain, Domain]:
    """Y10 and Y1: the same LSST sky, ten years or one year of exposure (002 §2.2)."""
    return (
        Domain(
            "y10",
            "LSST",
            BANDS,
            survey_years("LSST", BANDS, 10),
            STAMP,
            STAMP,
            description="LSST ten-year depth (g 2400 s, r 5520 s, i 5520 s)",
        ),
        Domain(
            "y1",
            "LSST",
            BANDS,
            survey_years("LSST", BANDS, 1),
            STAMP,
            STAMP,
            description="LSST one-year depth (g 240 s, r 552 s, i 552 s)",
        ),
    )


class MorphologySimulator:
    task = "morphology"
    classes = MORPHOLOGY_CLASSES

    def __init__(self) -> None:
        self.domains = domains()
        self._offsets: np.ndarray | None = None

    # -- caches -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        if self._offsets is None:
            # apparent magnitude = M_r + offset[template, band] at z = 0.05
            self._offsets = np.array(
                [[sed.apparent_mag(t, b, REDSHIFT, 0.0) for b in BANDS] for t in sed.TEMPLATES]
            )
            self._kpc = sed.angular_scale(REDSHIFT)  # arcsec per kpc
            for d in self.domains:
                domain_psfs(d, grid_for(d.native_size, d.pixel_scale))

    def _rates(self, template: str, abs_mag: float, domain: Domain) -> np.ndarray:
        from ..surveys import band

        mags = abs_mag + self._offsets[sed.TEMPLATES.index(template)]
        return np.array(
            [band(domain.survey, b).flux_rate(m) for b, m in zip(BANDS, mags, strict=True)]
        )

    # -- truth ------------------------------------------------------------------------------------
    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        self.prepare()
        label = int(rng.choice(3, p=CLASS_FRACTIONS))
        t = {"label": label, "seed_galsim": float(rng.integers(1, 2**31 - 1))}
        t["x0"], t["y0"] = rng.uniform(-0.5, 0.5, 2) * 0.2  # sub-pixel centring [arcsec]
        t["pa"] = rng.uniform(0, np.pi)
        if label == 0:
            self._draw_spiral(rng, t)
        elif label == 1:
            self._draw_elliptical(rng, t)
        else:
            self._draw_merger(rng, t)
        return t

    def _size(self, rng, abs_mag: float, a: float, slope: float, scatter: float) -> float:
        """Half-light radius [arcsec] from a size–luminosity relation log10 r_e[kpc] = a − slope (M+20)."""
        return 10 ** (a - slope * (abs_mag + 20) + rng.normal(0, scatter)) * self._kpc

    def _draw_spiral(self, rng, t) -> None:
        t["mag"] = rng.uniform(-21.5, -17.5)
        t["bt"] = rng.beta(1.3, 3.5) * 0.7  # bulge-to-total; tail reaches S0-like 0.5+
        t["disk_re"] = self._size(rng, t["mag"], 0.40, 0.16, 0.10)
        t["bulge_n"] = rng.uniform(1.5, 4.0)
        t["bulge_re"] = t["disk_re"] * rng.uniform(0.12, 0.35)
        t["bulge_q"] = rng.uniform(0.7, 1.0)
        t["cos_i"] = rng.uniform(0.25, 1.0)
        t["disk_sed"] = float(rng.integers(1, 3))  # 1 Sbc, 2 Scd
        t["arm_frac"] = rng.uniform(0.1, 0.45)
        t["arm_m"] = float(rng.choice([2, 2, 3]))
        t["arm_pitch"] = np.radians(rng.uniform(10, 30))
        t["arm_phase"] = rng.uniform(0, 2 * np.pi)
        t["arm_sharp"] = rng.uniform(1.5, 5.0)
        t["knot_frac"] = rng.uniform(0.02, 0.12)
        t["knot_n"] = float(rng.integers(10, 60))

    def _draw_elliptical(self, rng, t) -> None:
        t["mag"] = rng.uniform(-22.0, -18.0)
        t["sph_n"] = rng.uniform(2.5, 6.0)
        t["sph_re"] = self._size(rng, t["mag"], 0.30, 0.22, 0.10)
        t["sph_q"] = rng.uniform(0.45, 1.0)
        t["disk_frac"] = 0.0 if rng.random() < 0.6 else rng.uniform(0.05, 0.35)
        t["disk_re"] = t["sph_re"] * rng.uniform(1.2, 2.5)
        t["cos_i"] = rng.uniform(0.25, 1.0)

    def _draw_merger(self, rng, t) -> None:
        t["mag"] = rng.uniform(-22.0, -18.0)
        t["n_prog"] = 3.0 if rng.random() < 0.25 else 2.0
        t["sep"] = rng.uniform(0.15, 1.6)  # projected separation / primary r_e
        t["sep_angle"] = rng.uniform(0, 2 * np.pi)
        for k in range(3):
            t[f"p{k}_dmag"] = 0.0 if k == 0 else rng.uniform(0.0, 1.5) + (k - 1) * 1.0
            t[f"p{k}_disky"] = float(rng.random() < 0.5)
            t[f"p{k}_n"] = rng.uniform(1.0, 5.0)
            t[f"p{k}_q"] = rng.uniform(0.4, 1.0)
            t[f"p{k}_pa"] = rng.uniform(0, np.pi)
            t[f"p{k}_angle"] = rng.uniform(0, 2 * np.pi)
        t["p0_re"] = self._size(rng, t["mag"], 0.35, 0.18, 0.12)
        t["tail_frac"] = rng.uniform(0.03, 0.25)
        t["tail_n"] = float(rng.integers(1, 3))
        t["tail_len"] = rng.uniform(1.5, 4.5)  # in primary r_e
        t["tail_width"] = rng.uniform(0.3, 1.0)  # arcsec
        t["env_frac"] = rng.uniform(0.05, 0.2)
        t["env_shift"] = rng.uniform(0.1, 0.6)  # in primary r_e

    # -- rendering --------------------------------------------------------------------------------
    def render(self, truth: dict[str, float], domain: Domain) -> np.ndarray:
        """[3, N, N] noiseless e-/s per native pixel (g, r, i; N = domain.native_size)."""
        self.prepare()
        grid = grid_for(domain.native_size, domain.pixel_scale)
        scene = self.scene(truth, domain, grid)
        psfs = domain_psfs(domain, grid)
        return draw_scene(scene, psfs, grid, domain.native_size, shift=(truth["x0"], truth["y0"]))

    def scene(self, t: dict[str, float], domain: Domain, grid: Grid) -> Scene:
        """The galaxy's components with their per-band flux rates in ``domain``."""
        rng = np.random.default_rng(int(t["seed_galsim"]))
        label = int(t["label"])
        scene = Scene()
        if label == 0:
            self._spiral(t, domain, scene, rng, grid)
        elif label == 1:
            self._elliptical(t, domain, scene)
        else:
            self._merger(t, domain, scene, rng, grid)
        return scene

    def _bulge(self, n, re, q, pa, flux) -> Component:
        prof = galsim.Sersic(n=round(n, 1), half_light_radius=re, gsparams=GSPARAMS)
        return Component(prof.shear(q=q, beta=pa * galsim.radians), flux)

    def _disk(self, re, cos_i, pa, flux) -> Component:
        prof = galsim.InclinedExponential(
            inclination=np.arccos(cos_i) * galsim.radians,
            half_light_radius=re,
            scale_h_over_r=0.1,
            gsparams=GSPARAMS,
        )
        return Component(prof.rotate(pa * galsim.radians), flux)

    def _spiral(self, t, domain, scene, rng, grid) -> None:
        mag, bt = t["mag"], t["bt"]
        disk_sed = sed.TEMPLATES[int(t["disk_sed"])]
        # arms and knots carry fractions of the disk's light, the smooth disk the rest
        f_arm, f_knot = t["arm_frac"] * (1 - bt), t["knot_frac"] * (1 - bt)
        f_disk = 1 - bt - f_arm - f_knot
        if bt > 0.01:
            scene.components.append(
                self._bulge(
                    t["bulge_n"],
                    t["bulge_re"],
                    t["bulge_q"],
                    t["pa"],
                    self._rates("E", mag - 2.5 * np.log10(bt), domain),
                )
            )
        scene.components.append(
            self._disk(
                t["disk_re"],
                t["cos_i"],
                t["pa"],
                self._rates(disk_sed, mag - 2.5 * np.log10(f_disk), domain),
            )
        )
        h = t["disk_re"] / 1.678
        # arms: evaluated on the central half of the map (the stamp), where all but a negligible
        # part of an exponential disk of these sizes lies
        x, y = grid.map_coords()
        q = grid.n // 2
        inner = (slice(q, q + grid.n), slice(q, q + grid.n))
        xd, yd = disk_plane(x[inner], y[inner], t["pa"], t["cos_i"])
        r = np.hypot(xd, yd) + 1e-6
        theta = np.arctan2(yd, xd)
        m = t["arm_m"]
        phase = m * (theta - np.log(r / h) / np.tan(t["arm_pitch"]) - t["arm_phase"])
        arms = np.zeros_like(x)
        arms[inner] = (
            np.exp(-r / h)
            * (1 - np.exp(-((r / (1.5 * t["bulge_re"] + 0.3)) ** 2)))
            * ((1 + np.cos(phase)) / 2) ** t["arm_sharp"]
        )
        scene.maps.append(
            LightMap(normalised(arms), self._rates("Scd", mag - 2.5 * np.log10(f_arm), domain))
        )
        # star-forming knots: clumps strung along the arms
        n = int(t["knot_n"])
        rk = np.minimum(rng.gamma(2.0, h, n), 4 * h)
        arm = rng.integers(0, int(m), n)
        th = (
            np.log(rk / h) / np.tan(t["arm_pitch"])
            + t["arm_phase"]
            + 2 * np.pi * arm / m
            + rng.normal(0, 0.12, n)
        )
        xs, ys = sky_plane(rk * np.cos(th), rk * np.sin(th), t["pa"], t["cos_i"])
        weights = rng.lognormal(0, 0.7, n)
        knots = _particles(xs, ys, weights, grid, rng, sigma=rng.uniform(0.12, 0.3), per_point=60)
        scene.maps.append(LightMap(knots, self._rates("Im", mag - 2.5 * np.log10(f_knot), domain)))

    def _elliptical(self, t, domain, scene) -> None:
        mag, fd = t["mag"], t["disk_frac"]
        scene.components.append(
            self._bulge(
                t["sph_n"],
                t["sph_re"],
                t["sph_q"],
                t["pa"],
                self._rates("E", mag - 2.5 * np.log10(1 - fd), domain),
            )
        )
        if fd > 0:
            scene.components.append(
                self._disk(
                    t["disk_re"],
                    t["cos_i"],
                    t["pa"],
                    self._rates("Sbc", mag - 2.5 * np.log10(fd), domain),
                )
            )

    def _merger(self, t, domain, scene, rng, grid) -> None:
        mag = t["mag"]
        n_prog = int(t["n_prog"])
        lum = np.array([10 ** (-0.4 * t[f"p{k}_dmag"]) for k in range(n_prog)])
        frac_stars = 1 - t["tail_frac"] - t["env_frac"]
        fr = lum / lum.sum() * frac_stars
        re0 = t["p0_re"]
        centres = [(0.0, 0.0)]
        for k in range(1, n_prog):
            d = t["sep"] * re0 * (1.0 if k == 1 else 1.6)
            a = t["sep_angle"] + (0 if k == 1 else t[f"p{k}_angle"])
            centres.append((d * np.cos(a), d * np.sin(a)))
        for k in range(n_prog):
            re_k = re0 * (lum[k] / lum[0]) ** 0.5
            m_k = mag - 2.5 * np.log10(fr[k])
            cx, cy = centres[k]
            if t[f"p{k}_disky"]:
                parts = [
                    (
                        self._bulge(
                            t[f"p{k}_n"],
                            0.3 * re_k,
                            t[f"p{k}_q"],
                            t[f"p{k}_pa"],
                            self._rates("E", m_k - 2.5 * np.log10(0.4), domain),
                        )
                    ),
                    (
                        self._disk(
                            re_k,
                            t[f"p{k}_q"],
                            t[f"p{k}_pa"],
                            self._rates("Sbc", m_k - 2.5 * np.log10(0.6), domain),
                        )
                    ),
                ]
            else:
                parts = [
                    self._bulge(
                        t[f"p{k}_n"],
                        re_k,
                        t[f"p{k}_q"],
                        t[f"p{k}_pa"],
                        self._rates("E", m_k, domain),
                    )
                ]
            for c in parts:
                c.profile = c.profile.shift(cx, cy)
                scene.components.append(c)
        x, _ = grid.map_coords()
        # tidal tails: streams of star particles along log-spiral arcs leaving the primary
        xs_all, ys_all = [], []
        for j in range(int(t["tail_n"])):
            npt = 4000
            s = rng.uniform(0, 1, npt) ** 1.3  # more light near the base of the tail
            ang0 = t["sep_angle"] + np.pi * j + rng.normal(0, 0.3)
            sign = 1 if j == 0 else -1
            r = re0 * (0.6 + t["tail_len"] * s)
            th = ang0 + sign * 1.6 * s
            w = t["tail_width"] * (0.4 + s)
            xs_all.append(r * np.cos(th) + rng.normal(0, 1, npt) * w)
            ys_all.append(r * np.sin(th) + rng.normal(0, 1, npt) * w)
        tails = _particles(
            np.concatenate(xs_all), np.concatenate(ys_all), None, grid, rng, sigma=0.2, per_point=1
        )
        scene.maps.append(
            LightMap(tails, self._rates("Sbc", mag - 2.5 * np.log10(t["tail_frac"]), domain))
        )
        # asymmetric envelope: a diffuse exponential halo displaced from the primary
        a = t["sep_angle"] + np.pi / 2
        env = galsim.Exponential(half_light_radius=2.0 * re0, gsparams=GSPARAMS).shear(
            q=0.7, beta=a * galsim.radians
        )
        env = env.shift(t["env_shift"] * re0 * np.cos(a), t["env_shift"] * re0 * np.sin(a))
        scene.components.append(
            Component(env, self._rates("E", mag - 2.5 * np.log10(t["env_frac"]), domain))
        )

    # -- labels -----------------------------------------------------------------------------------
    def annotate(
        self, truth: dict[str, float], noiseless: dict[str, np.ndarray]
    ) -> dict[str, float]:
        """Gini, M20 (statmorph, noiseless i band) and the G–M20 class of 002 §2.1.

        ``noiseless``: domain name → [3, N, N] noiseless rate image (e-/s per pixel, ``render``)."""
        deep = self.domains[0]
        i = deep.bands.index("i")
        rate = noiseless[deep.name][i]
        # detection threshold: 2σ of the Y10 sky noise, as a rate
        threshold = 2.0 * np.sqrt(deep.sky_level()[i]) / deep.exposure[i]
        g, m = gini_m20(rate, threshold)
        return {
            "gini": g,
            "m20": m,
            "label_gm20": float(gm20_class(g, m)) if np.isfinite(g) else float(truth["label"]),
        }


def _particles(xs, ys, weights, grid: Grid, rng, sigma: float, per_point: int) -> np.ndarray:
    """Normalised light map of point clumps at (xs, ys) [arcsec], each a Gaussian of ``sigma``.

    Clumps are sampled as ``per_point`` particles each, binned on the map grid and smoothed —
    linear in the number of particles rather than in map pixels × clumps.
    """
    m = 2 * grid.n
    if per_point > 1:
        w = np.repeat(weights if weights is not None else np.ones(len(xs)), per_point)
        xs = np.repeat(xs, per_point) + rng.normal(0, sigma, len(w))
        ys = np.repeat(ys, per_point) + rng.normal(0, sigma, len(w))
        smooth = 1.0
    else:
        w = np.ones(len(xs)) if weights is None else weights
        smooth = sigma / grid.map_scale
    lo = -grid.n * grid.map_scale - grid.map_scale / 2  # bin i is centred on the map's sample i
    hi = lo + m * grid.map_scale
    hist, _, _ = np.histogram2d(ys, xs, bins=m, range=[[lo, hi], [lo, hi]], weights=w)
    return normalised(ndi.gaussian_filter(hist, smooth))
