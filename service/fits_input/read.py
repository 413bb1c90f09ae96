"""The entry points: a FITS file, the files of a request, an array. Each composes the checks of
the other modules in the order that keeps hostile input cheap: bytes, headers, layout, pixels."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.io.fits.hdu.base import _CorruptedHDU

from ..errors import InputError
from .bytes import check_bytes, decoding, read_path
from .compression import check_compression
from .header import lookup, read_bunit, read_ebv, zeropoints
from .layout import declared_shape, is_image, plan_bands, plan_cube, read_pixels
from .limits import DEFAULT_LIMITS, Cutout, Limits, Repair, check_request
from .messages import dims_text, file_stem, place, too_many
from .repair import repair_non_finite


def read_fits(
    data: bytes,
    name: str,
    bands: Sequence[str],
    shape: tuple[int, int],
    limits: Limits = DEFAULT_LIMITS,
    repair: Repair = "none",
) -> Cutout:
    """Decode one FITS file into a `Cutout`, or raise `InputError` saying why it cannot be served.

    data : the file's bytes. name : its name, used in messages and as the fallback id.
    bands : the task's bands, in the model's order, e.g. ``("g", "r", "i")``.
    shape : the task's ``(H, W)`` in pixels.
    repair : what to do with NaN/±inf pixels: refuse (``"none"``), set them to 0 (``"zero"``) or
        to their band's median of finite pixels (``"median"``). A band with no finite pixel is
        refused in every mode.
    Returns image ``[B, H, W]`` float32 in the file's BUNIT (module docstring for layouts).
    """
    bands, shape = check_request(bands, shape, repair)
    size = check_bytes(data, name, limits)
    with decoding(name, "cannot be read as FITS"):
        hdul = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True)
    with hdul:
        return read_hdul(hdul, size, name, bands, shape, limits, repair)


def read_many(
    files: Sequence[tuple[str, bytes | Path]],
    bands: Sequence[str],
    shape: tuple[int, int],
    limits: Limits = DEFAULT_LIMITS,
    repair: Repair = "none",
) -> list[Cutout | InputError]:
    """`read_fits` on each ``(name, bytes or path)`` of one request: one result per file, in order.

    A file that cannot be served gives its `InputError` in its slot; the others still decode. A
    path (an upload the server spooled to disk) is read only after its size passed
    ``limits.max_bytes``. Raises `InputError` for the whole request: ``"empty"`` without files,
    ``"too_many"`` with more than ``limits.max_cutouts``.
    """
    bands, shape = check_request(bands, shape, repair)
    if not files:
        raise InputError("empty", "no cutouts in the request", "request")
    if len(files) > limits.max_cutouts:
        raise too_many(len(files), limits, "files")
    out: list[Cutout | InputError] = []
    for name, data in files:
        try:
            if isinstance(data, Path):
                data = read_path(data, name, limits)
            out.append(read_fits(data, name, bands, shape, limits, repair))
        except InputError as e:
            out.append(e)
    return out


def from_array(
    array: Any,
    bands: Sequence[str],
    shape: tuple[int, int],
    ids: Sequence[str] | None = None,
    repair: Repair = "none",
    limits: Limits = DEFAULT_LIMITS,
) -> list[Cutout | InputError]:
    """Check cutouts a pipeline already holds as an array: one result per cutout, in order.

    array : ``[N, B, H, W]`` or ``[B, H, W]`` (taken as N = 1), any real numeric dtype and byte
        order, bands in the task's order, in the task's unit (electrons for our surveys).
    ids : N ids (default ``"0"``, ``"1"``, ...). repair : as in `read_fits`.
    Raises `InputError` for the whole request (wrong dtype, axes or shape, too many cutouts,
    ids of the wrong length); a cutout with non-finite pixels gets its `InputError` in its slot.
    Images come back float32 native ``[B, H, W]`` copies; magzp, ebv and bunit are None.
    """
    bands, shape = check_request(bands, shape, repair)
    want = (len(bands), *shape)
    try:
        arr = np.asarray(array)
    except (ValueError, TypeError) as e:  # ragged nested lists
        raise InputError("bad_dtype", f"cannot be read as a numeric array ({e})", "array") from e
    if arr.dtype.kind not in "iuf":
        raise InputError(
            "bad_dtype",
            f"expected real numbers (integer or float pixels), got dtype {arr.dtype}",
            "array",
            expected="integer or float",
            received=str(arr.dtype),
        )
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1:] != want:
        raise InputError(
            "wrong_shape",
            f"expected shape N×{dims_text(want)} ([N, B, H, W], bands {','.join(bands)}) or "
            f"{dims_text(want)}, got {dims_text(arr.shape) if arr.ndim else 'a scalar'}",
            "array",
            expected=want,
            received=tuple(arr.shape),
        )
    n = arr.shape[0]
    if n == 0:
        raise InputError("empty", "the array holds no cutouts (N = 0)", "array")
    if n > limits.max_cutouts:
        raise too_many(n, limits, "cutouts")
    if ids is None:
        names = [str(k) for k in range(n)]
    else:
        names = [str(i) for i in ids]
        if len(names) != n:
            raise InputError(
                "bad_value",
                f"{len(names)} ids for {n} cutouts; expected one id per cutout",
                "array",
                expected=n,
                received=len(names),
            )
    out: list[Cutout | InputError] = []
    for k in range(n):
        with np.errstate(over="ignore", invalid="ignore"):  # overflow becomes inf, refused below
            image = np.array(arr[k], dtype=np.float32)  # a native-endian copy
        try:
            repaired = repair_non_finite(image, f"array[{k}]", bands, repair)
        except InputError as e:
            out.append(e)
            continue
        out.append(Cutout(names[k], image, repaired=repaired))
    return out


def read_hdul(
    hdul: fits.HDUList,
    size: int,
    name: str,
    bands: tuple[str, ...],
    shape: tuple[int, int],
    limits: Limits,
    repair: Repair,
) -> Cutout:
    with decoding(name, "cannot be read as FITS"):
        hdus = list(hdul)  # lazy loading: this reads every header, and no data
        declared = [declared_shape(hdu, place(name, i, hdu)) for i, hdu in enumerate(hdus)]
    for i, (hdu, dims) in enumerate(zip(hdus, declared, strict=True)):
        pixels = math.prod(dims)
        if dims and pixels > limits.max_pixels:
            raise InputError(
                "too_large",
                f"the header declares a {dims_text(dims)} image = {pixels:,} pixels, more than the "
                f"limit of {limits.max_pixels:,} per HDU; expected {len(bands)}×{dims_text(shape)}",
                place(name, i, hdu),
                expected=limits.max_pixels,
                received=pixels,
            )
    for i, hdu in enumerate(hdus):
        if isinstance(hdu, _CorruptedHDU):  # astropy could not make an HDU of these cards
            raise InputError(
                "bad_fits",
                "this HDU's header is not a valid FITS header (its XTENSION, BITPIX, NAXISn, "
                "PCOUNT or GCOUNT cards cannot be parsed); astropy cannot read it",
                place(name, i, hdu),
            )
        with decoding(place(name, i, hdu), "cannot be read as FITS"):
            info = hdu.fileinfo()
        end = info["datLoc"] + info["datSpan"]
        if end > size:
            raise InputError(
                "bad_fits",
                f"the file is truncated: its header declares data up to byte {end:,}, "
                f"but the file has {size:,} bytes",
                place(name, i, hdu),
                expected=end,
                received=size,
            )
    images = [(i, h, d) for i, (h, d) in enumerate(zip(hdus, declared, strict=True)) if d]
    if not images:
        listing = ", ".join(
            f"{i} {type(h).__name__}{' (no data)' if is_image(h) else ''}"
            for i, h in enumerate(hdus)
        )
        raise InputError(
            "not_image",
            f"no HDU holds image data (HDUs: {listing}); expected a [B, H, W] cube or one 2-D "
            "image HDU per band with FILTER",
            name,
        )
    first, hdu, dims = images[0]
    if len(dims) == 3:
        plan, headers = plan_cube(first, hdu, dims, name, bands, shape)
        magzp = zeropoints(headers[:1], [f"MAGZP_{b.upper()}" for b in bands], name)
    elif len(dims) == 2:
        plan, headers = plan_bands(images, name, bands, shape)
        magzp = zeropoints(headers, ["MAGZP"] * len(bands), name)
    else:
        raise InputError(
            "wrong_shape",
            f"the first image is {len(dims)}-D ({dims_text(dims)}); expected a 3-D cube "
            f"{len(bands)}×{dims_text(shape)} [B, H, W] or one 2-D {dims_text(shape)} image per band",
            place(name, first, hdu),
            expected=(len(bands), *shape),
            received=dims,
        )
    headers.append(hdus[0].header)
    obj = lookup(headers, "OBJECT", name)
    ebv, bunit = read_ebv(headers, name), read_bunit(headers, name)
    for hdu, where, _ in plan:
        if isinstance(hdu, fits.CompImageHDU):
            check_compression(hdu, where)
    # Only now, with every header checked, are pixels read (and decompressed).
    image = read_pixels(plan)
    repaired = repair_non_finite(image, name, bands, repair)
    return Cutout(
        id=str(obj).strip() if obj is not None and str(obj).strip() else file_stem(name),
        image=image,
        magzp=magzp,
        ebv=ebv,
        bunit=bunit,
        repaired=repaired,
    )
