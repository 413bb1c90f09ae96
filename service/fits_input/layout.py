"""Layout detection: which HDUs and planes hold the task's bands (a cube, or one HDU per band),
from headers alone; then their pixels."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import InputError
from .bytes import decoding
from .header import header_value
from .messages import dims_text, place

# Where a cutout's planes are: (HDU, its name for messages, cube planes in band order or None
# for a 2-D band HDU).
Plan = list[tuple[Any, str, list[int] | None]]


def is_image(hdu: Any) -> bool:
    # GroupsHDU subclasses PrimaryHDU but holds random groups, not an image.
    return isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU) and not isinstance(
        hdu, fits.GroupsHDU
    )


def declared_shape(hdu: Any, where: str) -> tuple[int, ...]:
    """``(..., NAXIS2, NAXIS1)`` of an image HDU from its header alone; ``()`` if none or no data.

    A CompImageHDU's ``header`` is the image header astropy derives from ZNAXISn (the binary
    table holding the tiles keeps its own NAXISn), so this is the uncompressed size, read without
    decompressing anything.
    """
    if not is_image(hdu):
        return ()
    header = hdu.header
    naxis = header_value(header, "NAXIS", where) or 0
    dims = tuple(int(header_value(header, f"NAXIS{k}", where)) for k in range(int(naxis), 0, -1))
    return dims if dims and math.prod(dims) > 0 else ()


def plan_cube(
    i: int, hdu: Any, dims: tuple[int, ...], name: str, bands: tuple[str, ...], shape: tuple
) -> tuple[Plan, list[fits.Header]]:
    """The cube planes that are the task's bands (by BANDS), from the header; and the header."""
    where = place(name, i, hdu)
    header = hdu.header
    planes = dims[0]
    listed = header_value(header, "BANDS", where)
    if listed is None:
        if planes != len(bands):
            raise InputError(
                "wrong_bands",
                f"the cube has {planes} planes and no BANDS keyword; expected {len(bands)} planes "
                f"in the order {','.join(bands)}, or a BANDS keyword naming each plane",
                where,
                expected=bands,
                received=planes,
            )
        order = list(range(planes))
    else:
        found = [b.strip() for b in str(listed).split(",")]
        if len(found) != planes:
            raise InputError(
                "wrong_bands",
                f"BANDS = {listed!r} names {len(found)} bands but the cube has {planes} planes",
                where,
                expected=planes,
                received=tuple(found),
            )
        order = select_bands(found, bands, where, "BANDS")
    if dims[1:] != shape:
        raise InputError(
            "wrong_shape",
            f"expected shape {len(bands)}×{dims_text(shape)} [B, H, W], got {dims_text(dims)}",
            where,
            expected=(len(bands), *shape),
            received=dims,
        )
    return [(hdu, where, order)], [header]


def plan_bands(
    images: list[tuple[int, Any, tuple[int, ...]]],
    name: str,
    bands: tuple[str, ...],
    shape: tuple[int, int],
) -> tuple[Plan, list[fits.Header]]:
    """Which image HDUs are the task's bands (by FILTER), from their headers; and those."""
    filters = {i: header_value(h.header, "FILTER", place(name, i, h)) for i, h, _ in images}
    tagged = [(i, h, d) for i, h, d in images if filters[i] is not None]
    if not tagged:
        if len(bands) > 1:
            raise InputError(
                "wrong_bands",
                f"found {len(images)} image HDU(s) but none has a FILTER keyword; expected one "
                f"2-D image HDU per band ({','.join(bands)}) with FILTER = band, or a "
                "[B, H, W] cube",
                name,
                expected=bands,
            )
        tagged = images[:1]  # one band, one image: no name needed
        found = list(bands)
    else:
        found = [str(filters[i]).strip() for i, _, _ in tagged]
    chosen = [tagged[k] for k in select_bands(found, bands, name, "FILTER", tagged)]
    plan: Plan = []
    headers = []
    for band, (i, hdu, dims) in zip(bands, chosen, strict=True):
        where = place(name, i, hdu)
        if dims != shape:
            raise InputError(
                "wrong_shape",
                f"band {band}: expected a 2-D {dims_text(shape)} image [H, W], got {dims_text(dims)}",
                where,
                expected=shape,
                received=dims,
            )
        plan.append((hdu, where, None))
        headers.append(hdu.header)
    return plan, headers


def select_bands(
    found: list[str],
    bands: tuple[str, ...],
    where: str,
    keyword: str,
    tagged: list | None = None,
) -> list[int]:
    """Indices into ``found`` of the task's ``bands``, in their order; refuse missing/doubled."""
    index: dict[str, list[int]] = {}
    for k, b in enumerate(found):
        index.setdefault(b.lower(), []).append(k)
    missing = [b for b in bands if b.lower() not in index]
    if missing:
        raise InputError(
            "wrong_bands",
            f"expected bands {','.join(bands)}, found {','.join(found) or 'none'} "
            f"(missing {','.join(missing)}; from {keyword})",
            where,
            expected=bands,
            received=tuple(found),
        )
    doubled = [b for b in bands if len(index[b.lower()]) > 1]
    if doubled:
        b = doubled[0]
        places = index[b.lower()]
        what = f"HDUs {[tagged[k][0] for k in places]}" if tagged else f"planes {places}"
        raise InputError(
            "wrong_bands",
            f"band {b} is given more than once ({keyword}: {what}); expected each band once",
            where,
            expected=bands,
            received=tuple(found),
        )
    return [index[b.lower()][0] for b in bands]


def read_pixels(plan: Plan) -> np.ndarray:
    """``[B, H, W]`` float32 in the task's band order, from the HDUs ``plan`` names."""
    planes: list[np.ndarray] = []
    for hdu, where, order in plan:
        pixels = hdu_pixels(hdu, where)
        if order is None:
            planes.append(pixels)
        else:
            planes.extend(pixels[order])
    return np.stack(planes)


def hdu_pixels(hdu: Any, where: str) -> np.ndarray:
    """The HDU's data [H, W] or [B, H, W] (scaled by BSCALE/BZERO, decompressed) as native
    float32, in its BUNIT."""
    with decoding(where, "pixel data cannot be decoded"):
        data = hdu.data
        if data is not None and data.dtype.kind in "iuf":
            with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf, refused later
                return np.array(data, dtype=np.float32)  # native byte order, a copy
    raise InputError(
        "bad_dtype",
        f"expected integer or float pixels, got {None if data is None else data.dtype}",
        where,
    )
