"""Model bundles: the directory a trained model ships as (../shared/DESIGN.md, "Model bundle").

==========================  ===========================================================
file                        content
==========================  ===========================================================
``model.onnx``              input ``image`` [N, C, H, W] (and ``ebv`` [N, 1] for photo-z),
                            outputs ``probs`` (``pdf`` for photo-z) [N, K] and ``latent``
                            [N, D]; dynamic batch axis
``weights.pt``              torch ``state_dict`` (``torch.load(..., weights_only=True)``)
``bundle.json``             the facts below, and the sha256 of every other file
``reference_latents.npy``   float32 [N_ref, D], held-out source-domain latents (drift)
``canaries.npz``            raw cutouts ``images`` [M, C, H, W] (electrons), ``labels`` [M]
                            (or ``z``), ``ebv`` and ``magzp`` [M, B] for photo-z, ``index``
``parity.npz``              held-out preprocessed inputs and the torch outputs for them:
                            re-checked on the ONNX Runtime session that serves the model
==========================  ===========================================================

This module reads and checks bundles with numpy alone (ONNX Runtime is imported only by
``check_parity``), so the service and the monitors can load bundles without torch. Writing a
bundle needs torch: ``training.export``.

A bundle that fails its schema, a checksum or the ONNX parity check raises
:class:`BundleError`, whose message names the bundle, the file and the reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.preprocess import FluxScale, Preprocessing, preprocessing_from_dict

if TYPE_CHECKING:  # ONNX Runtime is imported where a session is made, not by reading a bundle
    from onnxruntime import InferenceSession

SCHEMA_VERSION = 1
BUNDLE_JSON = "bundle.json"
FILES = (
    "model.onnx",
    "weights.pt",
    "reference_latents.npy",
    "canaries.npz",
    "parity.npz",
)
#: Largest allowed |ONNX − torch| difference: absolute for probabilities, relative to the
#: latent's largest magnitude (at least 1) for latents.
PARITY_TOLERANCE = 1e-4

REQUIRED = {
    "schema_version": int,
    "name": str,
    "task": str,
    "architecture": str,
    "recipe": str,
    "hyperparameters": dict,
    "bands": list,
    "input_shape": list,
    "pixel_scale_arcsec": float,
    "preprocessing": dict,
    "latent_dim": int,
    "num_outputs": int,
    "inputs": list,
    "outputs": list,
    "metrics": dict,
    "datasets": dict,
    "seed": int,
    "git_revision": str,
    "files": dict,
}


class BundleError(ValueError):
    """A bundle is missing, incomplete, altered or inconsistent; the message says which file."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Bundle:
    """A bundle directory whose schema and checksums have been checked."""

    path: Path
    info: dict

    @property
    def task(self) -> str:
        return self.info["task"]

    @property
    def classes(self) -> list[str] | None:
        return self.info.get("classes")

    @property
    def z_edges(self) -> np.ndarray | None:
        """Photo-z bin edges [K + 1] float64 (redshift); None for a classifier."""
        e = self.info.get("z_bin_edges")
        return None if e is None else np.asarray(e, dtype=np.float64)

    @property
    def preprocessing(self) -> Preprocessing | FluxScale:
        return preprocessing_from_dict(self.info["preprocessing"])

    @property
    def onnx_path(self) -> Path:
        return self.path / "model.onnx"

    def reference_latents(self) -> np.ndarray:
        """float32 [N_ref, D]."""
        return np.load(self.path / "reference_latents.npy")

    def canaries(self) -> dict[str, np.ndarray]:
        """Raw canary cutouts: ``images`` [M, C, H, W] float32 (electrons), ``index`` [M] int64
        (dataset rows), ``labels`` [M] int64, or for photo-z ``z`` [M] float32 (redshift),
        ``ebv`` [M] float32 (E(B−V), mag) and ``magzp`` [M, B] float64 (AB mag of one electron)."""
        with np.load(self.path / "canaries.npz") as f:
            return {k: f[k] for k in f.files}

    def parity_data(self) -> dict[str, np.ndarray]:
        """Held-out preprocessed inputs and torch's outputs for them: ``image`` [P, C, H, W]
        float32 (photo-z also ``ebv`` [P] float32, mag), ``torch_probs`` (photo-z
        ``torch_pdf``) [P, K] float32 and ``torch_latent`` [P, D] float32."""
        with np.load(self.path / "parity.npz") as f:
            return {k: f[k] for k in f.files}


def _check_schema(info: dict, where: Path) -> None:
    for key, kind in REQUIRED.items():
        if key not in info:
            raise BundleError(f"{where}: missing field {key!r}")
        value = info[key]
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not ok or isinstance(value, bool):
            raise BundleError(
                f"{where}: field {key!r} should be {kind.__name__}, got {type(value).__name__}"
            )
    if info["schema_version"] != SCHEMA_VERSION:
        raise BundleError(
            f"{where}: schema_version {info['schema_version']}, this skyguard reads "
            f"{SCHEMA_VERSION}"
        )
    if info["task"] == "photoz":
        edges = info.get("z_bin_edges")
        if not isinstance(edges, list) or len(edges) != info["num_outputs"] + 1:
            raise BundleError(f"{where}: photo-z bundle needs num_outputs + 1 z_bin_edges")
    elif not isinstance(info.get("classes"), list) or len(info["classes"]) != info["num_outputs"]:
        raise BundleError(f"{where}: a classifier bundle needs num_outputs class names")
    try:
        preprocessing_from_dict(info["preprocessing"])
    except (ValueError, TypeError, KeyError) as e:
        raise BundleError(f"{where}: preprocessing: {e}") from None
    missing = [f for f in FILES if f not in info["files"]]
    if missing:
        raise BundleError(f"{where}: no checksum recorded for {missing}")


def read_bundle(path: str | Path, check_files: bool = True) -> Bundle:
    """Open a bundle directory: schema checked and (``check_files``) every file's sha256 compared
    with ``bundle.json``. Raises :class:`BundleError` naming the file and the reason."""
    path = Path(path)
    meta = path / BUNDLE_JSON
    if not meta.is_file():
        raise BundleError(f"{path}: not a bundle ({BUNDLE_JSON} missing)")
    try:
        info = json.loads(meta.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{meta}: not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise BundleError(f"{meta}: expected a JSON object")
    _check_schema(info, meta)
    if check_files:
        for name, digest in info["files"].items():
            f = path / name
            if not f.is_file():
                raise BundleError(f"{f}: file missing")
            if sha256(f) != digest:
                raise BundleError(f"{f}: sha256 differs from {BUNDLE_JSON} (file altered)")
    return Bundle(path, info)


def max_parity_error(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    """Scaled largest differences per output name, for outputs [N, K] (probs/pdf: absolute) and
    [N, D] (latent: relative to max(1, its largest magnitude)); shapes must match."""
    if set(got) != set(ref):
        raise BundleError(f"outputs {sorted(got)}, expected {sorted(ref)}")
    out = {}
    for k, a in ref.items():
        b = got[k]
        if a.shape != b.shape:
            raise BundleError(f"output {k!r}: shape {b.shape}, expected {a.shape}")
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            out[k] = float("inf")  # NaN or inf outputs never pass
            continue
        scale = max(1.0, float(np.abs(a).max())) if k == "latent" else 1.0
        out[k] = float(np.abs(a - b).max() / scale)
    return out


def onnx_session(
    path: str | Path, providers: list[str] | None = None, threads: int = 0, spin: bool = True
) -> InferenceSession:
    """An ONNX Runtime session on the first available of ``providers`` (default: CUDA, then
    CPU); ``threads`` > 0 caps its CPU threads (e.g. for background canaries).

    ``spin=False`` stops the CPU thread pool from busy-waiting between operators. Spinning is
    ONNX Runtime's default and the fastest when the session owns the cores; a session that
    shares them with other busy processes (the service's predictor beside its gateway workers)
    loses the cycles its idle threads spin away (figures: docs/benchmarks.md, serving).
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = providers or ["CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=chosen)


def run_onnx(
    session: InferenceSession, image: np.ndarray, ebv: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The model's outputs for preprocessed images [N, C, H, W] (float32, the bundle's
    preprocessing applied) and, for photo-z, E(B−V) [N] in magnitudes: {'probs' (photo-z:
    'pdf'): [N, K] float32, 'latent': [N, D] float32}."""
    feeds = {"image": np.ascontiguousarray(image, dtype=np.float32)}
    if ebv is not None:
        feeds["ebv"] = np.ascontiguousarray(ebv, dtype=np.float32).reshape(-1, 1)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def check_parity(bundle: Bundle, session: InferenceSession | None = None) -> dict[str, float]:
    """Run the bundle's ONNX model on its stored held-out inputs and compare with the stored torch
    outputs; raises :class:`BundleError` above ``PARITY_TOLERANCE``. Returns the largest absolute
    error per output name. ``session``: the session that will serve (its execution provider is
    the one checked); default a throwaway CPU session."""
    session = session or onnx_session(bundle.onnx_path, ["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    if inputs != bundle.info["inputs"]:
        raise BundleError(f"{bundle.onnx_path}: inputs {inputs}, bundle.json says "
                          f"{bundle.info['inputs']}")  # fmt: skip
    p = bundle.parity_data()
    got = run_onnx(session, p["image"], p.get("ebv"))
    try:
        ref = {k: p[f"torch_{k}"] for k in bundle.info["outputs"]}
        err = max_parity_error(ref, got)
    except (KeyError, BundleError) as e:
        raise BundleError(f"{bundle.onnx_path}: {e}") from None
    worst = max(err.values())
    if not worst <= PARITY_TOLERANCE:
        raise BundleError(
            f"{bundle.onnx_path}: ONNX output differs from torch by {worst:.2e} "
            f"(> {PARITY_TOLERANCE:g}) on the stored held-out inputs: {err}"
        )
    return err
