"""How hard the mocks are: a quick classifier trained on one domain and scored on both.

The seeds' phenomena need mocks in which (a) classes overlap near their boundaries — a simple
classifier on the clean domain is far from perfect — and (b) the second domain's noise costs a
model trained on the first real accuracy (002: ResNet18 72% on Y10 → 43% on Y1). This measures
both with deliberately small, fast models trained on the first domain's train split and scored
on the test split of each domain: a four-layer CNN on the stretched images
(``preprocess.morphology_stretch``), for classification; a gradient-boosted regressor on aperture
magnitudes and colours, for photo-z. It is a floor for what the seeds' networks will do, not a
substitute for them; the figures go into the issue notes and the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.datasets import dataset_paths, open_dataset
from core.preprocess import morphology_stretch


def quick_cnn_accuracy(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    tests: dict[str, tuple[np.ndarray, np.ndarray]],
    epochs: int = 15,
    seed: int = 0,
) -> dict[str, float]:
    """Train a small CNN on stretched [N, B, H, W] images (``train`` = (x, y)); keep the epoch
    with the best ``val`` accuracy; return its accuracy on each test set."""
    import copy

    import torch
    from torch import nn

    torch.manual_seed(seed)

    def block(c_in: int, c_out: int, k: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, k, 2, k // 2), nn.BatchNorm2d(c_out), nn.ReLU()]

    x_train, y_train = train
    net = nn.Sequential(
        *block(x_train.shape[1], 16, 5),
        *block(16, 32, 3),
        *block(32, 64, 3),
        *block(64, 64, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, int(y_train.max()) + 1),
    )

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        """Fraction of images x [N, B, H, W] (stretched, float32) whose argmax is y [N]."""
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(b).argmax(1) for b in torch.from_numpy(x).split(256)])
        return float(np.mean(pred.numpy() == y))

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    best, best_state = -1.0, None
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            # random 90° turns: the classes do not depend on orientation
            xb = torch.rot90(xt[idx], int(torch.randint(4, (1,), generator=gen)), dims=(2, 3))
            opt.zero_grad()
            nn.functional.cross_entropy(net(xb), yt[idx]).backward()
            opt.step()
        score = accuracy(*val)
        if score > best:
            best, best_state = score, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    return {name: accuracy(x, y) for name, (x, y) in tests.items()}


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
                val=ds.indices("val"),
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
        for c in stretches:
            stretched = {n: morphology_stretch(d["images"], c=c) for n, d in data.items()}
            tests = {n: (stretched[n][d["test"]], d["y"][d["test"]]) for n, d in data.items()}
            s0 = stretched[order[0]]
            acc = quick_cnn_accuracy(
                (s0[src["train"]], src["y"][src["train"]]),
                (s0[src["val"]], src["y"][src["val"]]),
                tests,
                seed=seed,
            )
            for name, a in acc.items():
                result["scores"][f"{name} (c={c:g})"] = {
                    "accuracy": a,
                    "n_test": int(len(data[name]["test"])),
                }
        result["model"] = "4-layer CNN with batch norm, best of 15 epochs on the validation split"
    return result


def write(root: str | Path, tasks: list[str], out: str | Path) -> dict:
    figures = {t: measure(root, t) for t in tasks}
    Path(out).write_text(json.dumps(figures, indent=2))
    return figures
