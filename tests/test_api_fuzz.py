"""Schemathesis against a real ``bentoml serve`` (issue 20 §1): every operation of the server's
own OpenAPI document (``/docs.json``), with data that fits the schema and data that does not
(schemathesis' positive and negative modes), and each request also sent malformed on the wire
by seeded mutations of our own: the content type changed or its boundary dropped, a
Content-Encoding, file parts turned into text parts, the body truncated, doubled or padded past
the size limits.

Pass: no 5xx but a documented 503 (with Retry-After), and every refusal a 4xx in the one error
shape the API documents: ``application/json`` ``{"error": str, "reason": str}``. The run prints
how many requests it sent and how many got a 5xx (``pytest -s`` shows it).
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter

import pytest
import requests
import schemathesis  # a dev dependency: missing, this test must fail, not skip
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from test_service import _cube, server  # noqa: F401  (``server``: the fixture)

#: examples per operation and generation mode: small enough for CI's two cores (~1–2 min)
EXAMPLES = 25
#: requests sent, by status
STATUSES: Counter[int] = Counter()
FAULTS: list[str] = []


@pytest.fixture(scope="module")
def api_schema(server):  # noqa: F811
    return schemathesis.openapi.from_url(f"{server}/docs.json")


@pytest.fixture(scope="module", autouse=True)
def _tally():
    t0 = time.monotonic()
    yield
    fives = sum(n for s, n in STATUSES.items() if s >= 500)
    print(f"\nschemathesis + wire mutations: {STATUSES.total()} requests, {fives} 5xx "
          f"({STATUSES.get(503, 0)} of them 503), statuses {dict(sorted(STATUSES.items()))}, "
          f"{len(FAULTS)} faults, {time.monotonic() - t0:.0f} s")  # fmt: skip


def _header(response, name: str) -> str:
    """A response header (schemathesis' responses hold lists of values, requests' strings)."""
    for k, v in response.headers.items():
        if k.lower() == name:
            return v[0] if isinstance(v, list) else v
    return ""


def check_response(response, what: str) -> None:
    """The pass condition on one answer (module docstring): a failure is recorded in FAULTS."""
    status = response.status_code
    STATUSES[status] += 1
    if status >= 500 and not (status == 503 and _header(response, "retry-after")):
        FAULTS.append(f"{what}: a server error {status}: {response.text[:300]}")
    elif status >= 400:
        body = None
        if _header(response, "content-type").startswith("application/json"):
            try:
                body = response.json()
            except ValueError:
                pass
        ok = (isinstance(body, dict) and set(body) == {"error", "reason"}
              and all(isinstance(v, str) and v for v in body.values()))  # fmt: skip
        if not ok:
            FAULTS.append(f"{what}: {status} not in the error shape: {response.text[:300]}")


#: Content-Types a request is also sent with, beside its own
ODD_TYPES = ["text/plain", "application/octet-stream", "application/x-www-form-urlencoded",
             "multipart/mixed; boundary=x", "application/json; charset=utf-16", "*/*", ";;;",
             "multipart/form-data; boundary=" + "b" * 80, "multipart/form-data; boundary=",
             "multipart/form-data; boundary=\"\"", "application/fits", ""]  # fmt: skip


def _mutations(kw: dict, rng: random.Random) -> list[tuple[str, dict]]:
    """Malformed versions of one request (``requests`` keyword arguments from schemathesis):
    (what is changed, the request as ``requests.request`` keyword arguments)."""
    prepared = requests.Request(kw["method"], kw["url"], headers=kw.get("headers"),
                                files=kw.get("files"), data=kw.get("data"),
                                json=kw.get("json")).prepare()  # fmt: skip
    body = prepared.body or b""
    body = body.encode() if isinstance(body, str) else bytes(body)
    ctype = prepared.headers.get("Content-Type", "")
    headers = {k: v for k, v in prepared.headers.items()
               if k.lower() not in ("content-type", "content-length")}  # fmt: skip
    out = []

    def add(what: str, content: bytes, content_type: str = ctype, **extra: str) -> None:
        h = {**headers, "Content-Type": content_type, **extra}
        out.append((what, {"method": kw["method"], "url": kw["url"], "data": content,
                           "headers": h, "timeout": 60}))  # fmt: skip

    add("no boundary", body, ctype.split(";")[0] or "multipart/form-data")
    odd = rng.choice(ODD_TYPES)
    add(f"Content-Type {odd!r}", body, odd)
    add("truncated", body[: rng.randrange(len(body) + 1)])
    add("gzip encoding", body, **{"Content-Encoding": "gzip"})
    add("doubled", body + body)
    add("padded past 1 MiB", body + rng.randbytes(1_100_000))
    if b'filename="' in body:  # multipart with file parts
        add("file parts as text parts", re.sub(rb'; filename="[^"]*"', b"", body))
        at = body.find(b"\r\n\r\n")
        add("random bytes in a part's headers", body[:at] + rng.randbytes(48) + body[at:])
        add("a part without a name", body.replace(b'name="', b'nom="', 1))
        add(
            "a file part over the upload limit",
            body[: at + 4] + rng.randbytes(1_100_000) + body[at + 4 :],
        )
    return out


def _fuzz(operation, mode) -> None:
    """``EXAMPLES`` cases of one operation in one generation mode, each sent as generated and
    as its wire mutations; a failing case is recorded in FAULTS, the run goes on."""

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        label = f"{case.method} {case.formatted_path} ({mode.value})"
        try:
            check_response(case.call(timeout=60), label)
        except requests.RequestException as e:  # a dropped connection is a fault too
            FAULTS.append(f"{label}: {e!r}")
        kw = case.as_transport_kwargs()
        rng = random.Random(f"{label} {STATUSES.total()}")
        for what, request in _mutations(kw, rng):
            try:
                check_response(requests.request(**request), f"{label} {what}")
            except requests.RequestException as e:
                FAULTS.append(f"{label} {what}: {e!r}")

    try:
        run()
    except Unsatisfiable:  # nothing to negate: an operation without parameters or body
        assert not mode.is_positive, operation.label


@pytest.mark.filterwarnings("ignore")
def test_every_operation(api_schema, server):  # noqa: F811
    """Every operation of the server's OpenAPI document, positive and negative, and every
    request malformed on the wire: no server error, every refusal in the documented shape."""
    operations = [r.ok() for r in api_schema.get_all_operations()]
    assert len(operations) >= 13, [op.label for op in operations]
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            _fuzz(operation, mode)
    # requests that schemathesis does not make: good FITS uploads (two cutouts, one request of
    # each task), malformed on the wire in every way, under several seeds
    for task in ("morphology", "lsbg", "photoz"):
        good = {"method": "POST", "url": f"{server}/{task}",
                "files": [("cutouts", (f"c{k}.fits", _cube(task), "application/fits"))
                          for k in range(2)]}  # fmt: skip
        r = requests.request(**good, timeout=60)
        check_response(r, f"POST /{task} good")
        assert r.status_code == 200 and r.json()["n_answered"] == 2, r.text
        for seed in range(4):
            for what, request in _mutations(good, random.Random(seed)):
                check_response(requests.request(**request), f"POST /{task} good, {what}")
    assert STATUSES.total() > len(operations) * EXAMPLES, "the fuzz run sent too little"
    assert not FAULTS, f"{len(FAULTS)} faults:\n" + "\n".join(FAULTS[:10])
