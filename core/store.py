"""Bundles in the BentoML model store (``bentoml.models.create``; ``bentoml.onnx`` is deprecated).

A bundle is stored as the BentoML model ``skyguard-<task>``, one version per training run (a
``finetune`` bundle, which serves the *target* domain, as ``skyguard-<task>-finetune``, so that it
never becomes the task's default by being the newest), with
labels (task, architecture, recipe) and ``bundle.json``'s headline facts as metadata; the model's
directory holds the bundle files unchanged, so ``core.bundle.read_bundle(model.path)`` checks
it like any other bundle. The store lives where BentoML puts it (``$BENTOML_HOME``, by default
``~/bentoml``; the Makefile points it at the git-ignored ``models/bentoml``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from core.bundle import Bundle, read_bundle


def model_name(task: str) -> str:
    return f"skyguard-{task}"


def _headline(info: dict) -> dict:
    m = info.get("metrics", {})
    keys = ("accuracy", "f1", "auc", "bias", "sigma_mad", "eta")
    return {
        f"{role}_{k}": round(float(v), 6)
        for role in ("source", "target")
        for k, v in m.get(role, {}).items()
        if k in keys and isinstance(v, int | float)
    }


def save_bundle(path: str | Path) -> str:
    """Copy a checked bundle directory into the store; returns its tag ``name:version``."""
    import bentoml

    bundle = read_bundle(path)
    info = bundle.info
    labels = {
        "task": info["task"],
        "architecture": info["architecture"],
        "recipe": info["recipe"].replace("+", "-"),
    }
    metadata = {
        "latent_dim": info["latent_dim"],
        "git_revision": info["git_revision"],
        "seed": info["seed"],
        **_headline(info),
    }
    name = model_name(info["task"]) + ("-finetune" if info["recipe"] == "finetune" else "")
    with bentoml.models.create(name, labels=labels, metadata=metadata) as m:
        for f in Path(path).iterdir():
            if f.is_file():
                shutil.copy2(f, Path(m.path) / f.name)
    return str(m.tag)


def bundle_path(tag: str) -> Path:
    """Directory of the stored model ``tag`` (``name:version`` or ``name:latest``; a bare task
    name means ``skyguard-<task>:latest``)."""
    import bentoml

    if ":" not in tag and not tag.startswith("skyguard-"):
        tag = f"{model_name(tag)}:latest"
    try:
        return Path(bentoml.models.get(tag).path)
    except bentoml.exceptions.NotFound:
        raise FileNotFoundError(
            f"no model {tag!r} in the BentoML store; train one with "
            "'skyguard train TASK --recipe regular --quick'"
        ) from None


def load(tag_or_path: str | Path, check_files: bool = True) -> Bundle:
    """A bundle from a directory, or from the store by tag."""
    p = Path(tag_or_path)
    if p.is_dir():
        return read_bundle(p, check_files)
    return read_bundle(bundle_path(str(tag_or_path)), check_files)


def list_models(task: str | None = None) -> list[dict]:
    """Stored skyguard bundles, newest first: tag, labels, metadata, creation time."""
    import bentoml

    rows = []
    for m in bentoml.models.list():
        if not m.tag.name.startswith("skyguard-"):
            continue
        if task and m.tag.name != model_name(task):
            continue
        rows.append(
            {
                "tag": str(m.tag),
                "created": m.info.creation_time.isoformat(timespec="seconds"),
                "labels": dict(m.info.labels),
                "metadata": dict(m.info.metadata),
                "path": m.path,
            }
        )
    return sorted(rows, key=lambda r: r["created"], reverse=True)
