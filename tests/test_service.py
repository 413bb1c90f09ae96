"""The service at BentoML's three test levels: the classes in process, a running server
(``bentoml serve``) sent good and hostile requests, and the built Bento served.

The bundles are tiny (one quick epoch on 40-object mocks): these tests check the plumbing, the
contracts and the refusals, not the science.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

pytest.importorskip("bentoml")
import httpx  # noqa: E402

BANDS = {
    "morphology": ("g", "r", "i"),
    "lsbg": ("g", "r", "z"),
    "photoz": ("u", "g", "r", "i", "z"),
}
SIZE = {"morphology": 100, "lsbg": 64, "photoz": 64}
SERVER_ENV = {
    "SKYGUARD_MAX_CUTOUTS": "8",
    "SKYGUARD_MAX_UPLOAD_BYTES": "1000000",
    "SKYGUARD_MONITOR_TIMEOUT_S": "1",
}


def _cube(task: str, *, bands=None, size=None, value=None, header=None, rng=None) -> bytes:
    """A FITS cube of sky-like noise plus a blob, in memory."""
    rng = rng or np.random.default_rng(0)
    bands = bands or BANDS[task]
    n = size or SIZE[task]
    yy, xx = np.mgrid[:n, :n] - n / 2
    img = 50 * rng.standard_normal((len(bands), n, n)) + 3000 * np.exp(-np.hypot(xx, yy) / 5)
    img = img.astype(np.float32)
    if value is not None:
        img[0, 3, 3] = value
    hdu = fits.PrimaryHDU(img)
    hdu.header["BANDS"] = ",".join(bands)
    hdu.header["OBJECT"] = f"{task}-test"
    if task == "photoz":
        hdu.header["EBV"] = 0.03
    for k, v in (header or {}).items():
        hdu.header[k] = v
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


def _table() -> bytes:
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="flux", format="E", array=np.arange(5.0))])]).writeto(buf)  # fmt: skip
    return buf.getvalue()


def _huge_header() -> bytes:
    h = fits.Header()
    h["SIMPLE"], h["BITPIX"], h["NAXIS"] = True, -32, 3
    h["NAXIS1"], h["NAXIS2"], h["NAXIS3"] = 100000, 100000, 3
    return h.tostring().encode().ljust(2880 * ((len(h.tostring()) // 2880) + 1), b" ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def _serve(target: str, cwd: Path, log: Path, extra_env: dict | None = None, wrap=()):
    """``bentoml serve target`` on a free port, ready; ``wrap``: a command to run it under
    (e.g. ``prlimit --fsize=...``)."""
    port = _free_port()
    env = {**os.environ, **SERVER_ENV, **(extra_env or {})}
    bentoml = Path(sys.executable).parent / "bentoml"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [*wrap, str(bentoml), "serve", target, "--port", str(port), "--host", "127.0.0.1"],
            cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
    except Exception:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        raise RuntimeError(f"server did not start; log:\n{log.read_text()[-3000:]}") from None
    return proc, url


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


@pytest.fixture(scope="module")
def server(bundles, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    proc, url = _serve("service.service:Skyguard", Path(__file__).parents[1], log)
    yield _Url(url, proc.pid)
    _stop(proc)


class _Url(str):
    """The server's base URL, knowing its process group (to find its worker processes)."""

    def __new__(cls, url: str, pgid: int) -> _Url:
        obj = super().__new__(cls, url)
        obj.pgid = pgid
        return obj


def _post_files(url: str, route: str, files: list[bytes], data: dict | None = None):
    parts = [("cutouts", (f"c{k}.fits", b, "application/fits")) for k, b in enumerate(files)]
    return httpx.post(f"{url}/{route}", files=parts, data=data or {}, timeout=60)


# -- level 1: in process ------------------------------------------------------------------------


def test_runtime_in_process(bundles):
    """The gateway's spec and the predictor's model, called directly: FITS in, answer out."""
    from service.fits_input import read_fits
    from service.runtime import TaskModel, TaskSpec

    for task in BANDS:
        spec = TaskSpec.from_ref(task, f"skyguard-{task}:latest")
        model = TaskModel(spec, "auto")
        assert model.provider == "CPUExecutionProvider"
        cut = read_fits(_cube(task), "c.fits", spec.bands, spec.shape)
        rows = spec.pack([cut, cut], [0.03, 0.03] if task == "photoz" else None)
        out, latent = model.infer(rows)
        assert latent.shape == (2, spec.info["latent_dim"])
        a = spec.answer(out[0], cut, with_pdf=True)
        assert a["id"] == f"{task}-test" and 0 <= a["ood_score"] <= 100
        assert a["model"]["recipe"] == "regular"
        if task == "photoz":
            assert 0 <= a["z_mode"] <= 0.4 and len(a["pdf"]) == 180 and 0 <= a["odds"] <= 1
        else:
            assert a["label"] in spec.bundle.classes
            assert sum(a["probabilities"].values()) == pytest.approx(1, abs=1e-4)


def test_bad_bundle_stops_start(bundles, tmp_path):
    """A bundle that fails its checks stops start-up with a message naming it."""
    import shutil

    from core.bundle import BundleError
    from core.store import bundle_path
    from service.runtime import TaskSpec

    bad = tmp_path / "bad"
    shutil.copytree(bundle_path("lsbg"), bad)
    (bad / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(BundleError, match=f"cannot serve model '{bad}'.*model.onnx: sha256"):
        TaskSpec.from_ref("lsbg", str(bad))
    with pytest.raises(BundleError, match="is a morphology bundle, configured for lsbg"):
        TaskSpec.from_ref("lsbg", "skyguard-morphology:latest")


# -- level 2: a running server ------------------------------------------------------------------


@pytest.mark.parametrize("task", list(BANDS))
def test_good_requests(server, task):
    r = _post_files(server, task, [_cube(task), _cube(task, rng=np.random.default_rng(1))])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_answered"] == 2 and body["n_refused"] == 0
    for a in body["answers"]:
        assert a["id"] == f"{task}-test" and a["model"]["name"] == f"skyguard-{task}"
        assert 0 <= a["ood_score"] <= 100
    arr = np.stack([fits.getdata(io.BytesIO(_cube(task)))] * 2).tolist()
    payload = {"images": arr}
    if task == "photoz":
        payload.update(ebv=[0.03, 0.05], pdf=True)
    r = httpx.post(f"{server}/{task}_array", json=payload, timeout=60)
    assert r.status_code == 200, r.text
    # the same pixels as an array: the same answer as the FITS file gave (first file, same E(B−V))
    by_file, by_array = body["answers"][0], r.json()["answers"][0]
    if task == "photoz":
        for k in ("z_mean", "z_median", "z_mode", "z_sigma", "odds"):
            assert by_array[k] == pytest.approx(by_file[k], rel=1e-5, abs=1e-6), k
        assert len(by_array["pdf"]) == 180 and sum(by_array["pdf"]) == pytest.approx(1, abs=1e-3)
    else:
        assert by_array["label"] == by_file["label"]
        assert by_array["probabilities"] == pytest.approx(by_file["probabilities"], abs=1e-6)
    assert by_array["ood_score"] == pytest.approx(by_file["ood_score"], abs=1e-6)


# (route, files or raw request, expected status, text the message must contain)
HOSTILE = [
    ("morphology", [_cube("morphology")[:3000]], 400, "bad_fits"),
    ("morphology", [b"SIMPLE  =    T" + b"\x00" * 100], 400, "bad_fits"),
    ("morphology", [_cube("morphology", bands=("g", "r", "z"))], 400, "missing i"),
    ("morphology", [_cube("morphology", size=64)], 400, "expected shape 3×100×100"),
    ("morphology", [_cube("morphology", value=np.nan)], 400, "non_finite"),
    ("morphology", [_cube("morphology", value=np.inf)], 400, "non_finite"),
    ("lsbg", [_table()], 400, "not_image"),
    ("lsbg", [_huge_header()], 413, "too_large"),
    ("lsbg", [_cube("lsbg")] * 9, 413, "too_many"),
    ("lsbg", [_cube("lsbg", size=400)], 413, "too_large"),
    ("photoz", [_cube("photoz", header={"EBV": -1.0})], 400, "EBV"),
    ("photoz", [b""], 400, "empty"),
]


@pytest.mark.parametrize(("route", "files", "status", "text"), HOSTILE)
def test_hostile_files(server, route, files, status, text):
    r = _post_files(server, route, files)
    assert r.status_code == status, r.text
    assert text in r.text
    assert httpx.get(f"{server}/readyz").status_code == 200


_NO_BOUNDARY = {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}


@pytest.mark.parametrize(
    ("route", "kwargs", "status", "reason"),
    [
        (
            "morphology",
            {"content": b"plain text", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("morphology", {"content": b""}, 415, "unsupported_media_type"),
        ("morphology", {"json": {"cutouts": "x"}}, 415, "unsupported_media_type"),
        (
            "morphology",
            {"data": {"cutouts": "http://example.org/a.fits"}},
            415,
            "unsupported_media_type",
        ),
        ("morphology", {"files": {"cutouts": (None, b"/etc/hostname")}}, 400, "text_part"),
        (
            "lsbg",
            {"files": [("cutouts", ("a.fits", _cube("lsbg"))), ("cutouts", (None, b"x"))]},
            400,
            "text_part",
        ),
        ("photoz", _NO_BOUNDARY, 400, "bad_multipart"),
        ("photoz_array", _NO_BOUNDARY, 415, "unsupported_media_type"),
        (
            "lsbg_array",
            {"json": {}, "headers": {"content-encoding": "gzip"}},
            415,
            "unsupported_encoding",
        ),
        ("morphology_array", {"json": {"images": [[1, 2], [3, 4]]}}, 400, "wrong_shape"),
        ("morphology_array", {"json": {"images": "not an array"}}, 400, "bad_dtype"),
        (
            "photoz_array",
            {"json": {"images": np.zeros((1, 5, 64, 64)).tolist()}},
            400,
            "bad_request",
        ),
        # declared on the API (pydantic Fields), refused before the method runs
        (
            "lsbg_array",
            {"json": {"images": np.zeros((1, 3, 64, 64)).tolist(), "ids": ["x" * 257]}},
            400,
            "bad_request",
        ),
        (
            "lsbg_array",
            {"json": {"images": [[[[0.0]]]], "ids": [str(k) for k in range(9)]}},  # limit 8
            400,
            "bad_request",
        ),
    ],
)
def test_hostile_requests(server, route, kwargs, status, reason):
    """Refused with its status, in the one error shape ``{"error", "reason"}`` (JSON)."""
    r = httpx.post(f"{server}/{route}", timeout=60, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "reason"} and body["reason"] == reason, body
    assert body["error"]


def test_mixed_batch_answers_the_good_ones(server):
    files = [_cube("morphology"), _cube("morphology", value=np.nan), _table(), _cube("morphology")]
    r = _post_files(server, "morphology", files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_answered"] == 2 and body["n_refused"] == 2
    kinds = [("label" in a, a.get("error", {}).get("reason")) for a in body["answers"]]
    assert kinds == [(True, None), (False, "non_finite"), (False, "not_image"), (True, None)]
    repaired = _post_files(server, "morphology", files[:2], {"repair": "median"}).json()
    assert repaired["n_answered"] == 2 and repaired["answers"][1]["repaired_pixels"] == 1


def test_photoz_needs_ebv_per_cutout(server):
    no_ebv = _cube("photoz", header={"EBV": 0.0})
    h = fits.open(io.BytesIO(no_ebv))
    del h[0].header["EBV"]
    buf = io.BytesIO()
    h.writeto(buf)
    r = _post_files(server, "photoz", [buf.getvalue(), _cube("photoz")])
    assert r.status_code == 200
    a = r.json()["answers"]
    assert a[0]["error"]["reason"] == "bad_value" and "E(B−V)" in a[0]["error"]["message"]
    assert "z_mean" in a[1]


def test_declared_request_limits_are_in_the_openapi_document(server):
    """The limits the API declares are the ones it enforces, and a client can read them."""
    spec = httpx.get(f"{server}/docs.json").json()
    props = spec["components"]["schemas"]["photoz_array__Input"]["properties"]
    most = int(SERVER_ENV["SKYGUARD_MAX_CUTOUTS"])
    assert props["ids"]["maxItems"] == most and props["ids"]["items"]["maxLength"] == 256
    assert props["ebv"]["maxItems"] == most


def test_models_metrics_and_openapi(server):
    from openapi_spec_validator import validate

    # one answer first: a labelled counter's samples exist from its first count (multiprocess)
    assert _post_files(server, "morphology", [_cube("morphology")]).status_code == 200
    models = httpx.get(f"{server}/v1/models").json()["models"]
    assert set(models) == set(BANDS)
    assert models["morphology"]["provider"] == "CPUExecutionProvider"
    assert models["photoz"]["bands"] == list(BANDS["photoz"])
    metrics = httpx.get(f"{server}/metrics").text
    assert "skyguard_predictions_total" in metrics and "skyguard_rejected_inputs_total" in metrics
    spec = httpx.get(f"{server}/docs.json").json()
    validate(spec)
    for route in ("/morphology", "/lsbg", "/photoz", "/morphology_array", "/lsbg_array",
                  "/photoz_array", "/v1/models", "/v1/drift", "/v1/robustness", "/readyz",
                  "/livez", "/metrics"):  # fmt: skip
        assert route in spec["paths"], route
    drift = httpx.get(f"{server}/v1/drift").json()
    assert set(drift) == set(BANDS) and all("last_test" in d for d in drift.values())
    robustness = httpx.get(f"{server}/v1/robustness").json()
    assert set(robustness) == set(BANDS)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _descendants(pid: int) -> list[int]:
    """All processes below ``pid`` (from /proc: Linux)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _metric(url: str, name: str, **labels) -> float:
    total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_predictions_go_on_when_the_monitor_stalls(server):
    """A frozen monitor costs latents (counted), never predictions."""
    import signal

    pids = [p for p in _descendants(server.pgid) if "skyguard-monitor" in _cmdline(p)]
    assert pids, "monitor worker not found"
    sent = _metric(server, "skyguard_latents_sent_total", task="lsbg")
    before = _metric(server, "skyguard_latents_dropped_total", task="lsbg")
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        t0 = time.time()
        for _ in range(3):
            r = _post_files(server, "lsbg", [_cube("lsbg")] * 2)
            assert r.status_code == 200 and r.json()["n_answered"] == 2
        assert time.time() - t0 < 10  # answers did not wait for the monitor
        deadline = time.time() + 20
        while _metric(server, "skyguard_latents_dropped_total", task="lsbg") < before + 6:
            assert time.time() < deadline, "dropped latents were not counted"
            time.sleep(0.5)
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)
    # the monitor back, latents flow again
    r = _post_files(server, "lsbg", [_cube("lsbg")])
    deadline = time.time() + 20
    while _metric(server, "skyguard_latents_sent_total", task="lsbg") <= sent:
        assert time.time() < deadline
        time.sleep(0.5)


# -- level 3: the built Bento -------------------------------------------------------------------


def test_built_bento_serves(bundles, tmp_path):
    root = Path(__file__).parents[1]
    bentoml = Path(sys.executable).parent / "bentoml"
    out = subprocess.run(
        [str(bentoml), "build", "--output", "tag", str(root)], cwd=root, capture_output=True,
        text=True, env=os.environ.copy(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    tag = out.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("skyguard:")
    proc, url = _serve(tag, tmp_path, tmp_path / "bento.log")
    try:
        r = _post_files(url, "lsbg", [_cube("lsbg")])
        assert r.status_code == 200 and r.json()["n_answered"] == 1, r.text
    finally:
        _stop(proc)


def test_bootstrap_uses_stored_models_and_writes_examples(bundles, tmp_path, capsys):
    """``make serve``'s first step: stored bundles are used as they are; examples decode."""
    from cli.bootstrap import ensure_models, write_examples
    from core.store import list_models
    from service.fits_input import read_fits
    from service.runtime import TaskSpec

    tags = ensure_models(tuple(BANDS), bundles, tmp_path / "runs")
    assert tags == {t: list_models(t)[0]["tag"] for t in BANDS}
    assert "using skyguard-lsbg:" in capsys.readouterr().out
    paths = write_examples(bundles, tmp_path / "examples", per_domain=2)
    assert sorted(p.name for p in paths) == sorted(
        f"{t}_{d}_{k}.fits" for t, d in (("morphology", "y10"), ("morphology", "y1"),
                                          ("lsbg", "des"), ("photoz", "deep")) for k in (1, 2)
    )  # fmt: skip
    for p in paths:
        task = p.name.split("_")[0]
        spec = TaskSpec.from_ref(task, f"skyguard-{task}:latest")
        cut = read_fits(p.read_bytes(), p.name, spec.bands, spec.shape)
        assert cut.id.startswith(task) and cut.image.shape[0] == len(spec.bands)
