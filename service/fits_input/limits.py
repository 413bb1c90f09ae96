"""What one request may ask, and what a checked cutout is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

MiB = 1024**2


Repair = Literal["none", "zero", "median"]


REPAIRS: tuple[str, ...] = get_args(Repair)


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the service; checked before pixels are read.

    max_bytes : size of one FITS file [bytes].
    max_cutouts : files (or array cutouts) in one request.
    max_pixels : pixels of one image HDU as its header declares them (product of NAXISn, or of
        ZNAXISn for a tile-compressed HDU).
    """

    max_bytes: int = 16 * MiB
    max_cutouts: int = 256
    max_pixels: int = 4_000_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_cutouts", "max_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = Limits()


@dataclass
class Cutout:
    """One checked cutout, ready for preprocessing.

    id : header OBJECT if present, else the file name without its FITS suffixes (``array[k]``
        inputs: the given id, else ``str(k)``).
    image : float32, native byte order, ``[B, H, W]`` in the task's band order; in the file's
        unit (BUNIT, electrons for our surveys); all finite.
    magzp : ``[B]`` AB zeropoints [mag of 1 BUNIT], or None unless every band has one.
    ebv : Galactic E(B−V) [mag] from the EBV keyword, or None.
    bunit : the BUNIT keyword, or None.
    repaired : number of non-finite pixels replaced (0 unless ``repair`` was asked for).
    """

    id: str
    image: np.ndarray
    magzp: np.ndarray | None = None
    ebv: float | None = None
    bunit: str | None = None
    repaired: int = 0


def check_request(
    bands: Sequence[str], shape: tuple[int, int], repair: str
) -> tuple[tuple[str, ...], tuple[int, int]]:
    if isinstance(bands, str):
        raise TypeError(f"bands must be a sequence of band names like ('g', 'r'), not {bands!r}")
    names = tuple(str(b).strip() for b in bands)
    keys = [b.lower() for b in names]
    if not names or "" in names or len(set(keys)) != len(keys):
        raise ValueError(f"bands must be distinct, non-empty band names, got {list(bands)!r}")
    dims = tuple(shape)
    if len(dims) != 2 or not all(isinstance(d, int | np.integer) and d > 0 for d in dims):
        raise ValueError(f"shape must be (H, W) with positive integers, got {shape!r}")
    if repair not in REPAIRS:
        raise ValueError(f"repair must be one of {REPAIRS}, got {repair!r}")
    return names, (int(dims[0]), int(dims[1]))
