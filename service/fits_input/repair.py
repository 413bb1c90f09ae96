"""Non-finite pixels: refused, or repaired when the request asks for it."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def repair_non_finite(image: np.ndarray, where: str, bands: tuple[str, ...], repair: str) -> int:
    """Refuse, or repair in place, the NaN/±inf pixels of ``image`` [B, H, W]; return the count."""
    bad = ~np.isfinite(image)
    count = int(bad.sum())
    if count == 0:
        return 0
    per_band = bad.reshape(len(bands), -1).sum(axis=1)
    nan = int(np.isnan(image).sum())
    detail = ", ".join(f"{b} {int(k)}" for b, k in zip(bands, per_band, strict=True) if k)
    if repair == "none":
        raise InputError(
            "non_finite",
            f"{count} non-finite pixel{'' if count == 1 else 's'} ({nan} NaN, {count - nan} ±inf; per band: {detail}); "
            "expected every pixel finite — replace masked pixels before sending",
            where,
            expected=0,
            received=count,
        )
    pixels = image.shape[1] * image.shape[2]
    for k, band in enumerate(bands):
        if per_band[k] == pixels:
            raise InputError(
                "non_finite",
                f"band {band} has no finite pixel ({pixels} non-finite); nothing to repair from",
                where,
                expected="some finite pixels",
                received=int(per_band[k]),
            )
        if per_band[k]:
            mask = bad[k]
            image[k][mask] = 0.0 if repair == "zero" else np.median(image[k][~mask])
    return count
