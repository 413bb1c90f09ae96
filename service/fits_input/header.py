"""Header values: every card this package uses is read and checked here, once."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import InputError


def header_value(header: fits.Header, key: str, where: str) -> Any:
    """The value of card ``key`` in ``header``, or None when there is no such card or it has no
    value; every header value this package uses is read here.

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
            f"{card_text(header, key)}; expected a FITS value (a 'quoted string' closed by its "
            "quote, a number, T or F)",
            where,
            received=card_text(header, key),
        ) from e
    return None if value is None or isinstance(value, fits.card.Undefined) else value


def card_text(header: fits.Header, key: str) -> str:
    """The 80 characters of card ``key`` as the file has them (escaped, trailing spaces cut)."""
    try:  # the card's own text (astropy keeps it as read); its re-rendered image otherwise
        card = header.cards[key]
        image = getattr(card, "_image", None) or card.image
        return repr(str(image).rstrip())
    except Exception:  # the image itself cannot be had: say so rather than fail
        return "unreadable"


def lookup(headers: list[fits.Header], key: str, where: str) -> Any:
    """The first header's value of ``key`` among ``headers`` that has one, else None."""
    for header in headers:
        value = header_value(header, key, where)
        if value is not None:
            return value
    return None


def as_number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise InputError("bad_value", f"{key} = {value!r} is not a number", where, received=value)
    number = float(value)
    if not math.isfinite(number):
        raise InputError("bad_value", f"{key} = {number} must be finite", where, received=number)
    return number


def zeropoints(headers: list[fits.Header], keys: list[str], where: str) -> np.ndarray | None:
    """``[B]`` zeropoints [mag], ``keys[k]`` read from ``headers[k]`` (or the only header)."""
    values = []
    for k, key in enumerate(keys):
        value = header_value(headers[min(k, len(headers) - 1)], key, where)
        if value is None:
            return None
        values.append(as_number(value, key, where))
    return np.array(values)


def read_ebv(headers: list[fits.Header], where: str) -> float | None:
    value = lookup(headers, "EBV", where)
    if value is None:
        return None
    ebv = as_number(value, "EBV", where)
    if ebv < 0:
        raise InputError(
            "bad_value",
            f"EBV = {ebv} must be a Galactic E(B-V) >= 0 mag",
            where,
            expected=">= 0",
            received=ebv,
        )
    return ebv


def read_bunit(headers: list[fits.Header], where: str) -> str | None:
    # The last header is the primary's, a fallback; the band HDUs before it must agree.
    given = (header_value(h, "BUNIT", where) for h in headers[:-1])
    units = {str(u).strip() for u in given if u is not None}
    if len(units) > 1:
        raise InputError(
            "bad_value",
            f"the bands have different BUNIT ({', '.join(sorted(units))}); expected one unit",
            where,
            received=sorted(units),
        )
    value = lookup(headers, "BUNIT", where)
    return None if value is None else str(value).strip()
