"""Export a trained network as a model bundle (``core.bundle``) and evaluate it.

``write_bundle`` does, in order: score the model on the held-out test split of the source *and*
target domains (``evaluate``); export ONNX (opset 18, dynamic batch axis, outputs ``probs`` or
``pdf`` and ``latent``); check ONNX Runtime against torch on held-out inputs (within
``bundle.PARITY_TOLERANCE``, else :class:`~core.bundle.BundleError`); write the reference
latents (validation split of the served domain — the source, or the target for ``finetune`` —
held out from the weights and disjoint from the test split that serves as traffic in tests), the
canary set (correctly answered test cutouts of the served domain, raw, balanced over classes), ``weights.pt``, and ``bundle.json`` with every file's sha256.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from core.bundle import (
    BUNDLE_JSON,
    FILES,
    PARITY_TOLERANCE,
    SCHEMA_VERSION,
    BundleError,
    max_parity_error,
    onnx_session,
    read_bundle,
    run_onnx,
    sha256,
)
from core.datasets import open_dataset

from . import __version__
from .data import DomainData, TaskData
from .metrics import (
    binary_scores,
    bootstrap_intervals,
    classification_scores,
    pdf_mean,
    photoz_scores,
)
from .recipes import Recipe
from .trainer import input_bounds, predict

ONNX_OPSET = 18


class _Exported(nn.Module):
    """Wraps a SkyNet so ONNX gets the softmax output and the latent in one graph."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor, *ebv: Tensor) -> tuple[Tensor, Tensor]:
        """Preprocessed images [N, C, H, W] (and E(B−V) [N, 1], mag) → probabilities [N, K]
        and latent [N, D]."""
        latent = self.net.features(image, *ebv)
        return torch.softmax(self.net.head(latent), dim=1), latent


class _ExportedEbv(_Exported):
    def forward(self, image: Tensor, ebv: Tensor) -> tuple[Tensor, Tensor]:  # named for ONNX
        """Images [N, C, H, W] and E(B−V) [N, 1] (mag) → p(z) [N, K] and latent [N, D]."""
        return super().forward(image, ebv)


def output_name(task: str) -> str:
    return "pdf" if task == "photoz" else "probs"


def export_onnx(model: nn.Module, task: str, path: Path) -> Path:
    """Write ``model`` as ONNX (opset 18, dynamic batch) with inputs ``image`` (and ``ebv``)
    and outputs ``probs``/``pdf`` and ``latent``."""
    model = model.cpu().eval()
    wrapper = (_ExportedEbv if model.takes_ebv else _Exported)(model).eval()
    example = model.example_inputs(2)
    names = ["image", "ebv"][: len(example)]
    batch = torch.export.Dim("batch", min=1)
    shapes = {n: {0: batch} for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            input_names=names,
            output_names=[output_name(task), "latent"],
            dynamic_shapes=shapes,
            opset_version=ONNX_OPSET,
            dynamo=True,
            verbose=False,
            external_data=False,
        )
    return path


def evaluate(model: nn.Module, data: TaskData, batch_size: int = 256, n_boot: int = 1000) -> dict:
    """Scores on the test split of the source and the target domain (``metrics``).

    Classification: accuracy, weighted precision/recall/F1, confusion; lsbg also completeness,
    purity, ROC AUC and bootstrap 95% intervals. Photo-z: bias, σ_MAD, η with z_phot the p(z)
    mean (003 §3.1).
    """
    out = {}
    for role, dom in (("source", data.source), ("target", data.target)):
        split = dom.splits["test"]
        probs, _ = predict(model, split, batch_size)
        if data.kind == "photoz":
            s = photoz_scores(pdf_mean(probs, data.z_edges), split.y)
        else:
            s = classification_scores(split.y, probs.argmax(1), data.num_outputs)
            if data.task == "lsbg":
                s.update(binary_scores(split.y, probs[:, 1]))

                def boot(idx: np.ndarray, y: np.ndarray = split.y, p: np.ndarray = probs) -> dict:
                    """Scores of one resample ``idx`` [N] (with replacement) of labels y [N], probs p [N, 2]."""
                    with warnings.catch_warnings():  # one-class resamples: AUC is NaN, skipped
                        warnings.simplefilter("ignore")
                        return binary_scores(y[idx], p[idx, 1])

                s["ci95"] = bootstrap_intervals(boot, len(split), n_boot=n_boot, seed=0)
            s["n"] = int(len(split))
        out[role] = {"domain": dom.name, **s}
    return out


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
            text=True, cwd=Path(__file__).parent,
        ).stdout.strip()  # fmt: skip
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def served_domain(data: TaskData, recipe: Recipe) -> DomainData:
    """The domain a bundle serves: the source, or the target for a fine-tuned model."""
    return data.target if recipe.recipe == "finetune" else data.source


def _canaries(
    model: nn.Module, data: TaskData, dom: DomainData, n: int, seed: int
) -> dict[str, np.ndarray]:
    """Raw test cutouts of the served domain that the model answers correctly (photo-z:
    |δz| ≤ 0.05), balanced over classes, seeded; the canary runner attacks these."""
    split = dom.splits["test"]
    probs, _ = predict(model, split)
    rng = np.random.default_rng(seed)
    if data.kind == "photoz":
        zp = pdf_mean(probs, data.z_edges)
        good = np.flatnonzero(np.abs(zp - split.y) / (1 + split.y) <= 0.05)
        pick = rng.permutation(good)[:n]
    else:
        ok = probs.argmax(1) == split.y
        per = max(1, n // data.num_outputs)
        pick = np.concatenate(
            [
                rng.permutation(np.flatnonzero(ok & (split.y == c)))[:per]
                for c in range(data.num_outputs)
            ]
        )
    pick = np.sort(pick)
    index = split.index[pick]
    with open_dataset(dom.path) as ds:
        raw = np.stack([ds.images[int(i)] for i in index]).astype(np.float32)
    out = {"images": raw, "index": index.astype(np.int64)}
    if data.kind == "photoz":
        out["z"] = split.y[pick].astype(np.float32)
        out["ebv"] = split.ebv[pick].astype(np.float32)
        zp = np.asarray(dom.attrs["magzp"], dtype=np.float64)
        out["magzp"] = np.repeat(zp[None], len(pick), axis=0)
    else:
        out["labels"] = split.y[pick].astype(np.int64)
    return out


def _parity(
    model: nn.Module, data: TaskData, dom: DomainData, onnx_path: Path, n: int
) -> tuple[dict, dict]:
    split = dom.splits["test"]
    sel = np.arange(min(n, len(split)))
    probs, latent = predict(model, split.subset(sel))
    name = output_name(data.task)
    inputs = {"image": split.x[sel]}
    if split.ebv is not None:
        inputs["ebv"] = split.ebv[sel]
    got = run_onnx(
        onnx_session(onnx_path, ["CPUExecutionProvider"]), inputs["image"], inputs.get("ebv")
    )
    ref = {name: probs, "latent": latent}
    err = max_parity_error(ref, got)
    if not max(err.values()) <= PARITY_TOLERANCE:
        raise BundleError(
            f"{onnx_path}: ONNX differs from torch by {err} (> {PARITY_TOLERANCE:g}) at export"
        )
    stored = {**inputs, **{f"torch_{k}": v for k, v in ref.items()}}
    return stored, err


def write_bundle(
    model: nn.Module,
    recipe: Recipe,
    data: TaskData,
    out: str | Path,
    training: dict | None = None,
) -> Path:
    """Evaluate ``model`` and write its bundle to directory ``out`` (replaced if present).

    ``training``: facts about the run (epochs, best epoch, seconds, device) for ``bundle.json``.
    Returns the bundle path, re-read and checked (schema, checksums, parity).
    """
    out = Path(out)
    model = model.cpu().eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))  # same file system: rename
    try:
        metrics = evaluate(model, data, n_boot=recipe.n_boot)
        dom = served_domain(data, recipe)
        export_onnx(model, data.task, tmp / "model.onnx")
        parity, parity_err = _parity(model, data, dom, tmp / "model.onnx", recipe.n_parity)
        np.savez(tmp / "parity.npz", **parity)
        torch.save(model.state_dict(), tmp / "weights.pt")
        ref_split = dom.splits["val"]
        ref_split = ref_split.subset(np.arange(min(recipe.n_reference, len(ref_split))))
        _, ref_latents = predict(model, ref_split)
        np.save(tmp / "reference_latents.npy", ref_latents.astype(np.float32))
        np.savez_compressed(
            tmp / "canaries.npz", **_canaries(model, data, dom, recipe.n_canaries, recipe.seed)
        )
        attrs = dom.attrs
        bounds = input_bounds(data.task)
        info = {
            "schema_version": SCHEMA_VERSION,
            "name": f"skyguard-{data.task}",
            "task": data.task,
            "architecture": recipe.architecture,
            "recipe": recipe.recipe,
            "hyperparameters": recipe.to_dict(),
            "classes": data.classes,
            "z_bin_edges": None if data.z_edges is None else [float(e) for e in data.z_edges],
            "bands": list(attrs["bands"]),
            "input_shape": list(model.input_shape),
            "pixel_scale_arcsec": float(attrs["pixel_scale_arcsec"]),
            "survey": attrs.get("survey"),
            "bunit": attrs.get("bunit", "electron"),
            "preprocessing": dom.preprocessing.to_dict(),
            "served_domain": dom.name,
            "input_range": None if bounds is None else list(bounds),
            "latent_dim": int(model.latent_dim),
            "num_outputs": int(model.num_outputs),
            "inputs": ["image", "ebv"] if model.takes_ebv else ["image"],
            "outputs": [output_name(data.task), "latent"],
            "onnx": {
                "opset": ONNX_OPSET,
                "parity_max_error": parity_err,
                "parity_tolerance": PARITY_TOLERANCE,
            },  # fmt: skip
            "metrics": metrics,
            "reference_latents": {
                "n": int(len(ref_latents)),
                "domain": dom.name,
                "split": "val",
            },  # fmt: skip
            "training": training or {},
            "datasets": {
                role: {
                    "domain": d.name,
                    "path": str(d.path),
                    "survey": d.attrs.get("survey"),
                    "seed": int(d.attrs.get("seed", -1)),
                    "n": int(d.attrs.get("n", 0)),
                    "code_version": str(d.attrs.get("code_version")),
                    "n_train": len(d.splits["train"]),
                    "n_val": len(d.splits["val"]),
                    "n_test": len(d.splits["test"]),
                }
                for role, d in (("source", data.source), ("target", data.target))
            },
            "seed": int(recipe.seed),
            "git_revision": _git_revision(),
            "skyguard_version": __version__,
            "torch_version": torch.__version__,
            "files": {f: sha256(tmp / f) for f in FILES},
        }
        (tmp / BUNDLE_JSON).write_text(json.dumps(info, indent=1))
        from core.bundle import check_parity

        check_parity(read_bundle(tmp))  # the new bundle is checked before it replaces anything
        tmp.chmod(0o755)
        old = out.with_name(out.name + ".old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
