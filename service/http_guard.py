"""The gateway's one request-parsing layer, and one shape for every error it answers.

Two ASGI middlewares of the gateway (``service.service``), written against plain ASGI so that they
can be tested without BentoML:

* `RequestGuard` — in front of every API route (``POST /<task>``, ``POST /<task>_array``), before
  BentoML parses anything. What each route takes comes from the service's own API specs (the
  same facts its OpenAPI document is made of), so a route added later is guarded too:

  - the media type must be the route's own (``multipart/form-data`` for the FITS routes,
    ``application/json`` for the array routes; a request without ``Content-Type`` is JSON, as
    BentoML takes it): else **415** ``unsupported_media_type``;
  - ``Content-Encoding`` other than ``identity``: **415** ``unsupported_encoding`` (bodies are
    never decompressed: the size limits could not be checked first);
  - multipart without a usable ``boundary`` parameter (RFC 2046: 1–70 characters): **400**
    ``bad_multipart``;
  - the multipart body itself is checked as it streams in, with the parser Starlette (and so
    BentoML) uses, so that nothing BentoML's own parsing would fail on reaches it: a body that
    does not parse, or ends before its closing boundary, or a part without a name: **400**
    ``bad_multipart``; a file field (``cutouts``) sent as a text part instead of a file part
    (no ``filename``): **400** ``text_part`` — BentoML would take the text for a URL to download,
    or fail; a text field over Starlette's 1 MiB, or more than its 1000 files or fields: **413**
    ``too_large``.

  A request refused on its headers is answered at once, its body unread; one refused on its
  body is drained (the client is still sending it), BentoML's parsing is stopped (it is told the
  client went away, so no handler runs), and the refusal replaces its answer.
* `UniformErrors` — the outermost middleware: every answer with status >= 400, whoever made it
  (BentoML's validation, a handler's refusal, the bearer check, a 404 or 405 from routing, a
  503), leaves as ``application/json`` ``{"error": <message>, "reason": <code>}``
  (`ERROR_SCHEMA`): BentoML's own bodies are a one-element list for its 4xx, an object with a
  list ``detail`` for validation errors and plain text for routing errors.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

log = logging.getLogger("skyguard.service")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: the body of every error answer (the OpenAPI document's ``Error`` schema)
ERROR_SCHEMA = {
    "type": "object",
    "title": "Error",
    "required": ["error", "reason"],
    "properties": {
        "error": {"type": "string", "title": "What was refused and why, for people"},
        "reason": {"type": "string", "title": "A code for programs, e.g. bad_fits, text_part"},
    },
}
#: the reason of an error answer that names none itself (``[reason] ...`` messages do), by status
STATUS_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "bad_request",
    500: "internal_error",
    503: "unavailable",
}
#: Starlette's limits on a multipart body (its MultiPartParser defaults, which BentoML keeps)
MAX_TEXT_PART = 1024 * 1024
MAX_PARTS = 1000
#: RFC 2046 §5.1.1: a boundary is 1–70 of these characters, not ending in a space
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_REASON_PREFIX = re.compile(r"\[([a-z_]+)\] ")


@dataclass(frozen=True)
class Route:
    """What one API route takes: its media type and the fields that must be file parts."""

    media_type: str
    file_fields: frozenset[str] = frozenset()


def api_routes(service: Any) -> dict[str, Route]:
    """``{path: Route}`` of a BentoML service's APIs, from their input specs."""
    return {
        api.route: Route(
            api.input_spec.mime_type(),
            frozenset(getattr(api.input_spec, "multipart_fields", None) or ()),
        )
        for api in service.apis.values()
    }


class Refusal(Exception):
    """A request refused before BentoML parses it: status, reason code, message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def error_body(status: int, raw: bytes) -> dict[str, str]:
    """``{"error", "reason"}`` from any error body: JSON (an object, BentoML's one-element list,
    pydantic's ``detail`` list, FastAPI's ``detail``) or text."""
    try:
        doc: Any = json.loads(raw) if raw.strip() else None
    except ValueError:
        doc = raw.decode("utf-8", "replace").strip()
    if isinstance(doc, list) and len(doc) == 1:
        doc = doc[0]
    reason = None
    if isinstance(doc, dict):
        reason = doc.get("reason") if isinstance(doc.get("reason"), str) else None
        text = doc.get("error") if isinstance(doc.get("error"), str) else None
        detail = doc.get("detail")
        if detail not in (None, "", []):
            detail = _detail_text(detail)
            text = f"{text}: {detail}" if text else detail
        message = text or json.dumps(doc, default=str)
    elif isinstance(doc, str) and doc:
        message = doc
    elif doc is None:
        message = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    else:
        message = json.dumps(doc, default=str)
    if reason is None:
        m = _REASON_PREFIX.match(message)
        reason = (
            m.group(1)
            if m
            else STATUS_REASONS.get(status, "error" if status < 500 else "internal_error")
        )
    return {"error": message, "reason": reason}


def _detail_text(detail: Any) -> str:
    """pydantic's error list (``[{"loc": [...], "msg": ...}]``) as one line; anything else as
    text."""
    if isinstance(detail, list) and all(isinstance(d, dict) for d in detail):
        parts = []
        for d in detail:
            loc = ".".join(str(p) for p in d.get("loc", ()) if p not in ("body",))
            parts.append(f"{loc}: {d.get('msg', d)}" if loc else str(d.get("msg", d)))
        return "; ".join(parts)
    return detail if isinstance(detail, str) else json.dumps(detail, default=str)


async def answer_json(send: Send, status: int, body: dict, headers: list | None = None) -> None:
    """Send a whole JSON answer (``body``) with ``status`` and any extra ``headers``."""
    data = json.dumps(body, ensure_ascii=False).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()), *(headers or [])],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": data})


class UniformErrors:
    """ASGI middleware: every answer with status >= 400 as ``{"error", "reason"}`` JSON (module
    docstring). Other answers pass untouched, streamed as they come."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: Message | None = None
        chunks: list[bytes] = []

        async def amend(message: Message) -> None:
            nonlocal held
            kind = message["type"]
            if kind == "http.response.start" and message["status"] >= 400:
                held = message
                return
            if kind == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                status = held["status"]
                keep = [(k, v) for k, v in held.get("headers", [])
                        if k.lower() not in (b"content-type", b"content-length")]  # fmt: skip
                start, held = held, None
                data = json.dumps(error_body(status, b"".join(chunks)), ensure_ascii=False).encode()
                keep += [(b"content-type", b"application/json"),
                         (b"content-length", str(len(data)).encode())]  # fmt: skip
                await send({**start, "headers": keep})
                await send({"type": "http.response.body", "body": data})
                return
            await send(message)

        await self.app(scope, receive, amend)


# the refusal of the request being served, once its body is refused: BentoML logs the parsing it
# was made to abandon as an exception; ``_Quiet`` drops that record (one INFO line says why)
_REFUSED: contextvars.ContextVar[list[Refusal]] = contextvars.ContextVar("refused")


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _REFUSED.get([])


class RequestGuard:
    """ASGI middleware: the checks of the module docstring on every API route in ``routes``
    (``api_routes``); anything else passes untouched."""

    def __init__(self, app, routes: Mapping[str, Route]) -> None:
        self.app, self.routes = app, dict(routes)
        # here, not at import: this runs in the worker, after BentoML has set up its logging
        http_log = logging.getLogger("bentoml._internal.server.http_app")
        if not any(isinstance(f, _Quiet) for f in http_log.filters):
            http_log.addFilter(_Quiet())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        try:
            boundary = check_headers(route, scope.get("headers", []))
        except Refusal as r:
            return await self._refuse(scope, send, r)
        if boundary is None:
            return await self.app(scope, receive, send)
        body = MultipartCheck(boundary, route.file_fields)
        refused: list[Refusal] = []
        token = _REFUSED.set(refused)

        async def checked() -> Message:
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] != "http.request":
                return message
            try:
                body.feed(message.get("body", b""))
                if not message.get("more_body"):
                    body.end()
            except Refusal as r:
                refused.append(r)
                while message["type"] == "http.request" and message.get("more_body"):
                    message = await receive()  # the rest of the body, unread
                return {"type": "http.disconnect"}
            return message

        answered = False

        async def instead(message: Message) -> None:
            nonlocal answered
            if not refused:
                return await send(message)
            if message["type"] == "http.response.start" and not answered:
                answered = True
                await self._refuse(scope, send, refused[0])
            # BentoML's answer to the abandoned parsing is dropped

        try:
            await self.app(scope, checked, instead)
        except Exception:  # the app let the abandoned parsing's error out (BentoML answers it)
            if not refused:
                raise
        finally:
            _REFUSED.reset(token)
        if refused and not answered:
            await self._refuse(scope, send, refused[0])

    @staticmethod
    async def _refuse(scope: Scope, send: Send, r: Refusal) -> None:
        client = scope.get("client") or ("?", 0)
        log.info("refused %s %s from %s: %d %s: %s", scope.get("method"), scope.get("path"),
                 client[0], r.status, r.reason, r.message)  # fmt: skip
        await answer_json(send, r.status, {"error": r.message, "reason": r.reason})


def find_header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The value of the first header ``name`` (lower-case), or None."""
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def check_headers(route: Route, headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The multipart boundary of a request to ``route`` (None for a JSON route), or `Refusal`."""
    encoding = (find_header(headers, b"content-encoding") or b"").strip().lower()
    if encoding not in (b"", b"identity"):
        raise Refusal(415, "unsupported_encoding",
                      f"Content-Encoding {encoding.decode('latin-1')!r} is not accepted; send the "
                      "body as it is (FITS files may be tile-compressed inside)")  # fmt: skip
    raw = find_header(headers, b"content-type")
    media, params = parse_options_header(raw if raw is not None else b"application/json")
    media_type = media.decode("latin-1").strip().lower()
    if media_type != route.media_type:
        what = (
            f"multipart/form-data with each cutout a file part named {sorted(route.file_fields)[0]}"
            if route.file_fields
            else route.media_type
        )
        got = repr(raw.decode("latin-1")[:100]) if raw is not None else "none"
        raise Refusal(415, "unsupported_media_type",
                      f"this route takes {what}; the request's Content-Type is {got}")  # fmt: skip
    if media_type != "multipart/form-data":
        return None
    boundary = params.get(b"boundary")
    if not boundary or not _BOUNDARY.fullmatch(boundary):
        shown = "none" if boundary is None else repr(boundary.decode("latin-1")[:100])
        raise Refusal(400, "bad_multipart",
                      f"multipart/form-data needs a boundary parameter of 1-70 characters "
                      f"(RFC 2046); got {shown}")  # fmt: skip
    return boundary


class MultipartCheck:
    """A multipart body checked as it streams (module docstring): ``feed`` each chunk, ``end``
    after the last; either raises `Refusal`. Part data is looked at only to count text parts'
    sizes; nothing is stored."""

    def __init__(self, boundary: bytes, file_fields: frozenset[str]) -> None:
        self.file_fields = file_fields
        self.parts = 0
        self._name, self._value = b"", b""
        self._disposition: bytes | None = None
        self._text: str | None = None  # the name of the text part being read, if any
        self._text_size = 0
        self._refusal: Refusal | None = None
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._add("_name", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
        })  # fmt: skip

    def _add(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def _begin(self) -> None:
        self._disposition, self._text, self._text_size = None, None, 0

    def _header_end(self) -> None:
        if self._name.strip().lower() == b"content-disposition":
            self._disposition = self._value
        self._name, self._value = b"", b""

    def _headers_finished(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise self._stop(413, "too_large", f"more than {MAX_PARTS} parts in one request")
        _, options = parse_options_header(self._disposition or b"")
        name = options.get(b"name")
        if name is None:
            raise self._stop(400, "bad_multipart",
                             f"part {self.parts} has no Content-Disposition name; expected "
                             "form-data; name=\"...\"")  # fmt: skip
        field = name.decode("utf-8", "replace")
        if b"filename" not in options:
            if field in self.file_fields:
                raise self._stop(400, "text_part",
                                 f"part {self.parts} ({field}) is a text field; each of "
                                 f"{field} must be a file part (Content-Disposition with a "
                                 "filename), holding the FITS file's bytes")  # fmt: skip
            self._text = field

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._text is not None:
            self._text_size += end - start
            if self._text_size > MAX_TEXT_PART:
                raise self._stop(413, "too_large",
                                 f"text field {self._text} is over {MAX_TEXT_PART} bytes")  # fmt: skip

    def _stop(self, status: int, reason: str, message: str) -> Refusal:
        self._refusal = Refusal(status, reason, message)
        return self._refusal

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        try:
            self.parser.write(chunk)
        except Refusal:
            raise
        except FormParserError as e:
            if self._refusal is not None:  # raised in a callback, wrapped by the parser
                raise self._refusal from None
            raise Refusal(400, "bad_multipart", f"the multipart body does not parse: {e}") from None

    def end(self) -> None:
        if self.parser.state != MultipartState.END:
            raise Refusal(400, "bad_multipart",
                          "the multipart body ends before its closing boundary "
                          f"(--boundary--); {self.parts} part(s) begun")  # fmt: skip


#: the error answers every API operation can give, for the OpenAPI document
ERROR_RESPONSES = {
    "400": "the request cannot be served: not parseable, a field that does not validate, or "
    "every cutout refused (each with its reason)",
    "413": "too large: a file over the byte limit, too many cutouts, an image declaring too "
    "many pixels, a text field over 1 MiB",
    "415": "a Content-Type other than the route's, or a Content-Encoding",
    "503": "the service cannot answer now (predictor down or overloaded); Retry-After says "
    "when to try again",
}


def document_errors(spec: dict, routes: Mapping[str, Route]) -> dict:
    """The OpenAPI document ``spec`` with the error answers of every API operation in ``routes``
    declared with `ERROR_SCHEMA` (BentoML declares 400, 404 and 500 with bodies it does not
    send: a 500 is a fault, never an answer)."""
    spec = dict(spec)
    components = dict(spec.get("components") or {})
    schemas = {**(components.get("schemas") or {}), "Error": ERROR_SCHEMA}
    components["schemas"] = schemas
    spec["components"] = components
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    paths = dict(spec.get("paths") or {})
    for path in routes:
        ops = dict(paths.get(path) or {})
        if isinstance(ops.get("post"), dict):
            op = ops["post"]
            responses = {str(k): v for k, v in op.get("responses", {}).items()
                         if str(k) not in ("400", "404", "500")}  # fmt: skip
            for status, text in ERROR_RESPONSES.items():
                responses[status] = {"description": text, "content": body}
            ops["post"] = {**op, "responses": responses}
            paths[path] = ops
    spec["paths"] = paths
    return spec
