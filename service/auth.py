"""Access: who may call the gateway (bearer tokens), and what an answer may show (no server paths).

**Bearer tokens.** With tokens configured (``SKYGUARD_API_TOKENS``, ``SKYGUARD_API_TOKENS_FILE``;
``service.config``) every request to the gateway needs ``Authorization: Bearer <token>``: the
prediction endpoints (``/morphology``, ``/lsbg``, ``/photoz`` and their ``_array`` variants),
everything under ``/v1`` and any route added later — the check is deny-by-default, on the path,
in one ASGI middleware (:class:`BearerAuth`) that BentoML puts in front of the whole gateway app.
Open without a token:

* health and metrics: ``/livez``, ``/readyz``, ``/healthz`` (probes) and ``/metrics`` (the
  Prometheus scrape carries no credentials);
* the published interface: ``/docs.json`` (the OpenAPI document; it declares the bearer scheme
  when tokens are on), ``/schema.json``, and the documentation page ``/`` with its static files.
  They describe the API and hold no data, and the page is how a new user finds how to call it;
* CORS pre-flight ``OPTIONS`` requests (browsers send them without credentials).

A request without a token, or with one that is not configured, gets 401 with
``WWW-Authenticate: Bearer`` (RFC 6750) and ``{"error": "..."}``, the body of BentoML's own
refusals. Tokens are compared as SHA-256 digests with ``hmac.compare_digest`` against every
configured token, with no early exit: the time taken tells neither which token nor how much of
one matched. A refusal is logged with the client's address, the method and path and why (none
or wrong), never with a token. No tokens configured: the API is open, which is logged once per
gateway worker at start.

The predictor and the monitor are not behind the middleware: ``bentoml serve`` binds them to
Unix sockets in a private temporary directory (TCP on 127.0.0.1 where BENTOML_NO_UDS is set),
so only the gateway's processes reach them, and in a deployment only the gateway's port (3000)
is published. Nothing that can reach them from outside the pod must be added.

**Paths.** ``/v1`` answers hold facts that name server files (a bundle's directory, its training
data's directories, the checkpoint it was exported from, an error message naming a socket).
:func:`hide_paths` shortens every absolute path in them to its last part (``…/<name>``), unless
``SKYGUARD_SHOW_PATHS=1``. A bundle's version (its directory's name) is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.responses import JSONResponse

log = logging.getLogger("skyguard.auth")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset(
    {"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json", "/"}
)
# BentoML's documentation page loads its scripts from one of these (which one depends on its UI)
OPEN_PREFIXES = ("/static_content/", "/assets/")
REALM = "skyguard"


def _digest(token: str) -> bytes:
    # equal-length digests: compare_digest's time then depends on neither token's length
    return hashlib.sha256(token.encode("utf-8")).digest()


def is_open(method: str, path: str) -> bool:
    """Whether ``method path`` is served without a token (module docstring)."""
    return method == "OPTIONS" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def bearer_token(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The token of the first ``Authorization: Bearer <token>`` header (scheme in any case),
    None without one."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            return token.strip()
    return None


class BearerAuth:
    """ASGI middleware: every request but the open ones (:func:`is_open`) needs one of
    ``tokens``; () lets everything through (the API is open).

    Added to a BentoML service with ``Service.add_asgi_middleware(BearerAuth, tokens=...)``;
    BentoML builds it once per worker as ``BearerAuth(app, tokens=...)``.
    """

    def __init__(self, app: ASGIApp, tokens: Sequence[str] = ()) -> None:
        self.app = app
        self._digests = tuple(_digest(t) for t in dict.fromkeys(tokens))
        if self._digests:
            print(f"skyguard: bearer-token authentication on ({len(self._digests)} "
                  "tokens configured)", flush=True)  # fmt: skip
        else:
            log.warning("skyguard: no API tokens configured (SKYGUARD_API_TOKENS, "
                        "SKYGUARD_API_TOKENS_FILE): the API is open to anyone who reaches it")  # fmt: skip

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is one of the configured tokens; every one is compared, always."""
        given = _digest(token)
        ok = False
        for ref in self._digests:
            ok |= hmac.compare_digest(given, ref)  # |=, not `or`: no early exit
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._digests:
            return await self.app(scope, receive, send)
        method = scope.get("method", "GET")
        if is_open(method, scope["path"]):
            return await self.app(scope, receive, send)
        token = bearer_token(scope.get("headers", ()))
        if token is not None and self.accepts(token):
            return await self.app(scope, receive, send)
        why = "no bearer token" if token is None else "a bearer token that is not configured"
        client = scope.get("client") or ("?", 0)
        # the token is never logged: a wrong one is often a right one with a typo
        log.warning(
            "refused %s %s from %s:%s: %s", method, scope["path"], client[0], client[1], why
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        challenge = f'Bearer realm="{REALM}"'
        if token is not None:
            challenge += ', error="invalid_token"'
        message = (
            "authentication required: send 'Authorization: Bearer <token>'"
            if token is None
            else "the bearer token is not valid"
        )
        response = JSONResponse(
            {"error": message}, status_code=401, headers={"WWW-Authenticate": challenge}
        )
        await response(scope, receive, send)


def document(spec: dict) -> dict:
    """The OpenAPI document ``spec`` with the bearer scheme declared and required by every
    operation that is not open (for clients, and Swagger UI's Authorize button)."""
    spec = dict(spec)
    components = dict(spec.get("components") or {})
    components["securitySchemes"] = {
        **(components.get("securitySchemes") or {}),
        "bearerAuth": {"type": "http", "scheme": "bearer"},
    }
    spec["components"] = components
    paths = {}
    for path, ops in (spec.get("paths") or {}).items():
        ops = dict(ops)
        for method, op in ops.items():
            if isinstance(op, dict) and not is_open(method.upper(), path):
                responses = {
                    **op.get("responses", {}),
                    "401": {"description": "no bearer token, or one that is not valid"},
                }
                ops[method] = {**op, "security": [{"bearerAuth": []}], "responses": responses}
        paths[path] = ops
    spec["paths"] = paths
    return spec


# An absolute POSIX path of two parts or more, alone or inside a message ("unix:/tmp/x/1.sock"):
# a "/" that does not follow a word character, "/" or "." (so not "km/s", "http://host/a/b",
# "./rel"), then parts without spaces, quotes or separators.
_PART = r"[^\s/'\"<>,;()\[\]{}|]+"
_ABS_PATH = re.compile(rf"(?<![\w/.~-])/(?:{_PART}/)+({_PART})")


def hide_paths(node: Any) -> Any:
    """A copy of a JSON-like ``node`` with every absolute path in its strings shortened to
    ``…/<last part>``; keys, numbers and other strings as they are."""
    if isinstance(node, str):
        return _ABS_PATH.sub(lambda m: f"…/{m.group(1)}", node)
    if isinstance(node, dict):
        return {k: hide_paths(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [hide_paths(v) for v in node]
    return node
