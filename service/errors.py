"""The errors of the service and of batch scoring, and which to raise when.

=====================  ==================================  =======================================
error                  raise it when                       what the client sees
=====================  ==================================  =======================================
``InputError``         a cutout, or the whole request,     per cutout: its ``error`` entry in the
(a ``ValueError``)     cannot be served because of what    answer, the others answered; for the
                       it holds (FITS edge, array checks,  whole request (too many cutouts, no
                       a model output that is not          cutout servable): ``RequestRefused``
                       finite); ``reason`` is one of
                       ``REASONS``
``RequestRefused``     the gateway refuses a request as a  400 (413 when too large) with the
                       whole                               reason, in the one error shape
                                                           (``service.http_guard``)
``Unavailable``        the service cannot answer now,      503 with ``Retry-After`` and the reason
                       through no fault of the request     (``service.service._ShowUnavailable``)
                       (predictor down or restarting,
                       queue full, upload store full)
``core.bundle.         a model bundle fails its schema,    start-up stops, naming the bundle, the
BundleError``          a checksum or ONNX parity           file and the reason
``ValueError``         a setting that cannot be parsed     start-up stops, naming the variable
                       (``service.config``), or our own
                       code calls with wrong arguments
=====================  ==================================  =======================================

Nothing else may escape an API method: BentoML would answer it as a 500.
"""

from __future__ import annotations

import contextvars
from http import HTTPStatus
from typing import Any, Literal, get_args

from bentoml.exceptions import BentoMLException, InvalidArgument

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


class RequestRefused(InvalidArgument):
    """A request that cannot be served at all: 400, or 413 when it is too large."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.error_code = status


# why the request being served cannot be answered now (message, Retry-After [s]), noted by an
# ``Unavailable`` or an upload that could not be stored: BentoML answers every 5xx with one
# generic text, so ``_ShowUnavailable`` puts the reason back. A list set per request by the
# middleware: tasks started below copy the context, so they share the list, not a value.
UNAVAILABLE_NOTES: contextvars.ContextVar[list[tuple[str, int]]] = contextvars.ContextVar(
    "unavailable"
)


class Unavailable(BentoMLException):
    """The service cannot answer now, through no fault of the request (its predictor is down,
    restarting or failing): 503 with ``Retry-After`` [s] and this message (``_ShowUnavailable``).
    """

    error_code = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        if (box := UNAVAILABLE_NOTES.get(None)) is not None:
            box.append((message, retry_after_s))
