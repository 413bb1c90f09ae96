"""Decode and check the cutouts a survey pipeline sends, before any model sees them.

Everything a request carries is checked here, once; code past this package trusts a `Cutout`.
numpy, astropy and the error types of ``service.errors`` only, so that it can be imported and
tested without the serving stack. One module per concern:

================  ================================================================================
module            holds
================  ================================================================================
``read``          the entry points ``read_fits``, ``read_many``, ``from_array``, in the order that
                  keeps hostile input cheap: bytes, headers, layout, then pixels
``bytes``         checks on a file's bytes before astropy sees them; the guard around astropy
``header``        every header value used, read and checked in one place (``header_value``)
``layout``        which HDUs and planes hold the task's bands (cube, or one HDU per band)
``compression``   a tile-compressed HDU's compression cards, checked before a tile is decoded
``repair``        non-finite pixels refused or repaired
``limits``        ``Limits`` of a request, the checked ``Cutout``, the repair modes
``messages``      how refusals name places and sizes
================  ================================================================================

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

Hostile headers: every header value is read in one place (``header.header_value``), so a card
astropy cannot parse (it parses a value only when it is read) is a ``bad_fits`` naming the card,
wherever it is read; the cards that size an HDU (NAXIS, NAXISn, ZNAXIS, TFIELDS, PCOUNT, GCOUNT)
are scanned on the raw bytes before astropy sees them (``bytes.check_bytes``), and a
tile-compressed HDU's compression cards are checked before a tile is decompressed
(``compression.check_compression``): values outside the standard made astropy loop without end
or crash the process.

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

from ..errors import REASONS, InputError, Reason
from .limits import DEFAULT_LIMITS, REPAIRS, Cutout, Limits, MiB, Repair
from .read import from_array, read_fits, read_many

__all__ = [
    "DEFAULT_LIMITS",
    "REASONS",
    "REPAIRS",
    "Cutout",
    "InputError",
    "Limits",
    "MiB",
    "Reason",
    "Repair",
    "from_array",
    "read_fits",
    "read_many",
]
