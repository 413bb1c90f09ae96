"""Faults, each a test against a real ``bentoml serve`` (issue 20 §4): a worker killed under
load, a corrupted bundle, an upload store that cannot take the upload, clients that hang up
mid-upload. What a client sees in each case is a 200, a 4xx or a 503 with ``Retry-After`` and a
reason, never a 500, and the service serves again afterwards.

One task (lsbg) is served, so each server starts quickly; the gateway, predictor and monitor are
the same classes whatever the tasks.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("bentoml")
import httpx  # noqa: E402
from test_service import (  # noqa: E402
    _cmdline,
    _cube,
    _descendants,
    _metric,
    _post_files,
    _serve,
    _stop,
)

ROOT = Path(__file__).parents[1]
TARGET = "service.service:Skyguard"
ONE_TASK = {"SKYGUARD_TASKS": "lsbg", "SKYGUARD_CANARY_INTERVAL_S": "0"}


def _workers(pgid: int, name: str) -> list[int]:
    """The pids of the server's worker processes of service ``name`` (BentoML names each
    worker's command line after its service)."""
    return [p for p in _descendants(pgid) if name in _cmdline(p)]


def _gateway(pgid: int) -> int:
    """The gateway worker: the one that serves ``service.service:Skyguard`` itself."""
    pids = [p for p in _descendants(pgid)
            if "skyguard-predictor" not in (c := _cmdline(p)) and "skyguard-monitor" not in c
            and "--worker-id" in c]  # fmt: skip
    assert len(pids) == 1, [(p, _cmdline(p)) for p in _descendants(pgid)]
    return pids[0]


class _Load:
    """Requests of two lsbg cutouts, one after another, in a thread, until stopped: the status
    and body of every answer."""

    def __init__(self, url: str) -> None:
        self.url, self.answers, self._stop = url, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        body = _cube("lsbg")
        while not self._stop.is_set():
            try:
                r = _post_files(self.url, "lsbg", [body, body])
                self.answers.append((r.status_code, r.headers, r.text))
            except httpx.HTTPError as e:  # a transport error is a failure of the service too
                self.answers.append((0, {}, repr(e)))

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(90)


def _wait(what: str, ok, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not ok():
        assert time.time() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def faulty(bundles, tmp_path_factory):
    """A server of the lsbg task with its own upload directory (TMPDIR)."""
    tmp = tmp_path_factory.mktemp("faults")
    (tmp / "uploads").mkdir()
    env = {**ONE_TASK, "TMPDIR": str(tmp / "uploads")}
    proc, url = _serve(TARGET, ROOT, tmp / "server.log", env)
    url = type("Url", (str,), {})(url)
    url.pgid, url.uploads, url.log = proc.pid, tmp / "uploads", tmp / "server.log"
    yield url
    _stop(proc)


def test_monitor_killed_mid_load(faulty):
    """Predictions go on, their latents are counted as dropped, and a new monitor worker takes
    the latents again."""
    (monitor,) = _workers(faulty.pgid, "skyguard-monitor")
    dropped = _metric(faulty, "skyguard_latents_dropped_total", task="lsbg")
    with _Load(faulty) as load:
        _wait("requests under way", lambda: len(load.answers) >= 3)
        os.kill(monitor, signal.SIGKILL)
        n, killed_at = len(load.answers), time.time()
        _wait("requests answered after the kill", lambda: len(load.answers) >= n + 5)
    statuses = [s for s, _, _ in load.answers]
    assert statuses == [200] * len(statuses), [a for a in load.answers if a[0] != 200][:2]
    _wait("dropped latents counted",
          lambda: _metric(faulty, "skyguard_latents_dropped_total", task="lsbg") > dropped)  # fmt: skip
    _wait("a new monitor worker", lambda: _workers(faulty.pgid, "skyguard-monitor") not in ([], [monitor]))  # fmt: skip
    # the new monitor takes latents and answers its API (its windows start again, empty)
    sent = _metric(faulty, "skyguard_latents_sent_total", task="lsbg")

    def resumed() -> bool:
        assert _post_files(faulty, "lsbg", [_cube("lsbg")]).status_code == 200
        return _metric(faulty, "skyguard_latents_sent_total", task="lsbg") > sent

    _wait("latents sent to the new monitor", resumed, timeout=90)
    assert httpx.get(f"{faulty}/v1/drift", timeout=30).status_code == 200
    lost = _metric(faulty, "skyguard_latents_dropped_total", task="lsbg") - dropped
    print(
        f"monitor killed: {len(statuses)} requests all 200, {lost:.0f} latents counted dropped,"
        f" latents flowing again {time.time() - killed_at:.1f} s after the kill"
    )


def test_predictor_killed(faulty):
    """The predictor's worker killed, and every one BentoML starts in its place killed too, for
    6 s: no answer is a 500. BentoML's arbiter keeps the predictor's socket open, so a call
    mostly waits in its backlog for the next worker and is answered; one whose connection a kill
    cut twice is a 503 with Retry-After and why. Once a worker is let live, 200 again."""
    (first,) = _workers(faulty.pgid, "skyguard-predictor")
    killed = set()
    with _Load(faulty) as load:
        _wait("requests under way", lambda: len(load.answers) >= 2)
        n, t0 = len(load.answers), time.time()
        while time.time() - t0 < 6:
            for p in _workers(faulty.pgid, "skyguard-predictor"):
                os.kill(p, signal.SIGKILL)
                killed.add(p)
            time.sleep(0.1)
        down = len(load.answers)
        _wait("the predictor back", lambda: any(s == 200 for s, _, _ in load.answers[down:]), 120)
        back = time.time()
    answers = load.answers[n:]
    statuses = [s for s, _, _ in answers]
    assert set(statuses) <= {200, 503}, [a for a in answers if a[0] not in (200, 503)][:2]
    print(
        f"predictor killed for 6 s: statuses {statuses}, first 200 after the kills "
        f"{back - t0 - 6:.1f} s later"
    )
    for _, headers, text in [a for a in answers if a[0] == 503]:
        assert int(headers["retry-after"]) > 0
        assert "the predictor" in httpx.Response(503, text=text).json()["error"]
    assert first in killed and not set(_workers(faulty.pgid, "skyguard-predictor")) & killed


def test_clients_that_hang_up_mid_upload(faulty):
    """Twenty clients send half a multipart upload and close: no temporary file and no file
    descriptor is left behind, and the next request is answered."""
    gateway = _gateway(faulty.pgid)
    body = _cube("lsbg")
    boundary = "hangup0123456789"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"cutouts\"; "
            f"filename=\"c.fits\"\r\nContent-Type: application/fits\r\n\r\n").encode()  # fmt: skip
    total = len(head) + len(body) + len(boundary) + 8
    host, port = faulty.removeprefix("http://").split(":")

    def fds() -> int:
        return len(os.listdir(f"/proc/{gateway}/fd"))

    assert _post_files(faulty, "lsbg", [body]).status_code == 200  # warm: lazily opened files
    before_fds, before_files = fds(), sorted(faulty.uploads.rglob("*"))
    for _ in range(20):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(
                f"POST /lsbg HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data;"
                f" boundary={boundary}\r\nContent-Length: {total}\r\n\r\n".encode()  # fmt: skip
                + head
                + body[: len(body) // 2]
            )
            time.sleep(0.05)
    r = _post_files(faulty, "lsbg", [body])
    assert r.status_code == 200 and r.json()["n_answered"] == 1, r.text
    _wait("the gateway's files closed", lambda: fds() <= before_fds + 2, timeout=30)

    def left() -> list[Path]:  # new files but the sockets of restarted workers
        new = set(faulty.uploads.rglob("*")) - set(before_files)
        return sorted(p for p in new if "bentoml-uds-" not in str(p))

    try:
        _wait("the uploads' temporary files removed", lambda: not left(), timeout=30)
    except AssertionError:
        raise AssertionError(f"left behind: {left()}") from None


def test_corrupted_bundle_refuses_start(bundles, tmp_path):
    """A bundle whose model file was damaged on disk: ``bentoml serve`` does not become ready,
    and its log names the file and why."""
    from core.store import bundle_path

    bad = tmp_path / "bundle"
    shutil.copytree(bundle_path("lsbg"), bad)
    onnx = bad / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    onnx.write_bytes(bytes(data))
    log = tmp_path / "server.log"
    bentoml = Path(sys.executable).parent / "bentoml"
    env = {**os.environ, **ONE_TASK, "SKYGUARD_MODEL_LSBG": str(bad)}
    with open(log, "w") as f:
        proc = subprocess.Popen([str(bentoml), "serve", TARGET, "--port", "0"], cwd=ROOT,
                                env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not stop; log:\n{log.read_text()[-2000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    assert proc.returncode != 0
    text = log.read_text()
    assert f"cannot serve model '{bad}'" in text and "model.onnx: sha256" in text, text[-2000:]


def test_upload_store_full(bundles, tmp_path):
    """Uploads the server cannot write to its temporary directory (a file-size limit stands in
    for a full disk: EFBIG) are answered 503 with Retry-After and the reason, never 500; a
    request small enough to be kept in memory is still answered."""
    env = {**ONE_TASK, "SKYGUARD_MAX_UPLOAD_BYTES": str(32 << 20)}
    limit = 3 << 20  # bytes any file of the server may grow to (prometheus' files are 1 MiB)
    proc, url = _serve(TARGET, ROOT, tmp_path / "server.log", env,
                       wrap=["prlimit", f"--fsize={limit}", "--"])  # fmt: skip
    try:
        big = _cube("lsbg", size=1000)  # 12 MB: spooled to disk, over the limit
        assert len(big) > limit
        r = _post_files(url, "lsbg", [big])
        assert r.status_code == 503, (r.status_code, r.text[:300])
        assert "cannot store the upload" in r.json()["error"] and "EFBIG" in r.json()["error"]
        assert int(r.headers["retry-after"]) > 0
        r = _post_files(url, "lsbg", [_cube("lsbg")])
        assert r.status_code == 200 and r.json()["n_answered"] == 1, r.text
    finally:
        _stop(proc)


def test_predictor_failures_are_503_with_their_reason(bundles):
    """In process: each way a call to the predictor fails is an ``Unavailable`` (503) saying how,
    and the gateway checks the predictor's bundles again before its next request."""
    import asyncio
    from types import SimpleNamespace

    import aiohttp
    import numpy as np

    from service.errors import Unavailable
    from service.service import Skyguard

    class Failing:  # the predictor's client, failing as a dead, a slow or a broken worker does
        def __init__(self, error: Exception) -> None:
            self.error = error

        async def bundles(self) -> dict:
            raise self.error

        async def lsbg(self, rows: np.ndarray) -> np.ndarray:
            raise self.error

    gateway = Skyguard.inner()
    rows = np.zeros((1, 3 * 64 * 64), np.float32)
    for error, why in (
        (aiohttp.ClientConnectorError(SimpleNamespace(ssl=None, host="h", port=1), OSError(111, "refused")), "is unreachable"),
        (aiohttp.ServerDisconnectedError(), "is unreachable"),
        (TimeoutError(), "did not answer in time"),
        (RuntimeError("boom"), "failed (RuntimeError: boom)"),
    ):  # fmt: skip
        gateway.predictor = SimpleNamespace(to_async=Failing(error))
        gateway._agreed_at = -np.inf
        if not isinstance(error, RuntimeError):  # what _predict maps; any error, in the check
            with pytest.raises(Unavailable, match=re.escape(f"the predictor {why}")):
                asyncio.run(gateway._predict("lsbg", rows))
            assert gateway._agreed_at == -np.inf  # checked again before the next request
        with pytest.raises(Unavailable, match=re.escape(f"the predictor {why}") + ".*retry later"):
            asyncio.run(gateway._agree_with_predictor())


def test_two_quick_canary_requests_start_one_round(bundles):
    """In process: a second request to start canaries, made before the first round has begun,
    is told a round is running; once the round is over, a new one starts."""
    import asyncio

    from service.monitor import Monitor

    monitor = Monitor.inner()

    async def requests() -> list[dict]:
        first = await monitor.run_canaries(task="lsbg", attack="fgsm")
        second = await monitor.run_canaries(task="lsbg", attack="fgsm")  # the round not begun
        await monitor._requested
        third = await monitor.run_canaries(task="lsbg", attack="fgsm")
        monitor._requested.cancel()
        return [first, second, third]

    first, second, third = asyncio.run(requests())
    assert first["started"] and third["started"]
    assert second == {"started": False, "reason": "a canary round is running"}
    assert "fgsm" in monitor.canary_results["lsbg"]  # the one round ran


def test_upload_store_unwritable(bundles, tmp_path):
    """An upload directory the server may not write (TMPDIR on sysfs, which refuses new files
    even to root: EACCES) costs no request: Python's tempfile, which Starlette and BentoML spool
    uploads through, takes the next writable directory of its list (/tmp), so small and large
    uploads (spooled to disk above 1 MiB) are answered, never a 500. (A full disk is the 503 of
    ``test_upload_store_full``.)"""
    env = {**ONE_TASK, "TMPDIR": "/sys", "SKYGUARD_MAX_UPLOAD_BYTES": str(32 << 20)}
    proc, url = _serve(TARGET, ROOT, tmp_path / "server.log", env)
    try:
        with pytest.raises(OSError):  # the directory really is unwritable
            (Path("/sys") / "skyguard-probe").write_bytes(b"")
        r = _post_files(url, "lsbg", [_cube("lsbg"), _cube("lsbg", size=400)])
        assert r.status_code == 200, (r.status_code, r.text[:300])
        answers = r.json()["answers"]
        assert "label" in answers[0] and answers[1]["error"]["reason"] == "wrong_shape"
        assert len(_cube("lsbg", size=400)) > 1 << 20  # the second was spooled to disk
    finally:
        _stop(proc)
