"""The morphology stretch (002 §2.2): range, clipping, shapes, per-band independence, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from core.preprocess import Preprocessing, morphology_stretch, plane_percentiles, rgb_composite


def _images(n: int = 4, b: int = 3, size: int = 50, seed: int = 0) -> np.ndarray:
    """[n, b, size, size] sky noise (σ = 50 e⁻) plus a bright central blob, float32."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    blob = 5000.0 * np.exp(-np.hypot(xx, yy) / 4.0)
    return (50.0 * rng.standard_normal((n, b, size, size)) + blob).astype(np.float32)


def test_range_and_dtype():
    out = morphology_stretch(_images())
    assert out.dtype == np.float32 and out.shape == (4, 3, 50, 50)
    assert out.min() >= 0.0 and out.max() <= 1.0
    # every band of every image reaches both ends: min–max after clipping and stretching
    assert np.allclose(out.min(axis=(-2, -1)), 0.0) and np.allclose(out.max(axis=(-2, -1)), 1.0)


def test_formula():
    x = _images(n=1)[0, 0].astype(np.float64)
    lo, hi = np.percentile(x, [0.1, 99.9])
    c = Preprocessing().c
    y = np.arcsinh(c * np.clip(x, lo, hi))
    expected = (y - np.arcsinh(c * lo)) / (np.arcsinh(c * hi) - np.arcsinh(c * lo))
    np.testing.assert_allclose(morphology_stretch(x[None]), expected[None], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("qs", [(0.1, 99.9), (0.0, 100.0), (25.5, 50.0, 62.9117536730969)])
def test_plane_percentiles_are_numpys_to_the_bit(dtype, qs):
    """The sort-based percentiles equal np.percentile (linear) of the float64 images exactly,
    with ties, constant planes and tiny planes."""
    rng = np.random.default_rng(7)
    for shape in [(2, 3, 100, 100), (3, 64, 64), (4, 2, 1, 1), (2, 3, 2, 3)]:
        x = (rng.standard_normal(shape) * 300).astype(dtype)
        x[0, 0] = np.round(x[0, 0] / 100)  # ties
        x[-1, -1] = 7.0  # a constant plane
        expected = np.percentile(x.astype(np.float64), qs, axis=(-2, -1), keepdims=True)
        for e, got in zip(expected, plane_percentiles(x, qs), strict=True):
            assert got.dtype == np.float64 and got.shape == e.shape
            assert np.array_equal(got, e)


@pytest.mark.parametrize("qs", [(-10.0, 50.0), (50.0, 100.5)])
def test_plane_percentiles_refuse_out_of_range(qs):
    with pytest.raises(ValueError, match=r"range \[0, 100\]"):
        plane_percentiles(np.zeros((1, 4, 4), np.float32), qs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_stretch_is_the_plain_numpy_formula_to_the_bit(dtype):
    """The in-place stretch gives the very float32 values of the plain formula on float64."""
    x = _images(n=3, size=40, seed=4)
    x[1, 2] = 5.0  # a constant band: zeros
    x = x.astype(dtype)
    x64 = x.astype(np.float64)
    lo, hi = np.percentile(x64, [0.1, 99.9], axis=(-2, -1), keepdims=True)
    c = Preprocessing().c
    y = np.arcsinh(c * np.clip(x64, lo, hi))
    y_lo, y_hi = np.arcsinh(c * lo), np.arcsinh(c * hi)
    span = y_hi - y_lo
    expected = np.divide(y - y_lo, span, out=np.zeros_like(x64), where=span > 0)
    assert np.array_equal(morphology_stretch(x), expected.astype(np.float32))
    assert not morphology_stretch(x)[1, 2].any()


def test_hot_pixel_is_clipped():
    """One hot pixel (a cosmic ray) must not compress the galaxy into the bottom of the range."""
    clean = _images(n=1)
    hot = clean.copy()
    hot[0, 1, 3, 3] = 1e7
    a, b = morphology_stretch(clean), morphology_stretch(hot)
    assert b[0, 1, 3, 3] == pytest.approx(1.0)
    centre = (slice(None), slice(None), slice(20, 30), slice(20, 30))
    # with clipping the galaxy keeps its contrast; without it, it is squeezed down the range
    assert b[centre][0, 1].mean() > 0.8
    np.testing.assert_allclose(b[centre], a[centre], atol=0.05)
    no_clip = morphology_stretch(hot, low=0.0, high=100.0)
    assert no_clip[centre][0, 1].mean() < 0.7


def test_shapes():
    x = _images(n=2)
    np.testing.assert_array_equal(morphology_stretch(x[0]), morphology_stretch(x)[0])
    with pytest.raises(ValueError, match=r"\[N, B, H, W\] or \[B, H, W\], got shape \(50, 50\)"):
        morphology_stretch(x[0, 0])
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaNs or infs"):
        morphology_stretch(bad)


def test_bands_and_images_independent():
    x = _images(n=2)
    y = x.copy()
    y[0, 2] *= 100.0  # rescaling one band of one image
    y[1, 0] = 0.0  # and zeroing another
    a, b = morphology_stretch(x), morphology_stretch(y)
    np.testing.assert_array_equal(a[0, :2], b[0, :2])
    np.testing.assert_array_equal(a[1, 1:], b[1, 1:])
    # not scale-free: the stretch is logarithmic in flux, so 100× brighter lifts the faint pixels
    assert b[0, 2].mean() > a[0, 2].mean() + 0.05
    assert np.all(b[1, 0] == 0.0)  # a constant band is all zeros, not NaN


def test_parameters():
    p = Preprocessing()
    assert p.to_dict() == {"name": "morphology_stretch", "low": 0.1, "high": 99.9, "c": 0.01}
    assert Preprocessing.from_dict(p.to_dict()) == p
    x = _images(n=1)
    np.testing.assert_array_equal(p(x), morphology_stretch(x))
    assert p.with_params(c=2.0).c == 2.0
    with pytest.raises(ValueError, match="unknown preprocessing parameters"):
        Preprocessing.from_dict({**p.to_dict(), "gamma": 1.0})
    with pytest.raises(ValueError, match="low < high"):
        Preprocessing(low=50.0, high=10.0)
    with pytest.raises(ValueError, match="c must be positive"):
        Preprocessing(c=0.0)


def test_rgb_composite():
    x = _images(n=1)[0]
    rgb = rgb_composite(x)
    assert rgb.shape == (50, 50, 3) and rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_array_equal(rgb[..., 0], morphology_stretch(x)[2])  # red = last band
    with pytest.raises(ValueError, match="three bands"):
        rgb_composite(np.zeros((5, 8, 8)))


def test_flux_scale_to_nanomaggies():
    """A source of AB magnitude m carries 10^(−0.4 (m − 22.5)) nanomaggies whatever the exposure:
    deep and shallow cutouts of one galaxy agree once converted."""
    from core.preprocess import FluxScale, preprocessing_from_dict

    m = 20.0
    zp_deep, zp_shallow = np.array([31.0, 32.0]), np.array([28.5, 29.5])  # 10× shorter exposure
    img = np.zeros((2, 4, 4))
    deep, shallow = img.copy(), img.copy()
    deep[:, 1, 1] = 10 ** (-0.4 * (m - zp_deep))  # electrons
    shallow[:, 1, 1] = 10 ** (-0.4 * (m - zp_shallow))
    p = FluxScale(magzp=tuple(zp_deep))
    expected = 10 ** (-0.4 * (m - 22.5))
    np.testing.assert_allclose(p(deep).sum(axis=(-2, -1)), expected, rtol=1e-6)
    np.testing.assert_allclose(p(shallow, magzp=zp_shallow).sum(axis=(-2, -1)), expected, rtol=1e-6)
    assert preprocessing_from_dict(p.to_dict()) == p
    centi = FluxScale(magzp=tuple(zp_deep), unit_nmgy=0.01)
    np.testing.assert_allclose(centi(deep).sum(axis=(-2, -1)), 100 * expected, rtol=1e-6)
    assert preprocessing_from_dict(centi.to_dict()) == centi
    with pytest.raises(ValueError, match="2 zeropoints for 3 bands"):
        p(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="unknown preprocessing 'gamma'"):
        preprocessing_from_dict({"name": "gamma"})
