"""What the morphology experiment compares: the paired Y10 / Y1 test splits, and the regular and
mmd bundle of each architecture.

A model is named ``ARCH-RECIPE`` (``convnet-regular``, ``convnet-mmd``, ``resnet18-regular``,
``resnet18-mmd``). Its bundle is the one the caller gives (store tag or directory), else the newest
stored ``skyguard-morphology`` bundle with that architecture and recipe *trained on the same
dataset* (survey, domain, seed and size in its bundle.json agree with the data file: then the
seeded split is the same and no training object is in the test split), else one trained now with
the quick recipe and stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from core.bundle import Bundle
from training.data import Split

TASK = "morphology"
ARCHITECTURES = ("convnet", "resnet18")
#: 002's two trainings: regular, and MMD domain adaptation ("DA")
RECIPES = ("regular", "mmd")


@dataclass(frozen=True)
class ModelChoice:
    """A compared model: its name (``ARCH-RECIPE``), its bundle, and where the bundle came from
    (``"given"`` by the caller, found in the ``"store"``, or ``"trained"`` now)."""

    name: str
    architecture: str
    recipe: str
    bundle: Bundle
    origin: Literal["given", "store", "trained"]
    tag: str | None


@dataclass
class PairedTest:
    """The test split of both domains; row i of ``source`` and ``target`` is the same galaxy."""

    source: Split
    target: Split
    domains: tuple[str, str]
    classes: list[str]
    attrs: dict


def model_name(architecture: str, recipe: str) -> str:
    return f"{architecture}-{recipe}"


def split_name(name: str) -> tuple[str, str]:
    """``"convnet-mmd"`` → ``("convnet", "mmd")``; refuses other names."""
    arch, _, recipe = name.partition("-")
    if arch not in ARCHITECTURES or recipe not in RECIPES:
        raise ValueError(
            f"model name {name!r} must be ARCH-RECIPE with ARCH one of {ARCHITECTURES} and "
            f"RECIPE one of {RECIPES}, e.g. 'convnet-mmd'"
        )
    return arch, recipe


def trained_on(info: dict, attrs: dict) -> bool:
    """Whether bundle.json ``info`` records training on the dataset whose source-domain file has
    ``attrs`` (same survey, domain, seed and number of objects: the same split)."""
    d = info.get("datasets", {}).get("source", {})
    key = (d.get("survey"), d.get("domain"), d.get("seed"), d.get("n"))
    return key == (attrs["survey"], attrs["domain"], int(attrs["seed"]), int(attrs["n"]))


def read_test_splits(data_root: str | Path, n_test: int | None = None) -> PairedTest:
    """The morphology test split of both paired domains, preprocessed as the bundles record
    (``data.preprocessing_for``); ``n_test`` keeps the first N objects. Only the test split is
    read: the science datasets are 1 GB a domain."""
    from core.datasets import open_dataset, paired_domains
    from training.data import preprocessing_for

    paths, order, first = paired_domains(data_root, TASK)
    order, classes = order[:2], list(first["classes"])
    splits, attrs = [], []
    for name in order:
        with open_dataset(paths[name]) as ds:
            idx = ds.indices("test")[:n_test]
            raw = np.concatenate([ds.images[idx[i : i + 512]] for i in range(0, len(idx), 512)])
            y = ds.file["labels"][()][idx].astype(np.int64)
            x = preprocessing_for(TASK, ds.attrs)(raw)
            splits.append(Split(x, y, None, idx.astype(np.int64)))
            attrs.append(ds.attrs)
    src, tgt = splits
    if not (np.array_equal(src.index, tgt.index) and np.array_equal(src.y, tgt.y)):
        raise ValueError(
            f"{paths[order[0]]} and {paths[order[1]]} are not paired: their test splits hold "
            "different objects or labels (simulate both domains with one command and seed)"
        )
    return PairedTest(src, tgt, (order[0], order[1]), classes, attrs[0])


def _check_bundle(bundle: Bundle, arch: str, recipe: str, name: str) -> None:
    info = bundle.info
    got = (info.get("task"), info.get("architecture"), info.get("recipe"))
    if got != (TASK, arch, recipe):
        raise ValueError(
            f"bundle {bundle.path} given as {name!r} is task/architecture/recipe "
            f"{'/'.join(map(str, got))}, not {TASK}/{arch}/{recipe}"
        )


def choose_models(
    models: dict[str, str | Path] | None,
    architectures: tuple[str, ...],
    data_root: str | Path,
    attrs: dict,
    *,
    train_missing: bool = True,
    runs_root: str | Path = "out/reports/morphology/runs",
    progress: bool = True,
) -> dict[str, ModelChoice]:
    """The regular and mmd model of every architecture in ``architectures``: from ``models``
    (name → store tag or bundle directory), else the newest stored bundle of that architecture
    and recipe trained on the dataset with source-file ``attrs`` (:func:`trained_on`), else — if
    ``train_missing`` — trained now with the quick recipe into ``runs_root`` and stored.

    Such a run starts afresh (``resume=False``) in a directory of its own, never ``skyguard
    train``'s ``out/runs``: run directories are not named by dataset, so resuming there could
    continue a checkpoint trained on other data, or overwrite the user's own run."""
    from core.bundle import read_bundle
    from core.store import list_models, load

    given = dict(models or {})
    for name in given:
        if split_name(name)[0] not in architectures:
            raise ValueError(
                f"bundle {name!r} given, but its architecture is not among those compared "
                f"({', '.join(architectures)}); add it with --arch"
            )
    stored: list[dict] | None = None
    out: dict[str, ModelChoice] = {}
    for arch in architectures:
        for recipe in RECIPES:
            name = model_name(arch, recipe)
            if name in given:
                bundle = load(given[name])
                _check_bundle(bundle, arch, recipe, name)
                out[name] = ModelChoice(name, arch, recipe, bundle, "given", str(given[name]))
                continue
            if stored is None:
                stored = list_models(TASK)
            for row in stored:  # newest first
                lab = row["labels"]
                if (lab.get("architecture"), lab.get("recipe")) != (arch, recipe):
                    continue
                info = read_bundle(row["path"], check_files=False).info
                if (info["architecture"], info["recipe"]) == (arch, recipe) and trained_on(
                    info, attrs
                ):
                    bundle = load(row["tag"])
                    out[name] = ModelChoice(name, arch, recipe, bundle, "store", row["tag"])
                    break
            else:
                if not train_missing:
                    raise FileNotFoundError(
                        f"no stored {TASK} {arch}/{recipe} bundle trained on {data_root}; train "
                        f"one with 'skyguard train {TASK} --recipe {recipe} --arch {arch} "
                        f"--data {data_root}' or give one with --bundle {name}=TAG"
                    )
                from training.runs import train

                if progress:
                    print(f"no stored {name} bundle for {data_root}: training the quick recipe")
                res = train(
                    TASK,
                    recipe,
                    quick=True,
                    data_root=data_root,
                    out_root=runs_root,
                    progress=progress,
                    resume=False,
                    architecture=arch,
                )
                out[name] = ModelChoice(name, arch, recipe, load(res.bundle), "trained", res.tag)
    return out
