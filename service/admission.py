"""Backpressure at the gateway (issue 20 §2): a bounded queue of cutouts per task, admitted or
refused before a byte of the upload is read.

Every prediction request (``POST /<task>``, ``POST /<task>_array``) is charged a number of
cutouts estimated from its ``Content-Length`` and the task's cutout size (``cost``), and is
admitted only while the task's cutouts in flight in this gateway worker plus its own stay within
the task's bound (a request that finds nothing in flight is always admitted, however large).
Past the bound it is answered at once: 503, ``Retry-After`` and ``{"error": <why>}`` — the body
the service gives every 503 — without reading its body, so a refusal costs the gateway no FITS
decoding, no spooling and no predictor time.

The bound is ``SKYGUARD_QUEUE_CUTOUTS`` when set; otherwise it is the task's measured throughput
× ``SKYGUARD_LATENCY_TARGET_MS`` (``SKYGUARD_MAX_CUTOUTS``, one largest request, until the first
measurement).
Throughput is measured here, on the requests this worker answers: cutouts finished per second of
busy time (time with at least one request of the task in flight), smoothed over samples of at
least ``SAMPLE_S`` of busy time. A request admitted last then waits about the latency target;
under any overload the answered requests' latency stays near it and the rest are shed.

The cost is an estimate (the body is not read): a FITS upload of ``n`` float32 cutouts is
``n × (values × 4 + 2 × 2880)`` bytes plus multipart framing, a JSON array request about
``values × JSON_BYTES_PER_VALUE`` per cutout; compressed FITS counts less than it holds. The
adaptive bound measures throughput in the same units, so a steady mix stays consistent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .http_guard import answer_json, find_header

FITS_HEADER_BYTES = 2 * 2880  # a primary header and the padding of the data unit, about
JSON_BYTES_PER_VALUE = 12  # "1234.5678, ": a float of a JSON array as text, about


@dataclass
class TaskQueue:
    """The cutouts in flight of one task in one gateway worker, and its bound."""

    task: str
    fixed_bound: int = 0  # > 0: this bound; 0: throughput × target_s
    target_s: float = 2.0
    initial: int = 256  # the adaptive bound before its first measurement
    clock: Callable[[], float] = time.monotonic
    SAMPLE_S: float = 1.0  # busy time per throughput sample [s]
    SMOOTHING: float = 0.3  # weight of a new sample

    in_flight: int = 0
    rate: float | None = None  # cutouts per second of busy time (None: not measured yet)
    _busy_since: float | None = field(default=None, repr=False)
    _busy: float = field(default=0.0, repr=False)  # busy seconds of the sample being taken
    _done: int = field(default=0, repr=False)  # cutouts finished in it

    @property
    def bound(self) -> int:
        if self.fixed_bound:
            return self.fixed_bound
        if self.rate is None:
            return self.initial
        return max(1, int(self.rate * self.target_s))

    def try_admit(self, cost: int) -> bool:
        """Take ``cost`` cutouts into the queue if they fit (or the queue is empty)."""
        if self.in_flight and self.in_flight + cost > self.bound:
            return False
        if not self.in_flight:
            self._busy_since = self.clock()
        self.in_flight += cost
        return True

    def release(self, cost: int) -> None:
        """An admitted request of ``cost`` cutouts has been answered (or given up)."""
        now = self.clock()
        self.in_flight = max(0, self.in_flight - cost)
        self._done += cost
        if self._busy_since is not None:
            self._busy += now - self._busy_since
            self._busy_since = now if self.in_flight else None
        if self._busy >= self.SAMPLE_S:
            sample = self._done / self._busy
            self.rate = (
                sample
                if self.rate is None
                else (1 - self.SMOOTHING) * self.rate + self.SMOOTHING * sample
            )
            self._busy, self._done = 0.0, 0

    def retry_after_s(self) -> int:
        """Seconds until the cutouts in flight now are likely answered (1 … 60)."""
        if not self.rate:
            return 1
        return int(min(60, max(1, math.ceil(self.in_flight / self.rate))))


def cost(content_length: int | None, values: int, array: bool, most: int) -> int:
    """Cutouts a request is charged: its body's bytes over one cutout's, 1 … ``most``; a body of
    unknown length (chunked) is charged ``most``. ``values``: numbers per cutout (B·H·W)."""
    if content_length is None:
        return most
    per = values * JSON_BYTES_PER_VALUE if array else values * 4 + FITS_HEADER_BYTES
    return int(min(most, max(1, math.ceil(content_length / per))))


class Admission:
    """ASGI middleware of the gateway: the bounded queue of every task (module docstring).

    ``values``: task → numbers per cutout (B·H·W); a task not (yet) in it is not bounded.
    ``on_shed(task, cutouts)`` and ``on_depth(task, in_flight, bound)`` publish the figures.
    """

    def __init__(
        self,
        app,
        *,
        values: dict[str, int],
        fixed_bound: int = 0,
        target_s: float = 2.0,
        initial: int = 256,
        most: int = 256,
        on_shed: Callable[[str, int], None] = lambda task, n: None,
        on_depth: Callable[[str, int, int], None] = lambda task, n, bound: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.values = values  # shared: the gateway fills it when its bundles are known
        self.most = most  # the cost of a request of unknown length (and the most any is charged)
        self.on_shed, self.on_depth = on_shed, on_depth
        self.queues: dict[str, TaskQueue] = {}
        self._make = lambda task: TaskQueue(task, fixed_bound, target_s, initial, clock)

    def queue(self, task: str) -> TaskQueue:
        if task not in self.queues:
            self.queues[task] = self._make(task)
        return self.queues[task]

    def _route(self, scope) -> tuple[str, bool] | None:
        """(task, array route) of a prediction request, None for anything else."""
        if scope["method"] != "POST":
            return None
        name = scope["path"].strip("/")
        array = name.endswith("_array")
        task = name.removesuffix("_array")
        return (task, array) if task in self.values else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or (route := self._route(scope)) is None:
            return await self.app(scope, receive, send)
        task, array = route
        raw = find_header(scope.get("headers", []), b"content-length")
        length = int(raw) if raw is not None and raw.strip().isdigit() else None
        n = cost(length, self.values[task], array, self.most)
        q = self.queue(task)
        if not q.try_admit(n):
            self.on_shed(task, n)
            self.on_depth(task, q.in_flight, q.bound)
            error = (f"the {task} queue is full: {q.in_flight} cutouts in flight, at most "
                     f"{q.bound}; retry later")  # fmt: skip
            retry = [(b"retry-after", str(q.retry_after_s()).encode())]
            return await answer_json(send, 503, {"error": error}, retry)
        self.on_depth(task, q.in_flight, q.bound)
        try:
            await self.app(scope, receive, send)
        finally:
            q.release(n)
            self.on_depth(task, q.in_flight, q.bound)
