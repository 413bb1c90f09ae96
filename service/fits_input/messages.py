"""How refusals name places and sizes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from ..errors import InputError
from .limits import Limits, MiB


def place(name: str, i: int, hdu: Any) -> str:
    try:  # EXTNAME, read by astropy: a card that cannot be parsed is left out of the message
        extname = str(hdu.name).strip() if getattr(hdu, "name", "") else ""
    except Exception:
        extname = ""
    return f"{name} HDU {i} ({extname})" if extname else f"{name} HDU {i}"


def dims_text(dims: Sequence[int]) -> str:
    return "×".join(str(int(d)) for d in dims)


def mib(size: int) -> str:
    return f"{size / MiB:.1f} MiB ({size:,} bytes)"


def explain(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def file_stem(name: str) -> str:
    """``cutout`` from ``dir/cutout.fits.fz``."""
    stem = PurePath(name).name
    for suffixes in ((".fz", ".gz"), (".fits", ".fit", ".fts")):
        for suffix in suffixes:
            if stem.lower().endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
    return stem


def too_many(n: int, limits: Limits, what: str) -> InputError:
    return InputError(
        "too_many",
        f"{n} {what} in one request, more than the limit of {limits.max_cutouts}; "
        "split the request",
        "request",
        expected=limits.max_cutouts,
        received=n,
    )
