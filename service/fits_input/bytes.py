"""Checks on a file's bytes before astropy sees them, and the guard around astropy's decoding."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

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
        raise InputError(
            "too_large",
            f"the file is {mib(size)}, more than the limit of {mib(limits.max_bytes)} per file",
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
    # astropy loops for minutes on a negative GCOUNT/PCOUNT (a one-byte edit of a tile-compressed
    # file); such a header is refused on a plain scan of its cards before astropy sees it
    raw = bytes(data)
    at = raw.find(b"COUNT  =")
    while at >= 0:
        card = at - 1  # GCOUNT or PCOUNT starting a card
        m = _NEGATIVE.match(raw, at + 8)
        if m and card >= 0 and card % 80 == 0 and raw[card : card + 1] in (b"G", b"P"):
            raise InputError(
                "bad_fits",
                f"header card {raw[card : at + 5].decode()} = {m.group(1).decode()}: must be a "
                "non-negative integer",
                name,
            )
        at = raw.find(b"COUNT  =", at + 1)
    return size


#: the value of a card whose value is negative, after its "= ". The cards are found with
#: ``bytes.find`` (a fast substring search): a regex starting with (GCOUNT|PCOUNT) tried every
#: byte of the pixel data (0.33 ms for a 3×100×100 float32 file, a quarter of its decoding).
_NEGATIVE = re.compile(rb" +(-\d+)")


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
