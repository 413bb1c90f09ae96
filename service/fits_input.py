"""Decode and check the cutouts a survey pipeline sends, before any model sees them.

Everything a request carries is checked here, once; code past this module trusts a `Cutout`.
numpy and astropy only, so that it can be imported and tested without the serving stack.

Accepted FITS layouts (those ``training/cutouts.py`` writes, and what pipelines usually send):

* **cube** — the first image HDU holding data (the primary HDU, or the first image extension,
  tile-compressed or not) is a 3-D ``[B, H, W]`` cube. Its ``BANDS`` keyword (comma list, e.g.
  ``'r,g,i'``) names the planes in any order; they are reordered to the task's bands and extra
  planes are dropped. Without ``BANDS`` the cube must have exactly as many planes as the task has
  bands, and they are taken to be in the task's order. Zeropoints come from ``MAGZP_<BAND>``
  (band upper-cased; ``MAGZP`` alone is only the first band's, so it is not used).
* **bands** — one 2-D image HDU per band, named by its ``FILTER`` keyword, in any HDU order;
  bands the task does not use are ignored. Zeropoints come from each HDU's ``MAGZP``. A task with
  a single band also accepts one 2-D image without ``FILTER``.

Band names are compared without regard to case or surrounding spaces. Pixels may be float
(BITPIX -32/-64) or integer with BSCALE/BZERO, big-endian as FITS stores them, and tile-compressed
(RICE_1, GZIP_1, GZIP_2, ...; astropy decodes them). Whole-file gzip/bzip2/zip is refused: the
size limits below could not be checked before decompressing it. ``OBJECT``, ``EBV`` (E(B−V),
mag) and ``BUNIT`` are read from the image HDU(s) first, then the primary header. Pixel values
are kept in the file's unit (BUNIT; electrons for our surveys); nothing is rescaled here.

Limits (`Limits`): ``max_bytes`` per file (16 MiB), ``max_cutouts`` per request (256) and
``max_pixels`` per image HDU as its header declares it (4 000 000; for a tile-compressed HDU the
uncompressed ZNAXISn). Headers are read and checked before any pixel is: a header that declares
a huge image is refused without reading or allocating its data.

Hostile headers: every header value is read in one place (`_card`), so a card astropy cannot
parse (it parses a value only when it is read) is a ``bad_fits`` naming the card, wherever it is
read; the cards that size an HDU (NAXIS, NAXISn, ZNAXIS, TFIELDS, PCOUNT, GCOUNT) are scanned on
the raw bytes before astropy sees them, and a tile-compressed HDU's compression cards are checked
before a tile is decompressed (`_check_compression`): values outside the standard made astropy
loop without end or crash the process.

Every refusal is an `InputError` (a `ValueError`) with a machine ``reason``, a ``where`` (file,
plus HDU index and name when one HDU is at fault) and a message saying what was expected and
what was received:

============  ====================================================================================
reason        meaning
============  ====================================================================================
empty         no bytes, or an array with no cutouts
too_large     file over ``max_bytes``, or an HDU header declaring more than ``max_pixels`` pixels
bad_fits      not FITS, truncated, a header card that cannot be parsed (unclosed quote, a value
              that is no FITS value: the card is named and shown), or its data cannot be decoded
              (astropy's message appended)
not_image     no HDU holds image data (only tables, or empty HDUs)
wrong_bands   a band the task needs is missing, named twice, or BANDS does not match the cube
wrong_shape   wrong number of axes, or H×W not the task's
non_finite    NaN or ±inf pixels (unless repaired: ``repair="zero"`` or ``"median"``)
bad_dtype     array that is not real numbers (complex, bool, strings, objects)
too_many      more than ``max_cutouts`` cutouts in one request
bad_value     a header value out of range: EBV non-finite or negative, MAGZP non-finite, ...
bad_output    the cutout passed every check but the model's output for it is not finite (NaN or
              ±inf): it has no defined answer (``service.runtime.checked_outputs``)
============  ====================================================================================

Wrong arguments from our own code (band list, shape, repair mode) are programming errors and
raise plain `ValueError`/`TypeError`, not `InputError`.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal, get_args

import numpy as np
from astropy.io import fits
from astropy.io.fits.hdu.base import _CorruptedHDU

Repair = Literal["none", "zero", "median"]
Reason = Literal[
    "empty",
    "too_large",
    "bad_fits",
    "not_image",
    "wrong_bands",
    "wrong_shape",
    "non_finite",
    "bad_dtype",
    "too_many",
    "bad_value",
    "bad_output",
]
REASONS: tuple[str, ...] = get_args(Reason)
REPAIRS: tuple[str, ...] = get_args(Repair)
MiB = 1024**2
# Where a cutout's planes are: (HDU, its name for messages, cube planes in band order or None
# for a 2-D band HDU).
Plan = list[tuple[Any, str, list[int] | None]]

# Magic numbers of whole-file compressors, to say why such a file is refused.
_ARCHIVES = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"PK\x03\x04": "zip"}


class InputError(ValueError):
    """A request input that cannot be served, and why.

    reason : one of `REASONS` (module docstring), for programs.
    where : the file name (or ``array[k]``, ``request``), plus ``HDU i (NAME)`` when one HDU is
        at fault.
    message : for people: ``where: what was wrong, expected vs received``; also ``str(error)``.
    expected, received : the offending values, when there are such (e.g. two shapes).
    """

    def __init__(
        self,
        reason: Reason,
        detail: str,
        where: str = "",
        expected: Any = None,
        received: Any = None,
    ) -> None:
        if reason not in REASONS:
            raise ValueError(f"InputError reason must be one of {REASONS}, got {reason!r}")
        self.reason = reason
        self.detail = detail
        self.where = where
        self.expected = expected
        self.received = received
        self.message = f"{where}: {detail}" if where else detail
        super().__init__(self.message)

    def __reduce__(self):  # keeps the attributes through pickling (worker processes)
        return type(self), (self.reason, self.detail, self.where, self.expected, self.received)

    def to_dict(self) -> dict[str, str]:
        """``{"reason", "where", "message"}``, for a JSON error response."""
        return {"reason": self.reason, "where": self.where, "message": self.message}


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
    bands, shape = _check_request(bands, shape, repair)
    size = _check_bytes(data, name, limits)
    with _decoding(name, "cannot be read as FITS"):
        hdul = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True)
    with hdul:
        return _read_hdul(hdul, size, name, bands, shape, limits, repair)


def read_many(
    files: Sequence[tuple[str, bytes]],
    bands: Sequence[str],
    shape: tuple[int, int],
    limits: Limits = DEFAULT_LIMITS,
    repair: Repair = "none",
) -> list[Cutout | InputError]:
    """`read_fits` on each ``(name, bytes)`` of one request: one result per file, in order.

    A file that cannot be served gives its `InputError` in its slot; the others still decode.
    Raises `InputError` ``"too_many"`` for the whole request if it has more than
    ``limits.max_cutouts`` files.
    """
    bands, shape = _check_request(bands, shape, repair)
    if len(files) > limits.max_cutouts:
        raise _too_many(len(files), limits, "files")
    out: list[Cutout | InputError] = []
    for name, data in files:
        try:
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
    bands, shape = _check_request(bands, shape, repair)
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
            f"expected shape N×{_dims(want)} ([N, B, H, W], bands {','.join(bands)}) or "
            f"{_dims(want)}, got {_dims(arr.shape) if arr.ndim else 'a scalar'}",
            "array",
            expected=want,
            received=tuple(arr.shape),
        )
    n = arr.shape[0]
    if n == 0:
        raise InputError("empty", "the array holds no cutouts (N = 0)", "array")
    if n > limits.max_cutouts:
        raise _too_many(n, limits, "cutouts")
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
            repaired = _repair_non_finite(image, f"array[{k}]", bands, repair)
        except InputError as e:
            out.append(e)
            continue
        out.append(Cutout(names[k], image, repaired=repaired))
    return out


# --- request arguments (our own code's mistakes: plain ValueError/TypeError) -----------------


def _check_request(
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


# --- FITS ----------------------------------------------------------------------------------


def _check_bytes(data: bytes, name: str, limits: Limits) -> int:
    """Size of ``data`` [bytes], after refusing empty, oversize and whole-file-compressed data."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    size = memoryview(data).nbytes
    if size == 0:
        raise InputError("empty", "the file is empty (0 bytes); expected a FITS file", name)
    if size > limits.max_bytes:
        raise InputError(
            "too_large",
            f"the file is {_mib(size)}, more than the limit of {_mib(limits.max_bytes)} per file",
            name,
            expected=limits.max_bytes,
            received=size,
        )
    head = bytes(data[:8])
    for magic, kind in _ARCHIVES.items():
        if head.startswith(magic):
            raise InputError(
                "bad_fits",
                f"this is a {kind} archive, not a FITS file; send the FITS file itself, "
                "tile-compressed (fpack: RICE_1, GZIP_1/2) if it must be smaller",
                name,
            )
    # astropy loops for minutes, or without end, on a negative GCOUNT/PCOUNT (a one-byte edit of
    # a tile-compressed file) or NAXISn (the next HDU is looked for before this one, again and
    # again), and on a huge NAXIS, ZNAXIS or TFIELDS (it reads that many cards); such a header is
    # refused on a plain scan of its cards before astropy sees it (fuzzers' mutants, all)
    raw = bytes(data)
    for key in _SIZE_KEYS:
        at = raw.find(key)
        while at >= 0:
            m = _SIZE_CARD.match(raw, at) if at % 80 == 0 else None
            if m:
                keyword, value = m.group(1).decode(), int(m.group(2))
                counts = keyword in ("NAXIS", "ZNAXIS", "TFIELDS")
                if value < 0 or (counts and value > 999):
                    raise InputError(
                        "bad_fits",
                        f"header card {keyword} = {m.group(2).decode()}: must be "
                        + ("an integer 0-999" if counts else "a non-negative integer"),
                        name,
                    )
            at = raw.find(key, at + 1)
    return size


#: the cards that size an HDU, and the card (keyword, integer value) of one of them. The
#: cards are found with ``bytes.find`` (a fast substring search) and checked where they start a
#: card: a regex starting with (GCOUNT|PCOUNT) tried every byte of the pixel data (0.33 ms for a
#: 3×100×100 float32 file, a quarter of its decoding).
_SIZE_KEYS = (b"GCOUNT  =", b"PCOUNT  =", b"NAXIS", b"ZNAXIS", b"TFIELDS =")
_SIZE_CARD = re.compile(rb"(GCOUNT|PCOUNT|Z?NAXIS\d{0,3}|TFIELDS) *= +([-+]?\d+)")


def _read_hdul(
    hdul: fits.HDUList,
    size: int,
    name: str,
    bands: tuple[str, ...],
    shape: tuple[int, int],
    limits: Limits,
    repair: Repair,
) -> Cutout:
    with _decoding(name, "cannot be read as FITS"):
        hdus = list(hdul)  # lazy loading: this reads every header, and no data
        declared = [_declared_shape(hdu, _where(name, i, hdu)) for i, hdu in enumerate(hdus)]
    for i, (hdu, dims) in enumerate(zip(hdus, declared, strict=True)):
        pixels = math.prod(dims)
        if dims and pixels > limits.max_pixels:
            raise InputError(
                "too_large",
                f"the header declares a {_dims(dims)} image = {pixels:,} pixels, more than the "
                f"limit of {limits.max_pixels:,} per HDU; expected {len(bands)}×{_dims(shape)}",
                _where(name, i, hdu),
                expected=limits.max_pixels,
                received=pixels,
            )
    for i, hdu in enumerate(hdus):
        if isinstance(hdu, _CorruptedHDU):  # astropy could not make an HDU of these cards
            raise InputError(
                "bad_fits",
                "this HDU's header is not a valid FITS header (its XTENSION, BITPIX, NAXISn, "
                "PCOUNT or GCOUNT cards cannot be parsed); astropy cannot read it",
                _where(name, i, hdu),
            )
        with _decoding(_where(name, i, hdu), "cannot be read as FITS"):
            info = hdu.fileinfo()
        end = info["datLoc"] + info["datSpan"]
        if end > size:
            raise InputError(
                "bad_fits",
                f"the file is truncated: its header declares data up to byte {end:,}, "
                f"but the file has {size:,} bytes",
                _where(name, i, hdu),
                expected=end,
                received=size,
            )
    images = [(i, h, d) for i, (h, d) in enumerate(zip(hdus, declared, strict=True)) if d]
    if not images:
        listing = ", ".join(
            f"{i} {type(h).__name__}{' (no data)' if _is_image(h) else ''}"
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
        plan, headers = _from_cube(first, hdu, dims, name, bands, shape)
        magzp = _zeropoints(headers[:1], [f"MAGZP_{b.upper()}" for b in bands], name)
    elif len(dims) == 2:
        plan, headers = _from_bands(images, name, bands, shape)
        magzp = _zeropoints(headers, ["MAGZP"] * len(bands), name)
    else:
        raise InputError(
            "wrong_shape",
            f"the first image is {len(dims)}-D ({_dims(dims)}); expected a 3-D cube "
            f"{len(bands)}×{_dims(shape)} [B, H, W] or one 2-D {_dims(shape)} image per band",
            _where(name, first, hdu),
            expected=(len(bands), *shape),
            received=dims,
        )
    headers.append(hdus[0].header)
    obj = _lookup(headers, "OBJECT", name)
    ebv, bunit = _ebv(headers, name), _bunit(headers, name)
    for hdu, where, _ in plan:
        if isinstance(hdu, fits.CompImageHDU):
            _check_compression(hdu, where)
    # Only now, with every header checked, are pixels read (and decompressed).
    image = _read_pixels(plan)
    repaired = _repair_non_finite(image, name, bands, repair)
    return Cutout(
        id=str(obj).strip() if obj is not None and str(obj).strip() else _stem(name),
        image=image,
        magzp=magzp,
        ebv=ebv,
        bunit=bunit,
        repaired=repaired,
    )


#: what the tiled-image compression convention allows (FITS 4.0 §10.1–10.4), checked before a
#: tile is decompressed: astropy's C decoders trust these cards (a RICE_1 file with
#: BYTEPIX = -1 crashed the process, a fuzzer's mutant)
_ZCMPTYPES = ("RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1", "NOCOMPRESS")
_ZBITPIX = (8, 16, 32, 64, -32, -64)
_ZQUANTIZ = ("NO_DITHER", "SUBTRACTIVE_DITHER_1", "SUBTRACTIVE_DITHER_2")
_ZPARAMS = {"BLOCKSIZE": (16, 32), "BYTEPIX": (1, 2, 4, 8), "SMOOTH": (0, 1)}


def _check_compression(hdu: fits.CompImageHDU, where: str) -> None:
    """Refuse a tile-compressed HDU whose compression cards are outside the convention."""
    with _decoding(where, "its compression table cannot be read"):
        table = hdu._bintable.header  # the cards as the file has them (hdu.header is derived)

    def refuse(key: str, value: Any, expected: str) -> InputError:
        return InputError(
            "bad_fits",
            f"compression card {key} = {value!r}: expected {expected}",
            where,
            expected=expected,
            received=value,
        )

    def integer(value: Any) -> bool:
        return isinstance(value, int | np.integer) and not isinstance(value, bool)

    kind = _card(table, "ZCMPTYPE", where)
    if kind not in _ZCMPTYPES:
        raise refuse("ZCMPTYPE", kind, f"one of {', '.join(_ZCMPTYPES)}")
    bitpix = _card(table, "ZBITPIX", where)
    if not integer(bitpix) or bitpix not in _ZBITPIX:
        raise refuse("ZBITPIX", bitpix, f"one of {_ZBITPIX}")
    naxis = _card(table, "ZNAXIS", where)
    if not integer(naxis) or not 1 <= naxis <= 999:
        raise refuse("ZNAXIS", naxis, "an integer 1-999")
    for k in range(1, naxis + 1):
        size, tile = _card(table, f"ZNAXIS{k}", where), _card(table, f"ZTILE{k}", where)
        if not integer(size) or size < 1:
            raise refuse(f"ZNAXIS{k}", size, "a positive integer")
        if tile is not None and (not integer(tile) or not 1 <= tile <= size):
            raise refuse(f"ZTILE{k}", tile, f"an integer 1-{size} (ZNAXIS{k})")
    k = 1
    while (param := _card(table, f"ZNAME{k}", where)) is not None:
        value = _card(table, f"ZVAL{k}", where)
        allowed = _ZPARAMS.get(str(param).strip().upper())
        if allowed is not None and (not integer(value) or value not in allowed):
            raise refuse(f"ZVAL{k} ({str(param).strip()})", value, f"one of {allowed}")
        if str(param).strip().upper() in ("SCALE", "NOISEBIT") and not (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):  # negative: an absolute step
            raise refuse(f"ZVAL{k} ({str(param).strip()})", value, "a finite number")
        k += 1
    quantize = _card(table, "ZQUANTIZ", where)
    if quantize is not None and str(quantize).strip() not in _ZQUANTIZ:
        raise refuse("ZQUANTIZ", quantize, f"one of {', '.join(_ZQUANTIZ)}")
    dither = _card(table, "ZDITHER0", where)
    if dither is not None and (not integer(dither) or not 1 <= dither <= 10000):
        raise refuse("ZDITHER0", dither, "an integer 1-10000")


def _is_image(hdu: Any) -> bool:
    # GroupsHDU subclasses PrimaryHDU but holds random groups, not an image.
    return isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU) and not isinstance(
        hdu, fits.GroupsHDU
    )


def _declared_shape(hdu: Any, where: str) -> tuple[int, ...]:
    """``(..., NAXIS2, NAXIS1)`` of an image HDU from its header alone; ``()`` if none or no data.

    A CompImageHDU's ``header`` is the image header astropy derives from ZNAXISn (the binary
    table holding the tiles keeps its own NAXISn), so this is the uncompressed size, read without
    decompressing anything.
    """
    if not _is_image(hdu):
        return ()
    header = hdu.header
    naxis = _card(header, "NAXIS", where) or 0
    dims = tuple(int(_card(header, f"NAXIS{k}", where)) for k in range(int(naxis), 0, -1))
    return dims if dims and math.prod(dims) > 0 else ()


def _from_cube(
    i: int, hdu: Any, dims: tuple[int, ...], name: str, bands: tuple[str, ...], shape: tuple
) -> tuple[Plan, list[fits.Header]]:
    """The cube planes that are the task's bands (by BANDS), from the header; and the header."""
    where = _where(name, i, hdu)
    header = hdu.header
    planes = dims[0]
    listed = _card(header, "BANDS", where)
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
        order = _select(found, bands, where, "BANDS")
    if dims[1:] != shape:
        raise InputError(
            "wrong_shape",
            f"expected shape {len(bands)}×{_dims(shape)} [B, H, W], got {_dims(dims)}",
            where,
            expected=(len(bands), *shape),
            received=dims,
        )
    return [(hdu, where, order)], [header]


def _from_bands(
    images: list[tuple[int, Any, tuple[int, ...]]],
    name: str,
    bands: tuple[str, ...],
    shape: tuple[int, int],
) -> tuple[Plan, list[fits.Header]]:
    """Which image HDUs are the task's bands (by FILTER), from their headers; and those."""
    filters = {i: _card(h.header, "FILTER", _where(name, i, h)) for i, h, _ in images}
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
    chosen = [tagged[k] for k in _select(found, bands, name, "FILTER", tagged)]
    plan: Plan = []
    headers = []
    for band, (i, hdu, dims) in zip(bands, chosen, strict=True):
        where = _where(name, i, hdu)
        if dims != shape:
            raise InputError(
                "wrong_shape",
                f"band {band}: expected a 2-D {_dims(shape)} image [H, W], got {_dims(dims)}",
                where,
                expected=shape,
                received=dims,
            )
        plan.append((hdu, where, None))
        headers.append(hdu.header)
    return plan, headers


def _select(
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


def _read_pixels(plan: Plan) -> np.ndarray:
    """``[B, H, W]`` float32 in the task's band order, from the HDUs ``plan`` names."""
    planes: list[np.ndarray] = []
    for hdu, where, order in plan:
        pixels = _pixels(hdu, where)
        if order is None:
            planes.append(pixels)
        else:
            planes.extend(pixels[order])
    return np.stack(planes)


def _pixels(hdu: Any, where: str) -> np.ndarray:
    """The HDU's data (scaled by BSCALE/BZERO, decompressed) as native float32."""
    with _decoding(where, "pixel data cannot be decoded"):
        data = hdu.data
        if data is not None and data.dtype.kind in "iuf":
            with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf, refused later
                return np.array(data, dtype=np.float32)  # native byte order, a copy
    raise InputError(
        "bad_dtype",
        f"expected integer or float pixels, got {None if data is None else data.dtype}",
        where,
    )


@contextmanager
def _decoding(where: str, what: str) -> Iterator[None]:
    """Turn any failure of astropy on untrusted bytes into InputError("bad_fits", ...).

    Hostile bytes can fail anywhere in astropy, with nearly any builtin error, or with the
    compression extension's own CfitsioException (an Exception subclass); all of them mean
    "not decodable FITS", so this is deliberately broad, and wraps only astropy calls.
    """
    try:
        yield
    except (InputError, MemoryError):
        raise
    except Exception as e:
        raise InputError("bad_fits", f"{what} ({_explain(e)})", where) from e


# --- header values --------------------------------------------------------------------------


def _card(header: fits.Header, key: str, where: str) -> Any:
    """The value of card ``key`` in ``header``, or None when there is no such card or it has no
    value; every header value this module uses is read here.

    astropy parses a card's value only when it is read, so an unclosed quote (``OBJECT = 'abc``)
    or a value that is no FITS value (``BANDS = 1.2.3``) fails here, with a VerifyError (or a
    ValueError for some other malformed values), well after the file was opened: each becomes
    InputError("bad_fits") naming the card and showing it as the file has it.
    """
    try:
        value = header.get(key)
    except Exception as e:  # VerifyError, ValueError, ...: hostile card text
        raise InputError(
            "bad_fits",
            f"header card {key} cannot be parsed ({type(e).__name__}): the file has "
            f"{_card_image(header, key)}; expected a FITS value (a 'quoted string' closed by its "
            "quote, a number, T or F)",
            where,
            received=_card_image(header, key),
        ) from e
    return None if value is None or isinstance(value, fits.card.Undefined) else value


def _card_image(header: fits.Header, key: str) -> str:
    """The 80 characters of card ``key`` as the file has them (escaped, trailing spaces cut)."""
    try:  # the card's own text (astropy keeps it as read); its re-rendered image otherwise
        card = header.cards[key]
        image = getattr(card, "_image", None) or card.image
        return repr(str(image).rstrip())
    except Exception:  # the image itself cannot be had: say so rather than fail
        return "unreadable"


def _lookup(headers: list[fits.Header], key: str, where: str) -> Any:
    """The first header's value of ``key`` among ``headers`` that has one, else None."""
    for header in headers:
        value = _card(header, key, where)
        if value is not None:
            return value
    return None


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise InputError("bad_value", f"{key} = {value!r} is not a number", where, received=value)
    number = float(value)
    if not math.isfinite(number):
        raise InputError("bad_value", f"{key} = {number} must be finite", where, received=number)
    return number


def _zeropoints(headers: list[fits.Header], keys: list[str], where: str) -> np.ndarray | None:
    """``[B]`` zeropoints [mag], ``keys[k]`` read from ``headers[k]`` (or the only header)."""
    values = []
    for k, key in enumerate(keys):
        value = _card(headers[min(k, len(headers) - 1)], key, where)
        if value is None:
            return None
        values.append(_number(value, key, where))
    return np.array(values)


def _ebv(headers: list[fits.Header], where: str) -> float | None:
    value = _lookup(headers, "EBV", where)
    if value is None:
        return None
    ebv = _number(value, "EBV", where)
    if ebv < 0:
        raise InputError(
            "bad_value",
            f"EBV = {ebv} must be a Galactic E(B-V) >= 0 mag",
            where,
            expected=">= 0",
            received=ebv,
        )
    return ebv


def _bunit(headers: list[fits.Header], where: str) -> str | None:
    # The last header is the primary's, a fallback; the band HDUs before it must agree.
    given = (_card(h, "BUNIT", where) for h in headers[:-1])
    units = {str(u).strip() for u in given if u is not None}
    if len(units) > 1:
        raise InputError(
            "bad_value",
            f"the bands have different BUNIT ({', '.join(sorted(units))}); expected one unit",
            where,
            received=sorted(units),
        )
    value = _lookup(headers, "BUNIT", where)
    return None if value is None else str(value).strip()


# --- pixels ---------------------------------------------------------------------------------


def _repair_non_finite(image: np.ndarray, where: str, bands: tuple[str, ...], repair: str) -> int:
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


# --- messages -------------------------------------------------------------------------------


def _where(name: str, i: int, hdu: Any) -> str:
    try:  # EXTNAME, read by astropy: a card that cannot be parsed is left out of the message
        extname = str(hdu.name).strip() if getattr(hdu, "name", "") else ""
    except Exception:
        extname = ""
    return f"{name} HDU {i} ({extname})" if extname else f"{name} HDU {i}"


def _dims(dims: Sequence[int]) -> str:
    return "×".join(str(int(d)) for d in dims)


def _mib(size: int) -> str:
    return f"{size / MiB:.1f} MiB ({size:,} bytes)"


def _explain(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _stem(name: str) -> str:
    """``cutout`` from ``dir/cutout.fits.fz``."""
    stem = PurePath(name).name
    for suffixes in ((".fz", ".gz"), (".fits", ".fit", ".fts")):
        for suffix in suffixes:
            if stem.lower().endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
    return stem


def _too_many(n: int, limits: Limits, what: str) -> InputError:
    return InputError(
        "too_many",
        f"{n} {what} in one request, more than the limit of {limits.max_cutouts}; "
        "split the request",
        "request",
        expected=limits.max_cutouts,
        received=n,
    )
