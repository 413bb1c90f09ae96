"""How hard the mocks are: a quick classifier trained on one domain and scored on both.

The seeds' phenomena need mocks in which (a) classes overlap near their boundaries — a simple
classifier on the clean domain is far from perfect — and (b) the second domain's noise costs a
model trained on the first real accuracy (002: ResNet18 72% on Y10 → 43% on Y1). This measures
both with a deliberately simple, fast model (logistic regression on 4×-binned, arcsinh-stretched
pixels; for photo-z a gradient-boosted regressor on aperture colours), trained on the first
domain's train split and scored on the test split of each domain. It is a floor for what a CNN
will do, not a substitute for it; the figures go into the issue notes and the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..datasets import dataset_paths, open_dataset
from ..preprocess import morphology_stretch


def _features(images: np.ndarray, c: float, bin_: int = 4) -> np.ndarray:
    """[N, F] stretched (arcsinh softening ``c``), binned pixels of [N, B, H, W] images."""
    x = morphology_stretch(images, c=c)
    n, b, h, w = x.shape
    x = x[:, :, : h // bin_ * bin_, : w // bin_ * bin_].reshape(
        n, b, h // bin_, bin_, w // bin_, bin_
    )
    return x.mean(axis=(3, 5)).reshape(n, -1)


def _aperture_colours(images: np.ndarray, magzp: np.ndarray) -> np.ndarray:
    """[N, B] aperture magnitudes (r < 2″ at 0.2″/px) and [N, B−1] colours, as features."""
    n, b, h, w = images.shape
    yy, xx = np.mgrid[:h, :w]
    ap = (np.hypot(yy - h / 2, xx - w / 2) < 10).astype(np.float32)
    flux = np.maximum((images * ap).sum(axis=(2, 3)), 1.0)
    mags = magzp[None, :] - 2.5 * np.log10(flux)
    return np.hstack([mags, np.diff(mags, axis=1)])


def measure(
    root: str | Path, task: str, seed: int = 0, stretches: tuple[float, ...] = (0.01,)
) -> dict:
    """Train on the first domain of ``paired_domains``, score on every domain's test split.

    Classification tasks are measured once per arcsinh scale ``c`` [1/electron] in ``stretches``
    (``preprocess.morphology_stretch``). Returns the figures as a dict.
    """
    paths = {p.stem: p for p in dataset_paths(root, task)}
    if len(paths) < 2:
        raise FileNotFoundError(
            f"need both domains of {task!r} under {root}, found {sorted(paths)}"
        )
    with open_dataset(next(iter(paths.values()))) as ds:
        order = list(ds.attrs["paired_domains"])
    data = {}
    for name in order:
        with open_dataset(paths[name]) as ds:
            images = ds.images[()]
            y = ds.file["labels"][()] if "labels" in ds.file else ds.file["z"][()]
            data[name] = dict(
                images=images,
                y=y,
                train=ds.indices("train"),
                test=ds.indices("test"),
                magzp=np.asarray(ds.attrs["magzp"]),
                ebv=ds.file["ebv"][()] if "ebv" in ds.file else None,
            )
    src = data[order[0]]
    result: dict = {
        "task": task,
        "trained_on": order[0],
        "n_train": int(len(src["train"])),
        "scores": {},
    }
    if task == "photoz":
        from sklearn.ensemble import HistGradientBoostingRegressor

        def feats(d):
            return np.hstack([_aperture_colours(d["images"], d["magzp"]), d["ebv"][:, None]])

        model = HistGradientBoostingRegressor(random_state=seed).fit(
            feats(src)[src["train"]], src["y"][src["train"]]
        )
        for name, d in data.items():
            zp = model.predict(feats(d)[d["test"]])
            zs = d["y"][d["test"]]
            dz = (zp - zs) / (1 + zs)
            result["scores"][name] = {
                "bias": float(np.mean(dz)),
                "sigma_mad": float(1.4826 * np.median(np.abs(dz - np.median(dz)))),
                "eta": float(np.mean(np.abs(dz) > 0.05)),
            }
        result["model"] = "HistGradientBoostingRegressor on aperture mags + colours + E(B−V)"
    else:
        from sklearn.linear_model import LogisticRegression

        for c in stretches:
            model = LogisticRegression(max_iter=2000, C=0.1)
            model.fit(_features(src["images"][src["train"]], c), src["y"][src["train"]])
            for name, d in data.items():
                pred = model.predict(_features(d["images"][d["test"]], c))
                result["scores"][f"{name} (c={c:g})"] = {
                    "accuracy": float(np.mean(pred == d["y"][d["test"]])),
                    "n_test": int(len(d["test"])),
                }
        result["model"] = "LogisticRegression(C=0.1) on 4×4-binned arcsinh-stretched pixels"
    return result


def write(root: str | Path, tasks: list[str], out: str | Path) -> dict:
    figures = {t: measure(root, t) for t in tasks}
    Path(out).write_text(json.dumps(figures, indent=2))
    return figures
