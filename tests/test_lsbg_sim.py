"""The LSBG-vs-artifact mocks (004): LSBGs pass the catalogue cuts and render at their
magnitude, all four artifact kinds occur, DES and HSC see the same objects, and the stored noise
is the sky's."""

import galsim
import h5py
import numpy as np
import pytest

from training.simulate.base import truth_rng
from training.simulate.lsbg import ARTIFACT_KINDS, LsbgSimulator
from training.simulate.observe import rebin_matrix
from training.simulate.runner import generate, make_object
from training.surveys import band

#: what a truth keeps when its neighbours, field sources, nucleus and knots are switched off
ISOLATED = {
    "has_star": 0.0,
    "has_host": 0.0,
    "has_spiral": 0.0,
    "n_field": 0.0,
    "nucleus_frac": 0.0,
    "knot_n": 0.0,
    "x0": 0.0,
    "y0": 0.0,
}


@pytest.fixture(scope="module")
def sim():
    s = LsbgSimulator()
    s.prepare()
    return s


@pytest.fixture(scope="module")
def truths(sim):
    return [sim.draw(truth_rng(3, "lsbg", i)) for i in range(400)]


def _stamp_mags(rate: np.ndarray, survey: str) -> np.ndarray:
    """[3] AB magnitudes of the light summed over a [3, N, N] rate stamp."""
    return np.array(
        [
            -2.5 * np.log10(rate[b].sum() / band(survey, name).flux_rate(0.0))
            for b, name in enumerate("grz")
        ]
    )


def test_lsbgs_pass_the_catalogue_cuts(truths):
    lsbgs = [t for t in truths if t["label"] == 1]
    assert len(lsbgs) > 150
    for t in lsbgs:
        assert t["r_eff"] > 2.5 and t["mu_eff_g"] > 24.3
        assert 0.5 <= t["sersic_n"] <= 1.5 and 0.3 <= t["gr"] <= 0.8
        # mean surface brightness within the half-light ellipse: half the light over π r_eff² q
        mu = t["mag_g"] + 2.5 * np.log10(2 * np.pi * t["r_eff"] ** 2 * t["q"])
        assert mu == pytest.approx(t["mu_eff_g"], abs=1e-9)


def test_lsbg_renders_at_its_magnitude_colour_and_surface_brightness(sim, truths):
    des = sim.domains[0]
    compact = [t for t in truths if t["label"] == 1 and t["r_eff"] < 4.0][:4]
    assert len(compact) == 4
    n, scale = des.native_size, des.pixel_scale
    c = (np.arange(n) - (n - 1) / 2) * scale
    x, y = np.meshgrid(c, c)
    for t in compact:
        rate = sim.render({**t, **ISOLATED}, des)
        # the share of the body inside the 30″ stamp, from GalSim's own real-space drawing
        body = galsim.Sersic(n=t["sersic_n"], half_light_radius=t["r_eff"] * np.sqrt(t["q"]))
        body = body.shear(q=t["q"], beta=t["pa"] * galsim.radians)
        inside = body.drawImage(nx=n, ny=n, scale=scale).array.sum()
        mags = _stamp_mags(rate, des.survey) + 2.5 * np.log10(inside)
        assert mags[0] == pytest.approx(t["mag_g"], abs=0.01)
        assert mags[0] - mags[1] == pytest.approx(t["gr"], abs=0.005)
        assert mags[1] - mags[2] == pytest.approx(t["rz"], abs=0.005)
        # measured mean surface brightness within the half-light ellipse (the PSF moves a little
        # light out of it: a few hundredths of a magnitude at r_eff ≥ 2.5″)
        xr = x * np.cos(t["pa"]) + y * np.sin(t["pa"])
        yr = -x * np.sin(t["pa"]) + y * np.cos(t["pa"])
        ellipse = (xr / t["r_eff"]) ** 2 + (yr / (t["r_eff"] * t["q"])) ** 2 <= 1
        sb = rate[0][ellipse].sum() / (ellipse.sum() * scale**2)
        mu = -2.5 * np.log10(sb / band(des.survey, "g").flux_rate(0.0))
        assert mu == pytest.approx(t["mu_eff_g"], abs=0.12)


def test_both_classes_and_all_artifact_kinds_occur(truths):
    labels = np.array([t["label"] for t in truths])
    assert 150 < (labels == 1).sum() < 250
    kinds = np.array([t["artifact_kind"] for t in truths if t["label"] == 0])
    counts = np.bincount(kinds.astype(int), minlength=len(ARTIFACT_KINDS))
    assert len(counts) == len(ARTIFACT_KINDS) and counts.min() >= 20
    assert all(isinstance(v, float) for t in truths for v in t.values())
    # the classes overlap: some LSBGs have bright neighbours, some artifacts an LSBG-like blob
    assert any(t["has_star"] or t["has_host"] or t["has_spiral"] for t in truths if t["label"] == 1)
    assert any(t["has_body"] and t["artifact_kind"] > 0 for t in truths if t["label"] == 0)


def test_des_and_hsc_see_the_same_objects(sim, tmp_path):
    res = generate(sim, 4, tmp_path, seed=1, workers=1, progress=False)
    with h5py.File(res.paths["des"]) as des, h5py.File(res.paths["hsc"]) as hsc:
        assert des["images"].shape == hsc["images"].shape == (4, 3, 64, 64)
        np.testing.assert_array_equal(des["labels"][:], hsc["labels"][:])
        assert set(des["truth"]) == set(hsc["truth"])
        for k in des["truth"]:
            np.testing.assert_array_equal(des["truth"][k][:], hsc["truth"][k][:])
        assert des.attrs["survey"] == "DES" and hsc.attrs["survey"] == "HSC"


def test_same_light_in_both_surveys_and_rendering_is_deterministic(sim, truths):
    """Away from bright stars (whose halo follows each survey's PSF) both surveys record the same
    AB magnitudes in the 30″ field; a truth read back from a dataset (NaN for unused keys) renders
    the same pixels."""
    keys = {k for t in truths for k in t}
    des, hsc = sim.domains
    for t in [t for t in truths if not t["has_star"]][:3]:
        a = sim.render(t, des)
        b = sim.render(t, hsc)
        np.testing.assert_allclose(_stamp_mags(a, "DES"), _stamp_mags(b, "HSC"), atol=0.02)
        padded = {k: t.get(k, np.nan) for k in keys}
        np.testing.assert_array_equal(sim.render(padded, des), a)


def test_stored_noise_is_the_resampled_sky(sim, truths):
    """Where the source adds < 5% to the sky, image − E[image] has the variance
    (R²) · sky · (R²)ᵀ of flux-conserving resampling R (``observe.rebin_matrix``)."""
    chi2 = {(d.name, b): [] for d in sim.domains for b in range(len(d.bands))}
    for i in [i for i, t in enumerate(truths) if t["label"] == 1][:3]:
        truth, images = make_object(sim, 3, i)
        for d in sim.domains:
            r = rebin_matrix(d.native_size, d.out_size)
            r2 = r**2
            source = sim.render(truth, d) * np.asarray(d.exposure)[:, None, None]
            for b, sky in enumerate(d.sky_level()):
                mean = r @ source[b] @ r.T
                src_var = r2 @ source[b] @ r2.T
                sky_var = r2 @ np.full_like(source[b], sky) @ r2.T
                empty = src_var < 0.05 * sky_var
                resid = images[d.name][b] - mean
                chi2[d.name, b].append((resid**2 / (src_var + sky_var))[empty])
    for v in chi2.values():
        v = np.concatenate(v)
        assert len(v) > 5000
        assert v.mean() == pytest.approx(1.0, abs=0.06)
