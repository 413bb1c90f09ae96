"""From a noiseless scene to what a survey records: exposure, sky, Poisson noise, resampling.

Units: the noiseless scene is a rate in electrons per second per pixel; what comes out is
electrons per pixel with the (known, constant) sky level subtracted, as in 002 §2.2 — empty-sky
pixels then follow a Poisson distribution of the sky level, shifted to zero mean.
"""

from __future__ import annotations

import numpy as np


def expose(
    rate: np.ndarray, exposure: np.ndarray, sky: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Poisson-noise one exposure of a scene and subtract the sky.

    Parameters
    ----------
    rate : [B, H, W] noiseless source rate, electrons / s / pixel.
    exposure : [B] exposure time per band, s.
    sky : [B] sky rate per band, electrons / s / pixel.
    rng : the generator that owns this realisation of the noise.

    Returns
    -------
    [B, H, W] float32 electrons, sky subtracted (mean 0 where there is no source).
    """
    exposure = np.asarray(exposure, dtype=np.float64)[:, None, None]
    sky_e = np.asarray(sky, dtype=np.float64)[:, None, None] * exposure
    mean = np.clip(rate, 0.0, None) * exposure + sky_e
    return (rng.poisson(mean) - sky_e).astype(np.float32)


def rebin_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[N_out, N_in] float64 matrix (N_out = ``n_out``, N_in = ``n_in``) of the overlap fractions of output and input pixels along one axis.

    Applied on both axes (``R @ image @ R.T``) it resamples an image onto a coarser (or finer)
    grid covering the same field, conserving flux exactly: every input pixel's flux is shared among
    the output pixels it overlaps, in proportion to the overlap. This is what "30″×30″ resampled to
    64×64" means for a flux image (004 §2.3), and it lets the noise of the result be predicted
    (variance maps through ``R**2``).
    """
    edges_in = np.linspace(0.0, 1.0, n_in + 1)
    edges_out = np.linspace(0.0, 1.0, n_out + 1)
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    return (np.clip(hi - lo, 0.0, None) * n_in).astype(np.float64)


def resample(image: np.ndarray, n_out: int) -> np.ndarray:
    """Flux-conserving resampling of a [B, N, N] image onto [B, n_out, n_out]."""
    r = rebin_matrix(image.shape[-1], n_out)
    return (r @ image.astype(np.float64) @ r.T).astype(np.float32)
