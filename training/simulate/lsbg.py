"""LSBG-vs-artifact mocks: 30″×30″ g, r, z cutouts centred on a low-surface-brightness candidate,
seen by a DES Y3-like and an HSC-Wide-like survey and resampled to 64×64 (004 §2).

Label 1, a low-surface-brightness galaxy (LSBG), passes the cuts of 004 §2.2: a Sérsic body
(n 0.5–1.5) of half-light radius r_eff > 2.5″ and mean surface brightness within it
μ_eff(g) > 24.3 mag/arcsec², blue or red (g−r 0.3–0.8), sometimes with a faint nucleus or a few
star-forming knots. ``r_eff`` is the semi-major axis of the half-light ellipse (axis ratio q), so

    mag_g = μ_eff(g) − 2.5 log10(2π r_eff² q)     (half the light over the area π r_eff² q).

Label 0, an artifact, is one of the four kinds of 004 §1 (``artifact_kind``, ``ARTIFACT_KINDS``):

0. a faint compact galaxy at the centre, in the diffuse light of a bright star (5–15″ away,
   g 11–15, ``psf.bright_star_psf``: spikes and halo) or of a giant elliptical;
1. Galactic cirrus: a log-normal Gaussian random field with a steep, anisotropic power spectrum
   filling the cutout, with no central concentration;
2. a star-forming knot in the arm of a large spiral 8–16″ away, whose arm is wound through the
   centre;
3. a tidal stream, an arc around a bright elliptical 8–15″ away, passing through the centre.

The classes overlap near the boundary, as the visually rejected artifacts of 004 do: a quarter
of the cirrus, spiral and tidal artifacts carry a smooth LSBG-like blob at the centre, kind 0's
central galaxy reaches LSBG-like sizes and surface brightnesses, and a third of the LSBGs have a
bright star, an elliptical or a spiral beside them. Every cutout also holds a few faint field stars
and galaxies. Simple classifiers on the pixels reach ~85% (a random forest on 16×16 stretched
images, 2,000 objects), below the 92% of 004's CNN on DES.

Colours. Galaxy colours come from GalSim's CWW templates at z = ``COLOUR_Z`` through GalSim's
LSST g, r, z bandpasses, used as proxies for the DES and HSC filters (``sed.py``). An LSBG's, a
blob's, cirrus' or a stream's r−z follows its drawn g−r along the template sequence (E, Sbc, Scd,
Im; the LSBG's and blob's with 0.05 mag scatter); stars follow a rough main-sequence locus
(``_STAR_GR``, ``_STAR_RZ``). Magnitudes are AB; ``training.surveys.band(survey, b).flux_rate``
turns them into electrons/s for each survey.

Diffuse structure the GalSim profiles do not describe (cirrus, arms, streams) is a light map on
the part of the renderer's map covering the stamp plus ``_MARGIN`` (``_window``), written as
g-band surface brightness so that it does not depend on the domain's pixel. Everything random at
render time is drawn from ``seed_galsim``, so the pixels of both domains follow from the truth.
"""

from __future__ import annotations

import galsim
import numpy as np
from scipy import ndimage as ndi

from ..surveys import band, telescope
from . import sed
from .domains import Domain
from .psf import GSPARAMS, bright_star_psf, domain_psfs
from .render import (
    Component,
    Grid,
    LightMap,
    Scene,
    disk_plane,
    draw_scene,
    grid_for,
    sky_plane,
)

BANDS = ("g", "r", "z")
FIELD = 30.0  # cutout side [arcsec] (004 §2.3)
OUT_SIZE = 64
#: DES Y3 (DR1) depth as a fraction of the full survey's exposure: ~4 of its 10 tilings.
DES_Y3_DEPTH = 0.4
#: redshift of the template colours: the LSBGs and neighbours are nearby galaxies.
COLOUR_Z = 0.03
#: Fourier grid side in stamp sides (``render.GRID_FACTOR``). The 30″ stamps already hold the
#: neighbours, so 2× keeps the wrap-around error within about twice the sky noise, and the 3×
#: default would cost more than twice the time (figures: docs/training.md, the mocks).
GRID_FACTOR = 2
#: 004 balances its classes (20,000 LSBGs, 20,000 artifacts).
LSBG_FRACTION = 0.5
ARTIFACT_KINDS = ("bright_neighbour", "cirrus", "spiral_arm", "tidal_debris")
#: 004 gives no breakdown of its artifacts; ours, with light around bright objects the commonest.
KIND_FRACTIONS = (0.35, 0.2, 0.25, 0.2)
#: Star colours: a rough main-sequence stellar locus (g−r → r−z), G to early-M dwarfs.
_STAR_GR = np.array([0.2, 0.4, 0.7, 1.0, 1.3, 1.45])
_STAR_RZ = np.array([0.05, 0.18, 0.35, 0.6, 1.1, 1.6])
#: the bright star's own seeing, as a fraction of the survey's: the renderer convolves every
#: component with the band PSF again, so the star's core ends up ≈ 4% wider than a point source.
_STAR_SHARPNESS = 0.3
_MARGIN = 3.0  # light maps are evaluated this far [arcsec] beyond the stamp


def domains() -> tuple[Domain, Domain]:
    """DES Y3-like (source) and HSC-Wide-like (target): the same 30″ fields in two surveys."""
    des, hsc = telescope("DES").pixel_scale, telescope("HSC").pixel_scale
    des_t = tuple(DES_Y3_DEPTH * band("DES", b).full_exposure for b in BANDS)
    hsc_t = tuple(band("HSC", b).full_exposure for b in BANDS)

    def seconds(t):
        return ", ".join(f"{b} {s:.0f} s" for b, s in zip(BANDS, t, strict=True))

    return (
        Domain(
            "des",
            "DES",
            BANDS,
            des_t,
            round(FIELD / des),
            OUT_SIZE,
            description=f"DES Y3-like depth ({seconds(des_t)}), 30″ resampled to 64×64",
        ),
        Domain(
            "hsc",
            "HSC",
            BANDS,
            hsc_t,
            round(FIELD / hsc),
            OUT_SIZE,
            description=f"HSC-SSP Wide depth ({seconds(hsc_t)}), 30″ resampled to 64×64",
        ),
    )


class LsbgSimulator:
    """LSBGs (label 1) and the artifacts that pass the same cuts (label 0), in DES and HSC.

    Truth keys (floats; NaN in a dataset where an object has no such part), sizes in arcsec,
    angles in radians, magnitudes AB, surface brightnesses μ in mag/arcsec², colours in mag:

    * always: ``label``, ``seed_galsim``, ``x0``/``y0`` (sub-pixel offset), ``n_field``, and the
      0/1 flags ``has_body``, ``has_star``, ``has_host``, ``has_spiral``, ``has_cirrus``,
      ``has_stream``; artifacts also ``artifact_kind`` (0–3, ``ARTIFACT_KINDS``);
    * the central Sérsic body (LSBG, kind 0's compact galaxy, or an artifact's blob): ``r_eff``
      (semi-major), ``mu_eff_g``, ``mag_g``, ``sersic_n``, ``q``, ``pa``, ``gr``, ``rz``; LSBGs
      also ``nucleus_frac``, ``knot_n``, ``knot_frac`` (fractions of the body's flux);
    * neighbours: ``star_*`` (mag_g, dist, angle, gr, rz), ``host_*`` (elliptical: mag_g, n, re,
      q, pa, dist, angle), ``spiral_*`` (mag_g, re, cos_i, pa, dist, angle, bt, arm_amp, pitch,
      arms, sharp, phase, knot_n) with the central knot's ``knot_mag_g``, ``knot_sigma``;
    * diffuse light: ``cirrus_*`` (mu_g, slope, sigma, aniso, angle, gr, rz), ``stream_*`` (mu_g,
      width, length, offset, gr, rz).
    """

    task = "lsbg"
    classes = ("artifact", "lsbg")

    def __init__(self, lsbg_fraction: float = LSBG_FRACTION) -> None:
        if not 0.0 <= lsbg_fraction <= 1.0:
            raise ValueError(f"lsbg_fraction must lie in [0, 1], got {lsbg_fraction}")
        self.lsbg_fraction = lsbg_fraction
        self.domains = domains()
        self._colours: dict[str, tuple[float, float]] | None = None

    # -- caches -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        if self._colours is None:
            mags = {
                t: [sed.apparent_mag(t, b, COLOUR_Z, 0.0) for b in BANDS] for t in sed.TEMPLATES
            }
            self._colours = {t: (m[0] - m[1], m[1] - m[2]) for t, m in mags.items()}
            self._seq_gr, self._seq_rz = np.array(sorted(self._colours.values())).T
            for d in self.domains:
                domain_psfs(d, grid_for(d.native_size, d.pixel_scale, GRID_FACTOR))

    def _rz(self, gr: float) -> float:
        """r−z of a galaxy of colour g−r, along the CWW template sequence [mag]."""
        return float(np.interp(gr, self._seq_gr, self._seq_rz))

    def _rates(self, mag_g: float, gr: float, rz: float, domain: Domain) -> np.ndarray:
        """[3] electrons/s in g, r, z of ``domain.survey`` for a g magnitude and two colours."""
        mags = (mag_g, mag_g - gr, mag_g - gr - rz)
        bands = [band(domain.survey, b) for b in BANDS]
        return np.array([b.flux_rate(m) for b, m in zip(bands, mags, strict=True)])

    def _template_rates(self, template: str, mag_g: float, domain: Domain) -> np.ndarray:
        return self._rates(mag_g, *self._colours[template], domain)

    # -- truth ------------------------------------------------------------------------------------
    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        """Truth of one cutout (keys and units in the class docstring)."""
        self.prepare()
        label = int(rng.random() < self.lsbg_fraction)
        t = {"label": float(label), "seed_galsim": float(rng.integers(1, 2**31 - 1))}
        t["x0"], t["y0"] = rng.uniform(-0.1, 0.1, 2)
        t["n_field"] = float(rng.poisson(1.5))
        for part in ("body", "star", "host", "spiral", "cirrus", "stream"):
            t[f"has_{part}"] = 0.0
        if label == 1:
            self._draw_body(
                rng,
                t,
                r_eff=2.5 + min(rng.gamma(2.0, 0.8), 6.5),
                mu=24.3 + 2.2 * rng.beta(1.2, 1.8),
                n=(0.5, 1.5),
            )
            t["nucleus_frac"] = 0.0 if rng.random() < 0.75 else rng.uniform(0.005, 0.04)
            t["knot_n"] = 0.0 if rng.random() < 0.7 else float(rng.integers(1, 6))
            t["knot_frac"] = rng.uniform(0.02, 0.08)
            u = rng.random()  # a third of the LSBGs have a bright neighbour
            if u < 0.15:
                self._draw_star(rng, t, mag=(12.0, 16.0), dist=(8.0, 15.0))
            elif u < 0.25:
                self._draw_host(rng, t, mag=(14.0, 17.0), dist=(10.0, 16.0))
            elif u < 0.35:
                self._draw_spiral(rng, t, dist=(11.0, 16.0), through_centre=False)
            return t
        kind = int(rng.choice(4, p=KIND_FRACTIONS))
        t["artifact_kind"] = float(kind)
        if kind == 0:
            self._draw_body(
                rng,
                t,
                r_eff=np.exp(rng.uniform(np.log(0.5), np.log(3.5))),
                mu=rng.uniform(22.5, 25.5),
                n=(1.0, 3.0),
            )
            if rng.random() < 0.7:
                self._draw_star(rng, t, mag=(11.0, 15.0), dist=(5.0, 15.0))
            else:
                self._draw_host(rng, t, mag=(13.0, 16.0), dist=(6.0, 14.0))
            return t
        if rng.random() < 0.25:  # an LSBG-like blob on top of the artifact
            self._draw_body(
                rng, t, r_eff=rng.uniform(1.5, 4.0), mu=rng.uniform(24.0, 26.0), n=(0.5, 2.0)
            )
        if kind == 1:
            t.update(
                has_cirrus=1.0,
                cirrus_mu_g=rng.uniform(24.8, 26.5),
                cirrus_slope=rng.uniform(2.4, 3.4),
                cirrus_sigma=rng.uniform(0.4, 1.0),
                cirrus_aniso=rng.uniform(1.0, 4.0),
                cirrus_angle=rng.uniform(0, np.pi),
                cirrus_gr=rng.uniform(0.5, 0.9),
            )
            t["cirrus_rz"] = self._rz(t["cirrus_gr"]) + rng.normal(0, 0.05)
        elif kind == 2:
            self._draw_spiral(rng, t, dist=(8.0, 16.0), through_centre=True)
        else:
            self._draw_host(rng, t, mag=(14.0, 17.0), dist=(8.0, 15.0))
            t.update(
                has_stream=1.0,
                stream_mu_g=rng.uniform(24.0, 26.0),
                stream_width=rng.uniform(0.8, 2.5),
                stream_length=rng.uniform(6.0, 20.0),
                stream_gr=rng.uniform(0.4, 0.8),
            )
            t["stream_offset"] = rng.uniform(-0.5, 0.5) * t["stream_length"]  # along the arc
            t["stream_rz"] = self._rz(t["stream_gr"])
        return t

    def _draw_body(self, rng, t, r_eff: float, mu: float, n: tuple[float, float]) -> None:
        """The central Sérsic body from r_eff (semi-major) and μ_eff(g); n is rounded to 0.1
        because GalSim tabulates each Sérsic index once per process."""
        q = rng.uniform(0.4, 1.0)
        gr = rng.uniform(0.3, 0.8)
        t.update(
            has_body=1.0,
            r_eff=r_eff,
            mu_eff_g=mu,
            q=q,
            pa=rng.uniform(0, np.pi),
            sersic_n=round(rng.uniform(*n), 1),
            gr=gr,
            rz=self._rz(gr) + rng.normal(0, 0.05),
        )
        t["mag_g"] = mu - 2.5 * np.log10(2 * np.pi * r_eff**2 * q)

    def _draw_star(self, rng, t, mag, dist) -> None:
        gr = rng.uniform(0.3, 1.3)
        t.update(
            has_star=1.0,
            star_mag_g=rng.uniform(*mag),
            star_dist=rng.uniform(*dist),
            star_angle=rng.uniform(0, 2 * np.pi),
            star_gr=gr,
            star_rz=float(np.interp(gr, _STAR_GR, _STAR_RZ)),
        )

    def _draw_host(self, rng, t, mag, dist) -> None:
        t.update(
            has_host=1.0,
            host_mag_g=rng.uniform(*mag),
            host_n=round(rng.uniform(3, 5) * 2) / 2,
            host_re=rng.uniform(2.0, 5.0),
            host_q=rng.uniform(0.6, 1.0),
            host_pa=rng.uniform(0, np.pi),
            host_dist=rng.uniform(*dist),
            host_angle=rng.uniform(0, 2 * np.pi),
        )

    def _draw_spiral(self, rng, t, dist, through_centre: bool) -> None:
        t.update(
            has_spiral=1.0,
            spiral_mag_g=rng.uniform(14.0, 17.0),
            spiral_re=rng.uniform(3.0, 6.5),
            spiral_cos_i=rng.uniform(0.35, 1.0),
            spiral_pa=rng.uniform(0, np.pi),
            spiral_dist=rng.uniform(*dist),
            spiral_angle=rng.uniform(0, 2 * np.pi),
            spiral_bt=rng.uniform(0.05, 0.3),
            spiral_arm_amp=rng.uniform(0.5, 2.0),
            spiral_pitch=np.radians(rng.uniform(12, 30)),
            spiral_arms=float(rng.choice([2, 2, 3])),
            spiral_sharp=rng.uniform(1.5, 4.0),
            spiral_phase=0.0 if through_centre else rng.uniform(0, 2 * np.pi),
        )
        if through_centre:  # the candidate: a star-forming knot on the arm, and more along it
            t.update(
                knot_mag_g=rng.uniform(21.5, 24.0),
                knot_sigma=rng.uniform(0.3, 1.2),
                spiral_knot_n=float(rng.integers(2, 7)),
            )

    # -- rendering --------------------------------------------------------------------------------
    def render(self, truth: dict[str, float], domain: Domain) -> np.ndarray:
        """[3, N, N] noiseless e-/s per native pixel, the candidate at the stamp's centre."""
        self.prepare()
        grid = grid_for(domain.native_size, domain.pixel_scale, GRID_FACTOR)
        scene = self.scene(truth, domain, grid)
        shift = (truth["x0"], truth["y0"])
        return draw_scene(scene, domain_psfs(domain, grid), grid, domain.native_size, shift=shift)

    def scene(self, t: dict[str, float], domain: Domain, grid: Grid) -> Scene:
        """The cutout's components and light maps with their per-band flux rates in ``domain``."""
        rng = np.random.default_rng(int(t["seed_galsim"]))
        scene = Scene()
        if t["has_body"]:
            self._body(t, domain, scene, rng)
        if t["has_star"]:
            star = bright_star_psf(domain.survey, "r", _STAR_SHARPNESS)
            rates = self._rates(t["star_mag_g"], t["star_gr"], t["star_rz"], domain)
            _add(scene, star, rates, _polar(t["star_dist"], t["star_angle"]))
        if t["has_host"]:
            prof = galsim.Sersic(n=t["host_n"], half_light_radius=t["host_re"], gsparams=GSPARAMS)
            prof = prof.shear(q=t["host_q"], beta=t["host_pa"] * galsim.radians)
            rates = self._template_rates("E", t["host_mag_g"], domain)
            _add(scene, prof, rates, _polar(t["host_dist"], t["host_angle"]))
        if t["has_spiral"]:
            self._spiral(t, domain, scene, grid, rng)
        if t["has_cirrus"]:
            self._cirrus(t, domain, scene, grid, rng)
        if t["has_stream"]:
            self._stream(t, domain, scene, grid)
        self._field(t, domain, scene, rng)
        return scene

    def _body(self, t, domain, scene, rng) -> None:
        """Sérsic body (GalSim's area-preserving half-light radius is r_eff √q), nucleus, knots."""
        q, pa, re = t["q"], t["pa"], t["r_eff"]
        prof = galsim.Sersic(n=t["sersic_n"], half_light_radius=re * np.sqrt(q), gsparams=GSPARAMS)
        mag, gr, rz = t["mag_g"], t["gr"], t["rz"]
        _add(scene, prof.shear(q=q, beta=pa * galsim.radians), self._rates(mag, gr, rz, domain))
        if _value(t, "nucleus_frac") > 0:
            m_nuc = mag - 2.5 * np.log10(t["nucleus_frac"])
            nucleus = galsim.Gaussian(sigma=0.15, gsparams=GSPARAMS)
            _add(scene, nucleus, self._rates(m_nuc, gr, rz, domain))
        n = int(_value(t, "knot_n"))
        if n:  # blue clumps scattered over the body's half-light ellipse
            w = rng.lognormal(0, 0.5, n)
            xy = rng.normal(0, 0.5, (n, 2)) * [re, re * q]
            xs = xy[:, 0] * np.cos(pa) - xy[:, 1] * np.sin(pa)
            ys = xy[:, 0] * np.sin(pa) + xy[:, 1] * np.cos(pa)
            for k in range(n):
                knot = galsim.Gaussian(sigma=rng.uniform(0.2, 0.5), gsparams=GSPARAMS)
                m_k = mag - 2.5 * np.log10(t["knot_frac"] * w[k] / w.sum())
                _add(scene, knot, self._template_rates("Im", m_k, domain), (xs[k], ys[k]))

    def _spiral(self, t, domain, scene, grid, rng) -> None:
        """Bulge + inclined disk + log-spiral arms (+ knots) centred ``spiral_dist`` away."""
        cx, cy = _polar(t["spiral_dist"], t["spiral_angle"])
        mag, bt, re = t["spiral_mag_g"], t["spiral_bt"], t["spiral_re"]
        cos_i, pa = t["spiral_cos_i"], t["spiral_pa"]
        bulge = galsim.Sersic(n=2.5, half_light_radius=0.2 * re, gsparams=GSPARAMS)
        bulge = bulge.shear(q=0.8, beta=pa * galsim.radians)
        _add(scene, bulge, self._template_rates("E", mag - 2.5 * np.log10(bt), domain), (cx, cy))
        disk = galsim.InclinedExponential(
            inclination=np.arccos(cos_i) * galsim.radians,
            half_light_radius=re,
            scale_h_over_r=0.1,
            gsparams=GSPARAMS,
        ).rotate(pa * galsim.radians)
        m_disk = mag - 2.5 * np.log10(1 - bt)
        _add(scene, disk, self._template_rates("Sbc", m_disk, domain), (cx, cy))
        # arms: the disk's surface brightness [g flux / arcsec²] modulated by m log-spiral ridges,
        # phased so that one ridge passes through the cutout centre (plus ``spiral_phase``)
        h, m, tan_p = re / 1.678, t["spiral_arms"], np.tan(t["spiral_pitch"])
        xd0, yd0 = disk_plane(-cx, -cy, pa, cos_i)
        rc = np.hypot(xd0, yd0)
        phi = np.arctan2(yd0, xd0) - np.log(rc / h) / tan_p + t["spiral_phase"] / m
        sl, x, y = _window(grid)
        xd, yd = disk_plane(x - cx, y - cy, pa, cos_i)
        r = np.hypot(xd, yd) + 1e-6
        ridge = (1 + np.cos(m * (np.arctan2(yd, xd) - np.log(r / h) / tan_p - phi))) / 2
        disk_sb = 10 ** (-0.4 * m_disk) * np.exp(-r / h) / (2 * np.pi * h**2 * cos_i)
        sb = t["spiral_arm_amp"] * disk_sb * ridge ** t["spiral_sharp"]
        sb *= 1 - np.exp(-((r / (0.4 * re)) ** 2))  # no arms inside the bulge
        scene.maps.append(self._light_map(sb, sl, grid, *self._colours["Scd"], domain))
        if not _value(t, "knot_mag_g"):
            return
        knot = galsim.Gaussian(sigma=t["knot_sigma"], gsparams=GSPARAMS)
        _add(scene, knot, self._template_rates("Im", t["knot_mag_g"], domain))
        n = int(t["spiral_knot_n"])
        rk = np.clip(rc + rng.uniform(-5, 5, n), 0.5 * h, None)
        th = np.log(rk / h) / tan_p + phi + rng.normal(0, 0.05, n)
        xs, ys = sky_plane(rk * np.cos(th), rk * np.sin(th), pa, cos_i)
        for k in range(n):
            knot = galsim.Gaussian(sigma=rng.uniform(0.3, 0.8), gsparams=GSPARAMS)
            m_k = t["knot_mag_g"] + rng.uniform(0.0, 2.0)
            _add(scene, knot, self._template_rates("Im", m_k, domain), (xs[k] + cx, ys[k] + cy))

    def _cirrus(self, t, domain, scene, grid, rng) -> None:
        """Log-normal random field, P(k) ∝ k^−slope stretched by ``cirrus_aniso`` across
        ``cirrus_angle``, scaled to mean surface brightness ``cirrus_mu_g`` over the cutout.

        The field is drawn on a fixed 64″ periodic grid of 0.5″ cells (so both domains see the same
        cirrus) and interpolated linearly onto the map.
        """
        m, side = 128, 64.0
        k = np.fft.fftfreq(m, side / m)
        kx, ky = np.meshgrid(k, k)
        c, s = np.cos(t["cirrus_angle"]), np.sin(t["cirrus_angle"])
        kk = np.hypot(t["cirrus_aniso"] * (c * kx + s * ky), -s * kx + c * ky)
        kk[0, 0] = np.inf
        amp = kk ** (-t["cirrus_slope"] / 2)
        f = np.fft.ifft2(np.fft.fft2(rng.normal(size=(m, m))) * amp).real
        field = np.exp(t["cirrus_sigma"] * f / f.std())
        sl, x, y = _window(grid)
        cells = (np.stack([y, x]) + side / 2) / (side / m)
        sb = ndi.map_coordinates(field, cells, order=1, mode="grid-wrap")
        inside = (np.abs(x) <= FIELD / 2) & (np.abs(y) <= FIELD / 2)
        sb *= 10 ** (-0.4 * t["cirrus_mu_g"]) / sb[inside].mean()
        scene.maps.append(self._light_map(sb, sl, grid, t["cirrus_gr"], t["cirrus_rz"], domain))

    def _stream(self, t, domain, scene, grid) -> None:
        """A stream on the circle around the host through the cutout centre: Gaussian across
        (σ ``stream_width``) and along (σ ``stream_length``, peak ``stream_offset`` from the
        centre), with ridge surface brightness ``stream_mu_g`` at the centre."""
        a, d = t["host_angle"], t["host_dist"]
        sl, x, y = _window(grid)
        hx, hy = _polar(d, a)
        dx, dy = x - hx, y - hy
        along = d * ((np.arctan2(dy, dx) - a) % (2 * np.pi) - np.pi)  # arc length from the centre
        w, length, s0 = t["stream_width"], t["stream_length"], t["stream_offset"]
        across = (np.hypot(dx, dy) - d) ** 2 / (2 * w**2)
        along = ((along - s0) ** 2 - s0**2) / (2 * length**2)  # 0 at the centre
        sb = 10 ** (-0.4 * t["stream_mu_g"]) * np.exp(-across - along)
        scene.maps.append(self._light_map(sb, sl, grid, t["stream_gr"], t["stream_rz"], domain))

    def _field(self, t, domain, scene, rng) -> None:
        """``n_field`` faint field stars and compact galaxies, more than 3″ from the centre."""
        for _ in range(int(t["n_field"])):
            xy = rng.uniform(-14, 14, 2)
            while np.hypot(*xy) < 3.0:
                xy = rng.uniform(-14, 14, 2)
            if rng.random() < 0.3:
                gr = rng.uniform(0.3, 1.4)
                rz = float(np.interp(gr, _STAR_GR, _STAR_RZ))
                rates = self._rates(rng.uniform(17, 23), gr, rz, domain)
                _add(scene, galsim.DeltaFunction(), rates, xy)
            else:
                hlr = np.exp(rng.uniform(np.log(0.25), 0.0))
                prof = galsim.Exponential(half_light_radius=hlr, gsparams=GSPARAMS)
                q, beta = rng.uniform(0.4, 1.0), rng.uniform(0, np.pi) * galsim.radians
                prof = prof.shear(q=q, beta=beta)
                template = sed.TEMPLATES[int(rng.integers(0, 4))]
                _add(scene, prof, self._template_rates(template, rng.uniform(20, 24.5), domain), xy)

    def _light_map(self, sb, sl, grid: Grid, gr: float, rz: float, domain: Domain) -> LightMap:
        """LightMap of g-band surface brightness ``sb`` [AB flux / arcsec², i.e. 10^(−0.4 μ)] on
        the window ``sl`` (``_window``) of the map."""
        full = np.zeros((2 * grid.n, 2 * grid.n))
        full[sl, sl] = sb
        total = sb.sum()
        mag_g = -2.5 * np.log10(total * grid.map_scale**2)
        return LightMap(full / total, self._rates(mag_g, gr, rz, domain))


def _add(scene: Scene, profile: galsim.GSObject, rates: np.ndarray, at=(0.0, 0.0)) -> None:
    """Add a unit-flux profile centred at ``at`` = (x, y) [arcsec] with flux ``rates`` [e-/s]."""
    if at[0] or at[1]:
        profile = profile.shift(float(at[0]), float(at[1]))
    scene.components.append(Component(profile, rates))


def _polar(dist: float, angle: float) -> tuple[float, float]:
    return dist * np.cos(angle), dist * np.sin(angle)


def _value(t: dict[str, float], key: str) -> float:
    """``t[key]``, or 0 where the object has no such parameter (missing, or NaN as read back from
    a dataset, whose writer fills the keys a class does not use with NaN)."""
    v = t.get(key, np.nan)
    return 0.0 if np.isnan(v) else float(v)


def _window(grid: Grid) -> tuple[slice, np.ndarray, np.ndarray]:
    """The light-map rows/columns covering the stamp plus ``_MARGIN``, and their (x, y) [arcsec]."""
    half = int(np.ceil((grid.n * grid.scale / 4 + _MARGIN) / grid.map_scale))
    sl = slice(grid.n - half, grid.n + half + 1)
    c = (np.arange(sl.start, sl.stop) - grid.n) * grid.map_scale
    x, y = np.meshgrid(c, c)
    return sl, x, y
