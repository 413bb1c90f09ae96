"""What the services hold per task: the checked bundle, its ONNX Runtime session, preprocessing,
the OOD scorer, and how a model's outputs become a pipeline's answer.

* ``TaskSpec`` — the bundle's facts the gateway needs (bands, shape, preprocessing, classes or
  z bins); no ONNX session, so decoding workers stay light.
* ``TaskModel`` — a ``TaskSpec`` plus the session (``CUDAExecutionProvider`` when onnxruntime-gpu
  and a GPU are present and allowed, else CPU; chosen, warmed up and reported at start) and the
  k-NN OOD scorer on the bundle's reference latents.

The predictor's batchable API takes one array per call (BentoML batches a single argument), so a
cutout travels as one flat float32 row: the preprocessed image ``C·H·W`` values, then for photo-z
its E(B−V). ``pack``/``unpack`` are the two ends of that contract. The predictor answers one row
per cutout: the K class probabilities (or p(z) bins), then the OOD percentile.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.bundle import Bundle, BundleError, check_parity, onnx_session, run_onnx
from core.preprocess import FluxScale

from .fits_input import Cutout, InputError

log = logging.getLogger("skyguard.service")

#: |δz| bound of the photo-z ``odds`` (the outlier bound η of 003 §3.1).
ODDS_WINDOW = 0.05


def load_bundle(ref: str) -> Bundle:
    """A bundle by store tag or directory, checked (schema, every file's sha256); any failure
    stops start-up with a message naming the bundle. The ONNX parity check runs where the model
    is served, on the serving session (``TaskModel``), not here: a process that only reads the
    bundle (the gateway, a Spark driver) builds no session for it."""
    from core.store import load

    try:
        return load(ref)
    except Exception as e:  # every failure here must stop start-up, with the bundle named
        raise BundleError(f"cannot serve model {ref!r}: {e}") from e


@dataclass
class TaskSpec:
    task: str
    bundle: Bundle
    version: str

    @classmethod
    def from_ref(cls, task: str, ref: str) -> TaskSpec:
        bundle = load_bundle(ref)
        if bundle.task != task:
            raise BundleError(f"model {ref!r} is a {bundle.task} bundle, configured for {task}")
        version = Path(bundle.path).name
        return cls(task, bundle, version)

    @property
    def info(self) -> dict:
        return self.bundle.info

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(self.info["bands"])

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.info["input_shape"][1:])

    @property
    def row_width(self) -> int:
        c, h, w = self.info["input_shape"]
        return c * h * w + (1 if "ebv" in self.info["inputs"] else 0)

    @property
    def model_facts(self) -> dict:
        i = self.info
        return {
            "name": i["name"],
            "version": self.version,
            "architecture": i["architecture"],
            "recipe": i["recipe"],
        }

    def pack(self, cutouts: list[Cutout], ebv: list[float | None] | None = None) -> np.ndarray:
        """Preprocess checked cutouts into predictor rows [N, row_width] float32.

        Photo-z: ``ebv`` [N] E(B−V) [mag] per cutout (checked by the caller); fluxes are
        converted with each cutout's own MAGZP when it has them, else the bundle's.
        """
        prep = self.bundle.preprocessing
        raw = np.stack([c.image for c in cutouts])
        if isinstance(prep, FluxScale):
            zps = np.stack([c.magzp if c.magzp is not None else prep.magzp for c in cutouts])
            x = prep(raw, magzp=zps)
        else:
            x = prep(raw)
        rows = x.reshape(len(cutouts), -1)
        if "ebv" not in self.info["inputs"]:
            return np.ascontiguousarray(rows, dtype=np.float32)
        if ebv is None or len(ebv) != len(cutouts) or any(v is None for v in ebv):
            raise ValueError("photo-z rows need one E(B−V) per cutout")
        col = np.asarray(ebv, dtype=np.float32)[:, None]
        return np.ascontiguousarray(np.hstack([rows, col]), dtype=np.float32)

    def unpack(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictor rows [N, row_width] → images [N, C, H, W] (and E(B−V) [N, 1])."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.row_width:
            raise ValueError(f"expected rows [N, {self.row_width}], got {rows.shape}")
        c, h, w = self.info["input_shape"]
        image = rows[:, : c * h * w].reshape(len(rows), c, h, w)
        ebv = rows[:, c * h * w :] if "ebv" in self.info["inputs"] else None
        return image, ebv

    def answer(self, row: np.ndarray, cutout: Cutout, with_pdf: bool = False) -> dict:
        """A pipeline's answer for one cutout from its predictor row [K + 1] (K class
        probabilities or p(z) bins, then the OOD percentile 0–100)."""
        scores, ood = row[:-1].astype(np.float64), float(row[-1])
        out: dict = {"id": cutout.id}
        if self.task == "photoz":
            out.update(photoz_summary(scores, self.bundle.z_edges))
            if with_pdf:
                out["pdf"] = [round(float(p), 6) for p in scores]
                out["z_bin_edges"] = [float(e) for e in self.bundle.z_edges]
        else:
            classes = self.bundle.classes
            k = int(np.argmax(scores))
            out["label"] = classes[k]
            out["probabilities"] = {
                c: round(float(p), 6) for c, p in zip(classes, scores, strict=True)
            }
        out["ood_score"] = round(ood, 2)
        if cutout.repaired:
            out["repaired_pixels"] = cutout.repaired
        out["model"] = self.model_facts
        return out


def model_rows(
    spec: TaskSpec, items: list[Cutout | InputError], ebv: list[float | None] | None = None
) -> tuple[np.ndarray, list[int]]:
    """Predictor rows [N, row_width] float32 of the N cutouts among ``items`` (each the
    preprocessed image [C·H·W] flattened, then E(B−V) [mag] for photo-z), and their positions.

    The last checks before a model runs, shared by the gateway and batch scoring: a photo-z
    cutout without a usable E(B−V) (``ebv[k]`` when given, else its ``EBV`` header), or one whose
    preprocessed input is not finite (an absurd MAGZP, say), is refused — replaced in ``items``
    (in place) by its ``InputError``.
    """
    needs_ebv = "ebv" in spec.info["inputs"]
    values: list[float | None] = [None] * len(items)
    for k, c in enumerate(items):
        if needs_ebv and isinstance(c, Cutout):
            v = ebv[k] if ebv is not None else c.ebv
            if v is None or not np.isfinite(v) or v < 0:
                items[k] = InputError(
                    "bad_value",
                    f"photo-z needs E(B−V) >= 0 [mag] per cutout (EBV header keyword or the ebv "
                    f"field), got {v}",
                    c.id,
                )
            values[k] = v
    good = [k for k, c in enumerate(items) if isinstance(c, Cutout)]
    if not good:
        return np.zeros((0, spec.row_width), np.float32), []
    rows = spec.pack([items[k] for k in good], [values[k] for k in good] if needs_ebv else None)
    finite = np.isfinite(rows).all(1)
    for k, ok in zip(good, finite, strict=True):
        if not ok:
            detail = "preprocessing gave non-finite values (check MAGZP and BUNIT)"
            items[k] = InputError("bad_value", detail, items[k].id)
    return rows[finite], [k for k, ok in zip(good, finite, strict=True) if ok]


def checked_outputs(
    out: np.ndarray, items: list[Cutout | InputError], kept: list[int]
) -> tuple[np.ndarray, list[int]]:
    """The model's answer rows ``out`` [n, K + 1] of the cutouts at ``kept`` in ``items``, less
    those that are not finite, and the positions of those left; shared by the gateway and batch
    scoring, after the model and before any answer is made.

    A NaN or ±inf probability, p(z) bin or OOD score has no defined answer (argmax, the z
    summaries and JSON all fail or lie on it): the cutout is refused in ``items`` (in place) with
    InputError("bad_output"), the other cutouts are answered.
    """
    out = np.asarray(out)
    if out.ndim != 2 or len(out) != len(kept):
        raise ValueError(f"expected {len(kept)} answer rows, got an array of shape {out.shape}")
    finite = np.isfinite(out).all(1)
    for k, row, ok in zip(kept, out, finite, strict=True):
        if not ok:
            bad = int((~np.isfinite(row)).sum())
            items[k] = InputError(
                "bad_output",
                f"the model's output is not finite ({bad} of {row.size} values NaN or ±inf): "
                "this cutout has no defined answer; it passed every input check",
                items[k].id,
            )
    return out[finite], [k for k, ok in zip(kept, finite, strict=True) if ok]


#: width [z] of the redshift bins the photo-z prediction counter files answers under.
LABEL_BIN = 0.05


def redshift_label(z: float, width: float = LABEL_BIN) -> str:
    """The counter label of redshift ``z``: the lower edge of its ``width``-wide bin, 'z0.15'.

    The bin index is taken from the quotient rounded to 9 decimals before the floor, because a
    value on an edge is often a hair below it in binary (0.15 / 0.05 = 2.9999999999999996).
    """
    k = math.floor(round(z / width, 9))
    return f"z{k * width:.2f}"


def photoz_summary(pdf: np.ndarray, edges: np.ndarray) -> dict:
    """z mean, median, mode, σ and odds of a p(z) over bins with ``edges`` [K + 1].

    odds = P(|z − z_mode| ≤ 0.05 (1 + z_mode)), the probability inside the outlier bound of
    003 §3.1 around the peak (BPZ's ODDS with that window).
    """
    p = np.clip(pdf, 0, None)
    p = p / p.sum()
    centres = 0.5 * (edges[1:] + edges[:-1])
    mean = float((p * centres).sum())
    sigma = float(np.sqrt(max((p * (centres - mean) ** 2).sum(), 0.0)))
    cdf = np.cumsum(p)
    k = int(np.searchsorted(cdf, 0.5))
    lo_c = cdf[k - 1] if k else 0.0
    median = float(edges[k] + (0.5 - lo_c) / max(p[k], 1e-300) * (edges[k + 1] - edges[k]))
    mode = float(centres[int(np.argmax(p))])
    half = ODDS_WINDOW * (1 + mode)
    odds = float(p[(centres >= mode - half) & (centres <= mode + half)].sum())
    return {
        "z_mean": round(mean, 5),
        "z_median": round(median, 5),
        "z_mode": round(mode, 5),
        "z_sigma": round(sigma, 5),
        "odds": round(odds, 4),
    }


def choose_providers(setting: str) -> list[str]:
    """ONNX Runtime providers for ``setting`` ('auto', 'cuda', 'cpu'), CPU always last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if setting == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if setting == "cuda":
        log.warning("SKYGUARD_PROVIDER=cuda but onnxruntime has no CUDA provider; using CPU")
    return ["CPUExecutionProvider"]


class TaskModel:
    """A task's ONNX session and OOD scorer, warmed up."""

    def __init__(
        self,
        spec: TaskSpec,
        provider_setting: str = "auto",
        warmup: int = 2,
        spin: bool = True,
        threads: int = 0,
    ) -> None:
        """``spin=False`` for a session that shares its cores with other busy processes (the
        service's predictor beside the gateway workers; ``core.bundle.onnx_session``);
        ``threads`` > 0 caps its CPU thread pool (a Spark task's ``spark.task.cpus``)."""
        from monitors.ood import KnnOodScorer

        self.spec = spec
        self.session = onnx_session(
            spec.bundle.onnx_path, choose_providers(provider_setting), threads=threads, spin=spin
        )
        self.provider = self.session.get_providers()[0]
        try:  # parity on the very session that serves: its provider (CUDA where present) counts
            self.parity = check_parity(spec.bundle, self.session)
        except Exception as e:
            raise BundleError(
                f"cannot serve model {spec.bundle.path}: on {self.provider}: {e}"
            ) from e
        self.ood = KnnOodScorer(spec.bundle.reference_latents())
        p = spec.bundle.parity_data()
        for _ in range(warmup):  # first runs allocate arenas and pick kernels
            run_onnx(self.session, p["image"][:4], p["ebv"][:4] if "ebv" in p else None)
        log.info("%s: %s on %s, ONNX parity %s", spec.task, spec.model_facts, self.provider,
                 {k: f"{v:.1e}" for k, v in self.parity.items()})  # fmt: skip

    def infer(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows [N, row_width] → answer rows [N, K + 1] (scores ‖ OOD) and latents [N, D]."""
        image, ebv = self.spec.unpack(rows)
        out = run_onnx(self.session, image, ebv)
        scores = out[self.spec.info["outputs"][0]]
        latent = out["latent"]
        ood = self.ood.score(latent)
        return np.hstack([scores, ood[:, None]]).astype(np.float32), latent
