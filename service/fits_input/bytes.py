"""Checks on a file's bytes before astropy sees them, and the guard around astropy's decoding."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError
from .limits import Limits
from .messages import explain, mib

# Magic numbers of whole-file compressors, to say why such a file is refused.
_ARCHIVES = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"PK\x03\x04": "zip"}


def check_bytes(data: bytes, name: str, limits: Limits) -> int:
    """Size of ``data`` [bytes], after refusing empty, oversize and whole-file-compressed data."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    size = memoryview(data).nbytes
    if size == 0:
        raise InputError("empty", "the file is empty (0 bytes); expected a FITS file", name)
    if size > limits.max_bytes:
        raise too_large(size, name, limits)
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


#: the cards that size an HDU, and the card (keyword, integer value) of one of them. The cards
#: are found with ``bytes.find`` (a fast substring search) and checked where they start a card,
#: since a regex tried at every byte would scan all the pixel data.
_SIZE_KEYS = (b"GCOUNT  =", b"PCOUNT  =", b"NAXIS", b"ZNAXIS", b"TFIELDS =")
_SIZE_CARD = re.compile(rb"(GCOUNT|PCOUNT|Z?NAXIS\d{0,3}|TFIELDS) *= +([-+]?\d+)")


def read_path(path: Path, name: str, limits: Limits) -> bytes:
    """The bytes of the file at ``path`` (an upload spooled to disk), refused as ``too_large`` on
    its size alone, before a byte of it is read."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise too_large(size, name, limits)
    return path.read_bytes()


def too_large(size: int, name: str, limits: Limits) -> InputError:
    return InputError(
        "too_large",
        f"the file is {mib(size)}, more than the limit of {mib(limits.max_bytes)} per file",
        name,
        expected=limits.max_bytes,
        received=size,
    )


@contextmanager
def decoding(where: str, what: str) -> Iterator[None]:
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
        raise InputError("bad_fits", f"{what} ({explain(e)})", where) from e
