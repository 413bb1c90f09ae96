"""Access control (``service.auth``): bearer tokens on every prediction endpoint and on /v1,
health and metrics open, tokens never logged, and no server paths in what /v1 shows.

In process: the middleware and the path hiding. Then one real ``bentoml serve`` with tokens from
the variable and from a file, tried with no token, a wrong token and a right token on every
operation its own OpenAPI document lists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bentoml")
import httpx  # noqa: E402
from test_service import _cube, _serve, _stop  # noqa: E402

from service.auth import BearerAuth, bearer_token, document, hide_paths, is_open  # noqa: E402

TOKEN_ENV = "tok-from-the-variable-0123456789"
TOKEN_FILE = "tok+from/the~file_ABCDEFGHIJ=="
WRONG = "tok-from-the-variable-0123456780"  # one character off


# -- in process ----------------------------------------------------------------------------------


async def _inner(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _call(app: BearerAuth, path: str, headers=(), method: str = "GET") -> tuple[int, dict, bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers),
             "client": ("10.1.2.3", 5555)}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    head = {k.decode().lower(): v.decode() for k, v in sent[0].get("headers", [])}
    return sent[0]["status"], head, b"".join(m.get("body", b"") for m in sent[1:])


def test_middleware_checks_every_closed_path(caplog):
    app = BearerAuth(_inner, tokens=(TOKEN_ENV, TOKEN_FILE))
    good = [(b"authorization", f"Bearer {TOKEN_FILE}".encode())]
    for path in (
        "/lsbg",
        "/photoz_array",
        "/v1/models",
        "/v1/openapi.json",
        "/a-route-added-later",
    ):
        with caplog.at_level(logging.WARNING, "skyguard.auth"):
            status, head, body = _call(app, path)
            assert status == 401 and b"authentication required" in body, path
            assert head["www-authenticate"] == 'Bearer realm="skyguard"'
            status, head, body = _call(app, path, [(b"authorization", f"Bearer {WRONG}".encode())])
            assert status == 401 and b"not valid" in body, path
            assert 'error="invalid_token"' in head["www-authenticate"]
        assert _call(app, path, good)[0] == 200, path
        # the scheme is case-insensitive (RFC 7235); another scheme is no token
        assert _call(app, path, [(b"authorization", f"bearer {TOKEN_ENV}".encode())])[0] == 200
        assert _call(app, path, [(b"authorization", f"Basic {TOKEN_ENV}".encode())])[0] == 401
    for path in ("/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/"):
        assert _call(app, path)[0] == 200, path
    assert _call(app, "/lsbg", method="OPTIONS")[0] == 200  # CORS pre-flight
    # refusals are logged with the client and why, never with the token
    assert "10.1.2.3" in caplog.text and "not configured" in caplog.text
    assert WRONG not in caplog.text and TOKEN_ENV not in caplog.text


def test_no_tokens_means_open():
    app = BearerAuth(_inner, tokens=())
    assert not app.enabled and _call(app, "/lsbg")[0] == 200


def test_bearer_token_parsing():
    assert bearer_token([(b"Authorization", b"Bearer  abc ")]) == "abc"
    assert bearer_token([(b"authorization", b"Bearer ")]) is None
    assert bearer_token([(b"x-other", b"Bearer abc")]) is None
    assert is_open("GET", "/metrics") and not is_open("GET", "/v1/models")


def test_openapi_declares_the_scheme_on_closed_operations_only():
    spec = {"paths": {"/lsbg": {"post": {"responses": {}}}, "/livez": {"get": {"responses": {}}}}}
    out = document(spec)
    assert out["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert out["paths"]["/lsbg"]["post"]["security"] == [{"bearerAuth": []}]
    assert "401" in out["paths"]["/lsbg"]["post"]["responses"]
    assert "security" not in out["paths"]["/livez"]["get"]


def test_hide_paths_keeps_names_and_other_strings():
    node = {
        "path": "/home/x/bentoml/models/skyguard-lsbg/abc123",
        "error": "cannot reach unix:/tmp/tmpq1/predictor.sock now",
        "units": "km/s",
        "url": "http://host:3000/v1/models",
        "relative": "./out/report.json",
        "n": 3,
        "list": ["/data/mocks/dr10", "g,r,z"],
    }
    out = hide_paths(node)
    assert out["path"] == "…/abc123"
    assert out["error"] == "cannot reach unix:…/predictor.sock now"
    assert out["units"] == "km/s" and out["url"] == node["url"]
    assert out["relative"] == "./out/report.json" and out["n"] == 3
    assert out["list"] == ["…/dr10", "g,r,z"]


# -- a real server with tokens ------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(bundles, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    tokens = tmp / "tokens"
    tokens.write_text(f"# skyguard API tokens\n\n{TOKEN_FILE}\n", "utf-8")
    log = tmp / "server.log"
    env = {"SKYGUARD_API_TOKENS": TOKEN_ENV, "SKYGUARD_API_TOKENS_FILE": str(tokens)}
    proc, url = _serve("service.service:Skyguard", Path(__file__).parents[1], log, env)
    yield url, log
    _stop(proc)


def _requests(url: str) -> list[tuple[str, str, dict]]:
    """One request per operation of the server's own OpenAPI document (method, path, httpx
    keyword arguments): a real FITS file or array where the operation takes one."""
    spec = httpx.get(f"{url}/docs.json", timeout=10).json()
    out = []
    for path, ops in spec["paths"].items():
        for method in ops:
            kw: dict = {}
            task = path.strip("/").removesuffix("_array")
            if method == "post" and path.endswith("_array"):
                arr = np.frombuffer(_cube(task)[2880:], ">f4")  # any numbers: shape refused later
                kw["json"] = {"images": arr[:4].tolist()}
            elif method == "post":
                kw["files"] = [("cutouts", ("c.fits", _cube(task), "application/fits"))]
                if task == "photoz":
                    kw["data"] = {"ebv": "0.02"}
            out.append((method.upper(), path, kw))
    return out


def test_every_operation_needs_a_right_token(guarded):
    url, log = guarded
    ops = _requests(url)
    closed = [(m, p, kw) for m, p, kw in ops if not is_open(m, p)]
    kinds = {p for _, p, _ in closed}
    assert {"/lsbg", "/morphology_array", "/v1/models", "/v1/drift"} <= kinds, kinds
    for method, path, kw in closed:
        r = httpx.request(method, f"{url}{path}", timeout=60, **kw)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
        assert "authentication required" in r.json()["error"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = httpx.request(method, f"{url}{path}", headers={"Authorization": f"Bearer {WRONG}"},
                          timeout=60, **kw)  # fmt: skip
        assert r.status_code == 401 and "not valid" in r.json()["error"], path
        for token in (TOKEN_ENV, TOKEN_FILE):
            r = httpx.request(method, f"{url}{path}", timeout=60,
                              headers={"Authorization": f"Bearer {token}"}, **kw)  # fmt: skip
            assert r.status_code != 401 and r.status_code < 500, (path, r.status_code, r.text)
    # a right token gets the real answers
    auth = {"Authorization": f"Bearer {TOKEN_FILE}"}
    r = httpx.post(f"{url}/lsbg", headers=auth, timeout=60,
                   files=[("cutouts", ("c.fits", _cube("lsbg"), "application/fits"))])  # fmt: skip
    assert r.status_code == 200 and r.json()["n_answered"] == 1, r.text
    # open: probes, the scrape and the published interface, which declares the scheme
    for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
        assert httpx.get(f"{url}{path}", timeout=10).status_code == 200, path
    spec = httpx.get(f"{url}/docs.json", timeout=10).json()
    assert spec["paths"]["/lsbg"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"].get("/livez", {}).get("get", {})
    text = log.read_text()
    assert "refused" in text  # the refusals were logged ...
    assert all(t not in text for t in (TOKEN_ENV, TOKEN_FILE, WRONG))  # ... never a token


def test_v1_shows_no_server_paths(guarded):
    url, _ = guarded
    auth = {"Authorization": f"Bearer {TOKEN_ENV}"}
    store = os.environ["BENTOML_HOME"]  # where the served bundles are (tests/conftest.py)
    for route in ("/v1/models", "/v1/drift", "/v1/robustness"):
        r = httpx.get(f"{url}{route}", headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        assert _paths(r.json()) == [] and store not in r.text, route
    # the bundle directories are named by their last part, the bundle's version
    assert "…/" in httpx.get(f"{url}/v1/models", headers=auth, timeout=30).text


def _paths(node) -> list[str]:
    """The strings of a JSON answer that hold an absolute path of two parts or more."""
    if isinstance(node, str):
        return [node] if re.search(r"(?<![\w/.~:-])/[^\s/]+/", node) else []
    if isinstance(node, dict):
        return [p for v in node.values() for p in _paths(v)]
    if isinstance(node, list):
        return [p for v in node for p in _paths(v)]
    return []
