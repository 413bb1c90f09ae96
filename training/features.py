"""SourceExtractor-style features of the central object, measured with ``sep`` (004 §2.3, §4.2).

For the SVM and random-forest baselines of 004 §4.2. Per cutout [B, H, W] (sky-subtracted,
BUNIT electrons, with the file's MAGZP per band), detection runs on the middle band (r) at
``DETECT_SIGMA`` × the image noise (a robust MAD estimate), and the candidate — the object whose
footprint covers the centre, else the nearest within ``CENTRE_TOLERANCE`` pixels — is measured
in every band through the same apertures:

* ellipticity 1 − b/a (detection band);
* MAG_AUTO per band: flux in the Kron ellipse of 2.5 Kron radii (SourceExtractor's default);
* colours between consecutive bands and first–last (g−r, r−z, g−z for the lsbg bands; 004 used
  g−r, r−i, g−i);
* surface brightnesses per band [mag/arcsec²]: mean within the isophotal footprint, central
  (the 3×3 pixels at the object's peak), and effective, μ_eff = MAG_AUTO + 2.5 log10(2π r_½² q)
  with r_½ the half-light radius of the detection band.

A cutout with no detection near the centre gets NaN features (and is reported, not dropped).
"""

from __future__ import annotations

import numpy as np

DETECT_SIGMA = 1.5
KRON_FACTOR = 2.5
#: an object counts as the candidate if its centre is within this many pixels of the stamp centre
CENTRE_TOLERANCE = 6.0


def feature_names(bands: list[str]) -> list[str]:
    """Names of the columns ``measure`` returns, in order."""
    pairs = [(bands[i], bands[i + 1]) for i in range(len(bands) - 1)] + [(bands[0], bands[-1])]
    return (
        ["ellipticity"]
        + [f"mag_auto_{b}" for b in bands]
        + [f"{a}-{b}" for a, b in pairs]
        + [f"mu_{kind}_{b}" for kind in ("mean", "central", "eff") for b in bands]
    )


def _noise(image: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(image - np.median(image))))


def measure(cube: np.ndarray, magzp: np.ndarray, pixel_scale: float) -> np.ndarray:
    """[F] features (``feature_names`` order) of the central object of one cutout [B, H, W]."""
    import sep

    nb, h, w = cube.shape
    n_feat = 1 + nb + nb + 3 * nb
    det = np.ascontiguousarray(cube[nb // 2], dtype=np.float64)
    objs, seg = sep.extract(det, DETECT_SIGMA, err=_noise(det), minarea=5, segmentation_map=True)
    if len(objs) == 0:
        return np.full(n_feat, np.nan)
    # the candidate is the object whose footprint covers the centre (as in a catalogue selected
    # at these coordinates, a bright neighbour that swallows the centre is what gets measured);
    # failing that, the nearest object within CENTRE_TOLERANCE pixels
    label = int(seg[h // 2, w // 2])
    if label > 0:
        o = objs[label - 1]
    else:
        dist = np.hypot(objs["x"] - (w - 1) / 2, objs["y"] - (h - 1) / 2)
        if dist.min() > CENTRE_TOLERANCE:
            return np.full(n_feat, np.nan)
        o = objs[np.argmin(dist)]
    if o["a"] <= 0 or o["b"] <= 0:
        return np.full(n_feat, np.nan)
    x, y, a, b, theta = (np.array([o[k]]) for k in ("x", "y", "a", "b", "theta"))
    kron, _ = sep.kron_radius(det, x, y, a, b, theta, 6.0)
    r = np.maximum(KRON_FACTOR * kron, 1.0)
    area_arcsec2 = pixel_scale**2
    mags, mu_mean, mu_central = [], [], []
    py, px = int(round(o["ycpeak"])), int(round(o["xcpeak"]))
    for band in range(nb):
        img = np.ascontiguousarray(cube[band], dtype=np.float64)
        flux, _, _ = sep.sum_ellipse(img, x, y, a, b, theta, r)
        f = max(float(flux[0]), 1e-3)
        mags.append(magzp[band] - 2.5 * np.log10(f))
        iso = max(float(o["npix"]) * area_arcsec2, area_arcsec2)
        mu_mean.append(
            magzp[band]
            - 2.5 * np.log10(max(float(o["flux"]) if band == nb // 2 else f, 1e-3) / iso)
        )
        core = img[max(py - 1, 0) : py + 2, max(px - 1, 0) : px + 2]
        mu_central.append(magzp[band] - 2.5 * np.log10(max(core.mean(), 1e-3) / area_arcsec2))
    r_half, _ = sep.flux_radius(det, x, y, 6.0 * a, 0.5, normflux=None, subpix=5)
    q = float(b[0] / a[0])
    r_half_arcsec = max(float(r_half[0]), 0.5) * pixel_scale
    mu_eff = [m + 2.5 * np.log10(2 * np.pi * r_half_arcsec**2 * q) for m in mags]
    colours = [mags[i] - mags[i + 1] for i in range(nb - 1)] + [mags[0] - mags[-1]]
    return np.array([1 - q, *mags, *colours, *mu_mean, *mu_central, *mu_eff])


def measure_all(images: np.ndarray, magzp: np.ndarray, pixel_scale: float) -> np.ndarray:
    """[N, F] features of every cutout of [N, B, H, W] images."""
    return np.stack([measure(c, magzp, pixel_scale) for c in images])
