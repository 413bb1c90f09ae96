"""Tile-compressed HDUs: their compression cards checked against the convention before any
tile is decompressed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import InputError
from .bytes import decoding
from .header import header_value

#: what the tiled-image compression convention allows (FITS 4.0 §10.1–10.4), checked before a
#: tile is decompressed: astropy's C decoders trust these cards (a RICE_1 file with
#: BYTEPIX = -1 crashed the process, a fuzzer's mutant)
_ZCMPTYPES = ("RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1", "NOCOMPRESS")
_ZBITPIX = (8, 16, 32, 64, -32, -64)
_ZQUANTIZ = ("NO_DITHER", "SUBTRACTIVE_DITHER_1", "SUBTRACTIVE_DITHER_2")
_ZPARAMS = {"BLOCKSIZE": (16, 32), "BYTEPIX": (1, 2, 4, 8), "SMOOTH": (0, 1)}


def check_compression(hdu: fits.CompImageHDU, where: str) -> None:
    """Refuse a tile-compressed HDU whose compression cards are outside the convention."""
    with decoding(where, "its compression table cannot be read"):
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

    kind = header_value(table, "ZCMPTYPE", where)
    if kind not in _ZCMPTYPES:
        raise refuse("ZCMPTYPE", kind, f"one of {', '.join(_ZCMPTYPES)}")
    bitpix = header_value(table, "ZBITPIX", where)
    if not integer(bitpix) or bitpix not in _ZBITPIX:
        raise refuse("ZBITPIX", bitpix, f"one of {_ZBITPIX}")
    naxis = header_value(table, "ZNAXIS", where)
    if not integer(naxis) or not 1 <= naxis <= 999:
        raise refuse("ZNAXIS", naxis, "an integer 1-999")
    for k in range(1, naxis + 1):
        size, tile = (
            header_value(table, f"ZNAXIS{k}", where),
            header_value(table, f"ZTILE{k}", where),
        )
        if not integer(size) or size < 1:
            raise refuse(f"ZNAXIS{k}", size, "a positive integer")
        if tile is not None and (not integer(tile) or not 1 <= tile <= size):
            raise refuse(f"ZTILE{k}", tile, f"an integer 1-{size} (ZNAXIS{k})")
    k = 1
    while (param := header_value(table, f"ZNAME{k}", where)) is not None:
        value = header_value(table, f"ZVAL{k}", where)
        allowed = _ZPARAMS.get(str(param).strip().upper())
        if allowed is not None and (not integer(value) or value not in allowed):
            raise refuse(f"ZVAL{k} ({str(param).strip()})", value, f"one of {allowed}")
        if str(param).strip().upper() in ("SCALE", "NOISEBIT") and not (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):  # negative: an absolute step
            raise refuse(f"ZVAL{k} ({str(param).strip()})", value, "a finite number")
        k += 1
    quantize = header_value(table, "ZQUANTIZ", where)
    if quantize is not None and str(quantize).strip() not in _ZQUANTIZ:
        raise refuse("ZQUANTIZ", quantize, f"one of {', '.join(_ZQUANTIZ)}")
    dither = header_value(table, "ZDITHER0", where)
    if dither is not None and (not integer(dither) or not 1 <= dither <= 10000):
        raise refuse("ZDITHER0", dither, "an integer 1-10000")
