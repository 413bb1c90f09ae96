"""The gateway's request-parsing layer and error shape (``service/http_guard.py``) on a small
Starlette app that parses forms as BentoML does (``request.form()``), in process: refused
requests never reach the handler, accepted ones reach it unchanged, every error leaves as
``{"error", "reason"}``."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route as StarletteRoute

from service.http_guard import (
    MultipartCheck,
    Refusal,
    RequestGuard,
    Route,
    UniformErrors,
    check_headers,
    document_errors,
    error_body,
)

ROUTES = {"/files": Route("multipart/form-data", frozenset({"cutouts"})),
          "/arrays": Route("application/json")}  # fmt: skip
CALLS: list[dict] = []


async def files(request):
    form = await request.form()
    got = {k: [getattr(v, "filename", v) for v in form.getlist(k)] for k in form}
    CALLS.append(got)
    return JSONResponse(got)


async def arrays(request):
    CALLS.append(await request.json())
    return JSONResponse([{"error": "[wrong_shape] array: expected N×3×4×4"}], status_code=400)


async def boom(request):
    return PlainTextResponse("Internal Server Error", status_code=500)


APP = UniformErrors(RequestGuard(Starlette(routes=[
    StarletteRoute("/files", files, methods=["POST"]),
    StarletteRoute("/arrays", arrays, methods=["POST"]),
    StarletteRoute("/boom", boom),
]), ROUTES))  # fmt: skip


def _call(path: str, body: bytes, headers: dict[str, str], chunk: int = 7, method: str = "POST"):
    """The app's answer to one request whose body arrives in ``chunk``-byte pieces:
    (status, headers, body)."""
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    sent: list[dict] = []

    async def receive():
        if pieces:
            data = pieces.pop(0)
            return {"type": "http.request", "body": data, "more_body": bool(pieces)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
             "server": ("t", 80), "client": ("c", 1),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}  # fmt: skip
    asyncio.run(APP(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), data


def _multipart(*parts: tuple[str, str | None, bytes], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


MP = {"content-type": "multipart/form-data; boundary=XyZ"}


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_good_multipart_reaches_the_handler_unchanged(chunk):
    body = _multipart(("cutouts", "a.fits", b"SIMPLE" * 50), ("cutouts", "b.fits", b"\r\n--X"),
                      ("repair", None, b'"none"'))  # fmt: skip
    status, _, data = _call("/files", body, MP, chunk)
    assert status == 200 and json.loads(data) == {
        "cutouts": ["a.fits", "b.fits"],
        "repair": ['"none"'],
    }
    assert len(CALLS) == 1


# (path, body, headers, status, reason)
REFUSED = [
    ("/files", _multipart(("cutouts", None, b"http://example.org/x.fits")), MP, 400, "text_part"),
    (
        "/files",
        _multipart(("cutouts", "a.fits", b"x"), ("cutouts", None, b"/etc/passwd")),
        MP,
        400,
        "text_part",
    ),  # fmt: skip
    (
        "/files",
        b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--\r\n",
        MP,
        400,
        "bad_multipart",
    ),  # fmt: skip
    ("/files", _multipart(("cutouts", "a.fits", b"x"))[:-9], MP, 400, "bad_multipart"),
    ("/files", b"garbage that is not multipart", MP, 400, "bad_multipart"),
    ("/files", b"", MP, 400, "bad_multipart"),
    ("/files", _multipart(("repair", None, b"x" * (1024 * 1024 + 1))), MP, 413, "too_large"),
    ("/files", b"x", {"content-type": "multipart/form-data"}, 400, "bad_multipart"),
    ("/files", b"x", {"content-type": "multipart/form-data; boundary="}, 400, "bad_multipart"),
    (
        "/files",
        b"x",
        {"content-type": "multipart/form-data; boundary=" + "b" * 71},
        400,
        "bad_multipart",
    ),  # fmt: skip
    ("/files", b"{}", {"content-type": "application/json"}, 415, "unsupported_media_type"),
    (
        "/files",
        b"cutouts=http://x",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
    ),  # fmt: skip
    ("/files", b"{}", {}, 415, "unsupported_media_type"),
    (
        "/files",
        _multipart(("cutouts", "a.fits", b"x")),
        {**MP, "content-encoding": "gzip"},
        415,
        "unsupported_encoding",
    ),  # fmt: skip
    ("/arrays", b"x", {"content-type": "multipart/form-data"}, 415, "unsupported_media_type"),
    ("/arrays", b"x", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
    (
        "/arrays",
        b"{}",
        {"content-type": "application/json", "content-encoding": "br"},
        415,
        "unsupported_encoding",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "reason"), REFUSED)
def test_malformed_requests_are_refused_before_the_handler(path, body, headers, status, reason):
    got, h, data = _call(path, body, headers)
    assert got == status and h[b"content-type"] == b"application/json"
    answer = json.loads(data)
    assert set(answer) == {"error", "reason"} and answer["reason"] == reason and answer["error"]
    assert int(h[b"content-length"]) == len(data)
    assert CALLS == []  # the handler never ran


def test_every_error_leaves_in_one_shape():
    status, _, data = _call("/arrays", b"{}", {"content-type": "application/json"})
    assert status == 400 and json.loads(data) == {
        "error": "[wrong_shape] array: expected N×3×4×4", "reason": "wrong_shape"}  # fmt: skip
    assert CALLS == [{}]  # JSON without Content-Type is JSON, as BentoML takes it
    assert _call("/arrays", b"[]", {})[0] == 400
    for path, method, status, reason in [("/nowhere", "GET", 404, "not_found"),
                                         ("/files", "GET", 405, "method_not_allowed"),
                                         ("/boom", "GET", 500, "internal_error")]:  # fmt: skip
        got, h, data = _call(path, b"", {}, method=method)
        assert got == status and json.loads(data)["reason"] == reason, (path, data)


@pytest.mark.parametrize(
    ("status", "raw", "expected"),
    [
        (400, b'[{"error": "[bad_fits] cutout[0]: truncated"}]',
         {"error": "[bad_fits] cutout[0]: truncated", "reason": "bad_fits"}),
        (400, json.dumps({"error": "1 validation error for Input", "detail": [
            {"type": "missing", "loc": ["cutouts"], "msg": "Field required"}]}).encode(),
         {"error": "1 validation error for Input: cutouts: Field required", "reason": "bad_request"}),
        (422, b'{"detail": "not here"}', {"error": "not here", "reason": "bad_request"}),
        (401, b'{"error": "authentication required"}',
         {"error": "authentication required", "reason": "unauthorized"}),
        (503, b'{"error": "the predictor is unreachable", "reason": "unavailable"}',
         {"error": "the predictor is unreachable", "reason": "unavailable"}),
        (404, b"Not Found", {"error": "Not Found", "reason": "not_found"}),
        (413, b"", {"error": "Request Entity Too Large", "reason": "too_large"}),
        (418, b"[1, 2]", {"error": "[1, 2]", "reason": "error"}),
    ],
)  # fmt: skip
def test_error_body(status, raw, expected):
    assert error_body(status, raw) == expected


def test_multipart_check_names_the_part():
    body = _multipart(("cutouts", "a.fits", b"x"), ("cutouts", None, b"y"))
    check = MultipartCheck(b"XyZ", frozenset({"cutouts"}))
    with pytest.raises(Refusal, match=r"part 2 \(cutouts\) is a text field") as e:
        check.feed(body)
    assert e.value.status == 400
    assert (
        check_headers(ROUTES["/files"], [(b"content-type", MP["content-type"].encode())]) == b"XyZ"
    )
    assert check_headers(ROUTES["/arrays"], []) is None


def test_document_errors_declares_the_shape():
    spec = {"paths": {"/files": {"post": {"responses": {200: {"description": "ok"},
            400: {"description": "Bad"}, 500: {"description": "ISE"}}}}}}  # fmt: skip
    out = document_errors(spec, ROUTES)
    responses = out["paths"]["/files"]["post"]["responses"]
    assert sorted(responses) == ["200", "400", "413", "415", "503"]
    assert out["components"]["schemas"]["Error"]["required"] == ["error", "reason"]
