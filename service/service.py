"""The skyguard Bento: three BentoML services composed with ``bentoml.depends`` (DESIGN.md,
"Runtime topology"). Start it with ``bentoml serve service.service:Skyguard``.

* ``Skyguard`` (the gateway, the HTTP face) — per task, ``POST /<task>`` takes one or many FITS
  files (multipart field ``cutouts``) and ``POST /<task>_array`` takes arrays [N, B, H, W] for
  pipelines that already hold them. It decodes and checks every cutout (``fits_input``, once, at
  the edge), preprocesses with the bundle's own parameters, asks the predictor, and answers per
  cutout: id, probabilities and label (photo-z: z mean / median / mode / σ / odds, the p(z) on
  request), the OOD percentile, and the model's name, version and recipe. A request that is
  wholly unusable gets a 4xx with a message saying what and where; a batch with some broken
  cutouts answers the good ones and gives each bad one its own error. ``GET /v1/models`` lists
  the loaded bundles with their ``bundle.json`` facts.
* ``Predictor`` — one batchable array API per task on ONNX Runtime (CUDA when present), with
  adaptive batching across gateway requests. It hands the latents to the monitor without
  waiting: a slow or absent monitor costs dropped latents (counted), never predictions.
* ``Monitor`` (``service.monitor``) — one worker that receives latents, runs the drift tests
  and the canary schedule. ``GET /v1/drift`` and ``GET /v1/robustness`` show its latest results.

Everything is configured by ``SKYGUARD_*`` environment variables (``service.config``).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import time
from http import HTTPStatus
from pathlib import Path
from typing import Annotated

import attrs
import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException, InvalidArgument
from fastapi import FastAPI
from pydantic import Field

from monitors.metrics import (
    LATENTS_DROPPED,
    LATENTS_SENT,
    OOD_SCORE,
    PREDICTIONS,
    REJECTED,
    init_gateway,
    init_predictor,
    publish_queue,
    publish_shed,
)

from .admission import Admission
from .auth import BearerAuth, document, hide_paths
from .config import settings
from .errors import UNAVAILABLE_NOTES, InputError, RequestRefused, Unavailable
from .fits_input import REASONS, Cutout, Repair, from_array, read_many
from .http_guard import RequestGuard, UniformErrors, api_routes, document_errors
from .monitor import Monitor
from .runtime import TaskModel, TaskSpec, checked_outputs, model_rows, redshift_label

log = logging.getLogger("skyguard.service")
SETTINGS = settings()
# task → numbers per cutout (B·H·W) of the gateway's bundles, for the admission bound's estimate
# of a request's cutouts from its Content-Length; filled by the gateway worker at start
_CUTOUT_VALUES: dict[str, int] = {}


def _openapi_fix(node):
    """Make BentoML 1.4's generated document valid OpenAPI 3.0 (the version it declares).

    BentoML writes file uploads as Swagger 2's ``type: file`` (OpenAPI 3: a binary string),
    numpy arrays as ``type: tensor`` (here: an array of nested numbers) and optional fields as
    ``anyOf [..., {type: null}]`` (3.0 has ``nullable`` instead). Nothing else is changed.
    """
    if isinstance(node, dict):
        if node.get("type") == "file":
            node = {**node, "type": "string", "format": "binary"}
        elif node.get("type") == "tensor":
            node = {**node, "type": "array", "items": {},
                    "description": "numpy array as nested lists of numbers"}  # fmt: skip
        if isinstance(node.get("anyOf"), list) and {"type": "null"} in node["anyOf"]:
            rest = [v for v in node["anyOf"] if v != {"type": "null"}]
            node = {k: v for k, v in node.items() if k != "anyOf"}
            node.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
            node["nullable"] = True
        return {k: _openapi_fix(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_openapi_fix(v) for v in node]
    return node


class _FixedSpec:
    def __init__(self, spec) -> None:
        self._spec = spec

    def asdict(self) -> dict:
        spec = document_errors(_openapi_fix(self._spec.asdict()), api_routes(Skyguard))
        return document(spec) if SETTINGS.api_tokens else spec  # declares the bearer scheme


@attrs.define
class _Service(bentoml.Service):
    """BentoML's service class (given to ``@bentoml.service(service_class=...)``) with a valid
    OpenAPI 3 document at ``/docs.json``. ``openapi_spec`` is not a documented extension point:
    BentoML is pinned (requirements.lock), and tests/test_packaging.py fails on another version
    or on a document this override no longer fixes."""

    @property
    def openapi_spec(self):
        return _FixedSpec(super().openapi_spec)


# OSErrors that mean the server's temporary storage is full or not writable: not the client's
# fault, a 503 (the upload is spooled to $TMPDIR by Starlette and copied there by BentoML)
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES})


class _StorageFault(logging.Filter):
    """Notes an upload that the server could not store: the error escapes from BentoML's request
    parsing (before any skyguard code runs) and BentoML logs it (its ``log_exception``, in the
    request's context) before answering 500; this filter sees that record and lets it through."""

    def filter(self, record: logging.LogRecord) -> bool:
        e = record.exc_info[1] if record.exc_info else None
        if isinstance(e, OSError) and e.errno in _STORAGE_ERRNOS:
            if (box := UNAVAILABLE_NOTES.get(None)) is not None:
                name = errno.errorcode.get(e.errno, str(e.errno))
                box.append((f"the server cannot store the upload now ({name}: {e.strerror}); "
                            "retry later", 30))  # fmt: skip
        return True


class _ShowUnavailable:
    """ASGI middleware of the gateway. A request that an ``Unavailable`` or a storage fault
    stopped is answered 503 with ``Retry-After`` and ``{"error": <the reason>}``, in place of
    BentoML's generic 5xx text; any other 503 gets ``Retry-After`` too."""

    def __init__(self, app) -> None:
        self.app = app
        # here, not at import: this runs in the worker, after BentoML has set up its logging
        http_log = logging.getLogger("bentoml._internal.server.http_app")
        if not any(isinstance(f, _StorageFault) for f in http_log.filters):
            http_log.addFilter(_StorageFault())

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        box: list[tuple[str, int]] = []
        token = UNAVAILABLE_NOTES.set(box)
        ours: bytes | None = None  # the body that replaces BentoML's

        async def amend(message: dict) -> None:
            nonlocal ours
            kind = message["type"]
            if kind == "http.response.start" and message["status"] in (500, 503):
                headers = list(message.get("headers", []))
                if box:  # the reason is known (noted before the response starts)
                    text, retry = box[-1]
                    ours = json.dumps({"error": text}).encode()
                    headers = [(k, v) for k, v in headers
                               if k.lower() not in (b"content-length", b"retry-after")]  # fmt: skip
                    headers += [(b"content-length", str(len(ours)).encode()),
                                (b"retry-after", str(retry).encode())]  # fmt: skip
                    message = {**message, "status": 503, "headers": headers}
                elif message["status"] == 503 and not any(
                    k.lower() == b"retry-after" for k, _ in headers
                ):
                    message = {**message, "headers": [*headers, (b"retry-after", b"5")]}
            elif kind == "http.response.body" and ours is not None:
                if message.get("more_body"):
                    return  # BentoML's text, dropped
                message, ours = {"type": kind, "body": ours}, None
            await send(message)

        try:
            await self.app(scope, receive, amend)
        finally:
            UNAVAILABLE_NOTES.reset(token)


def _unavailable(e: BaseException) -> Unavailable:
    """The 503 for a failed call to the predictor, saying how it failed: unreachable (down or
    restarting), too slow, or an error status of its own (not the client's fault: the gateway
    checked the input)."""
    import aiohttp

    if isinstance(e, aiohttp.ClientConnectionError):
        why = f"is unreachable ({type(e).__name__}: {e})"
    elif isinstance(e, TimeoutError):
        why = "did not answer in time"
    elif isinstance(e, BentoMLException):
        why = f"failed with {int(e.error_code)}: {str(e)[:300]}"
    else:
        why = f"failed ({type(e).__name__}: {e})"
    return Unavailable(f"the predictor {why}; retry later")


def _refuse(task: str, errors: list[InputError]) -> RequestRefused:
    for e in errors:
        REJECTED.labels(task=task, reason=e.reason).inc()
    status = (
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        if all(e.reason in ("too_large", "too_many") for e in errors)
        else HTTPStatus.BAD_REQUEST
    )
    if len(errors) == 1:
        e = errors[0]
        return RequestRefused(f"[{e.reason}] {e.message}", status)
    detail = "; ".join(f"[{e.reason}] {e.message}" for e in errors)
    return RequestRefused(f"all {len(errors)} cutouts were refused: {detail}", status)


def _batched(fn):
    return bentoml.api(
        batchable=True, max_batch_size=SETTINGS.max_batch, max_latency_ms=SETTINGS.max_latency_ms
    )(fn)


@bentoml.service(name="skyguard-predictor", workers=1, traffic={"timeout": 60})
class Predictor:
    """ONNX Runtime sessions of every served task, one batchable API per task."""

    monitor = bentoml.depends(Monitor)

    def __init__(self) -> None:
        # the CPU thread pool must not busy-wait: the gateway workers share these cores
        self.models = {
            t: TaskModel(TaskSpec.from_ref(t, SETTINGS.model_ref(t)), SETTINGS.provider, spin=False)
            for t in SETTINGS.tasks
        }
        self._pending: set[asyncio.Task] = set()
        self._rng = np.random.default_rng()
        init_predictor(tuple(self.models))
        for t, m in self.models.items():
            print(f"skyguard predictor: {t} {m.spec.model_facts} on {m.provider}", flush=True)

    def _hand_off(self, task: str, latents: np.ndarray) -> None:
        """Send (a sample of) the latents to the monitor without waiting for it."""
        latents = latents[np.isfinite(latents).all(1)]
        if SETTINGS.latent_sample < 1.0:
            latents = latents[self._rng.random(len(latents)) < SETTINGS.latent_sample]
        if not len(latents):
            return
        if len(self._pending) >= SETTINGS.monitor_backlog:
            LATENTS_DROPPED.labels(task=task, reason="backlog").inc(len(latents))
            return
        job = asyncio.ensure_future(self._send(task, latents))
        self._pending.add(job)
        job.add_done_callback(self._pending.discard)

    async def _send(self, task: str, latents: np.ndarray) -> None:
        try:
            await asyncio.wait_for(
                self.monitor.to_async.ingest(
                    task=task, latents=latents, bundle=str(self.models[task].spec.bundle.path)
                ),
                SETTINGS.monitor_timeout_s,
            )
            LATENTS_SENT.labels(task=task).inc(len(latents))
        except Exception as e:  # the monitor is optional for predictions: count, never raise
            LATENTS_DROPPED.labels(task=task, reason="monitor_unavailable").inc(len(latents))
            log.debug("monitor unavailable: %s", e)

    async def _run(self, task: str, rows: np.ndarray) -> np.ndarray:
        if task not in self.models:
            raise InvalidArgument(f"task {task!r} is not served; served: {list(self.models)}")
        out, latents = await asyncio.to_thread(self.models[task].infer, rows)
        self._hand_off(task, latents)
        return out

    @_batched
    async def morphology(self, rows: np.ndarray) -> np.ndarray:
        """Rows [N, 3·100·100] → [N, 3 probabilities ‖ OOD percentile]."""
        return await self._run("morphology", rows)

    @_batched
    async def lsbg(self, rows: np.ndarray) -> np.ndarray:
        """Rows [N, 3·64·64] → [N, P(artifact), P(LSBG) ‖ OOD percentile]."""
        return await self._run("lsbg", rows)

    @_batched
    async def photoz(self, rows: np.ndarray) -> np.ndarray:
        """Rows [N, 5·64·64 + 1 (E(B−V))] → [N, 180 p(z) bins ‖ OOD percentile]."""
        return await self._run("photoz", rows)

    @bentoml.api
    async def providers(self) -> dict:
        return {t: m.provider for t, m in self.models.items()}

    @bentoml.api
    async def bundles(self) -> dict:
        """{task: bundle directory} of the sessions this predictor runs."""
        return {t: str(m.spec.bundle.path) for t, m in self.models.items()}


#: the longest cutout id a request may send [characters]
MAX_ID = 256
#: ids of the cutouts of an array request, one per cutout
Ids = Annotated[
    list[Annotated[str, Field(max_length=MAX_ID)]], Field(max_length=SETTINGS.limits.max_cutouts)
]
#: E(B−V) [mag] per cutout, in the order of the cutouts
EbvList = Annotated[list[float], Field(max_length=SETTINGS.limits.max_cutouts)]


v1 = FastAPI(title="skyguard", version="1", description="Loaded models and their facts")


def _shown(answer: dict) -> dict:
    """``answer`` as a /v1 client may see it: server paths hidden unless SKYGUARD_SHOW_PATHS."""
    return answer if SETTINGS.show_paths else hide_paths(answer)


@v1.get("/models", summary="The loaded model bundles and their bundle.json facts")
async def list_models() -> dict:
    svc = bentoml.get_current_service()
    return _shown(await svc.describe_models())


@v1.get("/drift", summary="Per task: latents received, the latest windowed MMD² test and the "
        "online detector's latest statistic")  # fmt: skip
async def drift_status() -> dict:
    svc = bentoml.get_current_service()
    return _shown(await svc.monitor.to_async.status())


@v1.get("/robustness", summary="The latest canary run per model and attack")
async def robustness() -> dict:
    svc = bentoml.get_current_service()
    return _shown(await svc.monitor.to_async.robustness())


@bentoml.asgi_app(v1, path="/v1")
@bentoml.service(
    name="skyguard",
    workers=SETTINGS.gateway_workers,
    traffic={"timeout": 120},
    service_class=_Service,
)
class Skyguard:
    """The HTTP gateway: FITS or arrays in, one answer per cutout out.

    What a request's types can say is declared on the API (pydantic ``Field``s, refused with a
    400 before a method runs): list lengths up to ``SKYGUARD_MAX_CUTOUTS``, ids of at most
    ``MAX_ID`` characters, the repair modes. Array shapes and dtypes are checked by
    ``fits_input.from_array`` against the served bundle instead: BentoML's ``Shape`` validator
    reshapes (a channel-last [N, H, W, B] array would pass, scrambled), and its ``DType`` casts
    (strings would pass); E(B−V) values are checked per cutout there too, so one bad value costs
    one answer, not the request's.
    """

    AGREE_EVERY_S = 5.0  # the longest a restarted predictor's new bundles go unnoticed [s]
    predictor = bentoml.depends(Predictor)
    monitor = bentoml.depends(Monitor)

    def __init__(self) -> None:
        self.specs = {t: TaskSpec.from_ref(t, SETTINGS.model_ref(t)) for t in SETTINGS.tasks}
        self._agreed_at = -np.inf  # time.monotonic() of the last check with the predictor [s]
        self._agreeing = asyncio.Lock()
        init_gateway(tuple(self.specs), REASONS)
        _CUTOUT_VALUES.update(
            {t: int(np.prod(s.info["input_shape"])) for t, s in self.specs.items()}
        )

    @bentoml.on_deployment
    def _check_bundles() -> None:
        """Once, in ``bentoml serve``'s own process before any worker starts: every configured
        bundle passes its checks (files, sha256, schema), so a damaged or missing one stops
        start-up with its message and a non-zero exit. Checked only in the workers, a bundle
        that fails would have BentoML's arbiter restart them forever, never ready."""
        for task in SETTINGS.tasks:
            TaskSpec.from_ref(task, SETTINGS.model_ref(task))

    async def _agree_with_predictor(self) -> None:
        """Use the very bundles the predictor runs: 'skyguard-<task>:latest' is resolved by each
        process when it starts, and a bundle stored in between would otherwise be preprocessed
        for one model and run by another.

        A predictor can restart (BentoML restarts a worker that died) onto a newer ``:latest``,
        so the check is repeated: at most every ``AGREE_EVERY_S`` while calls succeed, and on
        the next request after any failed predictor call (a restart fails the calls in flight
        and those made while it loads its sessions). One small call per gateway worker per
        ``AGREE_EVERY_S``, not one per request; a batchable predictor API answers one array, so
        it cannot name its bundle with every answer. A predictor that cannot be asked is a 503.
        """
        if time.monotonic() - self._agreed_at < self.AGREE_EVERY_S:
            return
        async with self._agreeing:  # concurrent requests: one check, not one each
            if time.monotonic() - self._agreed_at < self.AGREE_EVERY_S:
                return
            try:
                paths = await self.predictor.to_async.bundles()
            except Exception as e:
                raise _unavailable(e) from e
            for task, path in paths.items():
                if task in self.specs and str(self.specs[task].bundle.path) != path:
                    log.warning("%s: gateway had %s, predictor runs %s; following the predictor",
                                task, self.specs[task].bundle.path, path)  # fmt: skip
                    self.specs[task] = await asyncio.to_thread(TaskSpec.from_ref, task, path)
            self._agreed_at = time.monotonic()

    async def describe_models(self) -> dict:
        try:
            await self._agree_with_predictor()
            providers = await self.predictor.to_async.providers()
        except Exception as e:  # the listing must not fail because the predictor is busy
            providers = {"error": str(e)}
        out = {}
        for t, spec in self.specs.items():
            i = spec.info
            out[t] = {
                **spec.model_facts,
                "provider": providers.get(t) if isinstance(providers, dict) else None,
                "bands": i["bands"],
                "input_shape": i["input_shape"],
                "pixel_scale_arcsec": i["pixel_scale_arcsec"],
                "classes": i.get("classes"),
                "latent_dim": i["latent_dim"],
                "preprocessing": i["preprocessing"],
                "metrics": i["metrics"],
                "hyperparameters": i["hyperparameters"],
                "training": i.get("training", {}),
                "datasets": i["datasets"],
                "git_revision": i["git_revision"],
                "files": i["files"],
            }
        return {"models": out}

    def _spec(self, task: str) -> TaskSpec:
        if task not in self.specs:
            raise RequestRefused(f"task {task!r} is not served here; served: {list(self.specs)}")
        return self.specs[task]

    def _decode_files(
        self, spec: TaskSpec, files: list[Path], repair: Repair
    ) -> list[Cutout | InputError]:
        """The uploads of one request, checked (``fits_input.read_many``); one without files or
        with too many is refused as a whole. Uploads arrive as temporary files whose names are
        not the client's: ``cutout[k]`` names them in messages."""
        named = [(f"cutout[{k}]", path) for k, path in enumerate(files)]
        try:
            return read_many(named, spec.bands, spec.shape, SETTINGS.limits, repair)
        except InputError as e:
            raise _refuse(spec.task, [e]) from None

    async def _answer(
        self,
        spec: TaskSpec,
        items: list[Cutout | InputError],
        ebv: list[float] | None = None,
        with_pdf: bool = False,
    ) -> dict:
        task = spec.task
        if ebv is not None and len(ebv) != len(items):
            raise _refuse(task, [InputError("bad_value", f"{len(ebv)} ebv values for "
                                            f"{len(items)} cutouts", "ebv")])  # fmt: skip
        items = list(items)
        rows, kept = await asyncio.to_thread(model_rows, spec, items, ebv)
        good = [(k, items[k]) for k in kept]
        answers: list[dict | None] = [None] * len(items)
        if good:
            out, kept = checked_outputs(await self._predict(task, rows), items, kept)
            good = [(k, items[k]) for k in kept]  # less those without a finite model output
            for (k, c), row in zip(good, out, strict=True):
                a = spec.answer(row, c, with_pdf)
                answers[k] = a
                label = a.get("label") or redshift_label(a["z_mode"])
                PREDICTIONS.labels(task=task, label=label).inc()
                OOD_SCORE.labels(task=task).observe(a["ood_score"])
        elif items:
            raise _refuse(task, [e for e in items if isinstance(e, InputError)])
        bad = [e for e in items if isinstance(e, InputError)]
        for k, e in enumerate(items):
            if isinstance(e, InputError):
                REJECTED.labels(task=task, reason=e.reason).inc()
                answers[k] = {"id": e.where, "error": e.to_dict()}
        return {
            "task": task,
            "n_answered": len(good),
            "n_refused": len(bad),
            "answers": answers,
        }

    async def _predict(self, task: str, rows: np.ndarray) -> np.ndarray:
        """The predictor's answer rows [N, outputs]. A pooled keep-alive connection that the
        predictor closed while idle fails on reuse (aiohttp's ServerDisconnectedError; measured:
        9–15 of 40 requests at concurrency 16 after a quieter spell): inference is idempotent, so
        a call that failed to connect is retried once. Anything else the predictor answers or
        fails with is not the client's fault (the gateway checked the input): a 503, and the
        bundles are checked again before the next request (the predictor may have restarted)."""
        import aiohttp

        call = getattr(self.predictor.to_async, task)
        for attempt in (1, 2):
            try:
                return await call(rows)
            except aiohttp.ClientConnectionError as e:
                self._agreed_at = -np.inf
                if attempt == 2:
                    raise _unavailable(e) from e
                log.warning("predictor connection dropped (%s); retrying once", e)
            except (TimeoutError, aiohttp.ClientError, BentoMLException) as e:
                self._agreed_at = -np.inf
                raise _unavailable(e) from e
        raise AssertionError("unreachable")

    async def _files(self, task: str, cutouts: list[Path], repair: Repair, **kw) -> dict:
        await self._agree_with_predictor()
        spec = self._spec(task)
        items = await asyncio.to_thread(self._decode_files, spec, cutouts, repair)
        return await self._answer(spec, items, **kw)

    async def _arrays(
        self, task: str, images: np.ndarray, ids: list[str] | None, repair: Repair, **kw
    ) -> dict:
        await self._agree_with_predictor()
        spec = self._spec(task)
        try:
            items = await asyncio.to_thread(
                from_array, images, spec.bands, spec.shape, ids, repair, SETTINGS.limits
            )
        except InputError as e:
            raise _refuse(task, [e]) from None
        return await self._answer(spec, items, **kw)

    @bentoml.api
    async def morphology(self, cutouts: list[Path], repair: Repair = "none") -> dict:
        """Galaxy morphology (spiral, elliptical, merger) of LSST g,r,i 100×100 FITS cutouts
        (electrons, sky subtracted)."""
        return await self._files("morphology", cutouts, repair)

    @bentoml.api
    async def lsbg(self, cutouts: list[Path], repair: Repair = "none") -> dict:
        """P(LSBG) vs artifact of g,r,z 64×64 FITS cutouts (30″, electrons)."""
        return await self._files("lsbg", cutouts, repair)

    @bentoml.api
    async def photoz(
        self,
        cutouts: list[Path],
        ebv: EbvList | None = None,
        pdf: bool = False,
        repair: Repair = "none",
    ) -> dict:
        """Photometric redshift of LSST u,g,r,i,z 64×64 FITS cutouts: z summaries and, with
        ``pdf``, the 180-bin p(z). E(B−V) per cutout from ``ebv`` or the EBV header keyword."""
        return await self._files("photoz", cutouts, repair, ebv=ebv, with_pdf=pdf)

    @bentoml.api
    async def morphology_array(
        self, images: np.ndarray, ids: Ids | None = None, repair: Repair = "none"
    ) -> dict:
        """As ``morphology`` for arrays [N, 3, 100, 100] (g, r, i; electrons)."""
        return await self._arrays("morphology", images, ids, repair)

    @bentoml.api
    async def lsbg_array(
        self, images: np.ndarray, ids: Ids | None = None, repair: Repair = "none"
    ) -> dict:
        """As ``lsbg`` for arrays [N, 3, 64, 64] (g, r, z; electrons)."""
        return await self._arrays("lsbg", images, ids, repair)

    @bentoml.api
    async def photoz_array(
        self,
        images: np.ndarray,
        ebv: EbvList,
        ids: Ids | None = None,
        pdf: bool = False,
        repair: Repair = "none",
    ) -> dict:
        """As ``photoz`` for arrays [N, 5, 64, 64] (u, g, r, i, z; electrons at the bundle's
        zeropoints) with one E(B−V) per cutout."""
        return await self._arrays("photoz", images, ids, repair, ebv=ebv, with_pdf=pdf)


# every error answer, whoever makes it, leaves as {"error", "reason"} JSON (the outermost layer)
Skyguard.add_asgi_middleware(UniformErrors)

# every gateway route but health, metrics and the docs needs a token when tokens are configured;
# the predictor and monitor listen only on the pod's private sockets (service.auth)
Skyguard.add_asgi_middleware(BearerAuth, tokens=SETTINGS.api_tokens)

# a 503 says why and when to retry (BentoML itself answers every 5xx with one generic text)
Skyguard.add_asgi_middleware(_ShowUnavailable)

# a bounded queue of cutouts per task: past it a 503 with Retry-After, before the body is read
# (service.admission); inside the token check, so a refused token never takes a place
Skyguard.add_asgi_middleware(
    Admission,
    values=_CUTOUT_VALUES,
    fixed_bound=SETTINGS.queue_cutouts,
    target_s=SETTINGS.latency_target_ms / 1e3,
    initial=SETTINGS.limits.max_cutouts,
    most=SETTINGS.limits.max_cutouts,
    on_shed=publish_shed,
    on_depth=publish_queue,
)

# the one request-parsing layer (inside admission: a request that waits for no place is read
# by nobody): media type, encoding and multipart checked before BentoML parses
Skyguard.add_asgi_middleware(RequestGuard, routes=api_routes(Skyguard))
