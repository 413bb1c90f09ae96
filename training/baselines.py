"""The classical baselines of 004 §4.2: an RBF support-vector machine and a random forest on the
SourceExtractor-style features of ``training.features``.

Cutouts with no detected candidate keep NaN features; they are filled with the training medians
and flagged by an extra 0/1 column, so every object gets a prediction (as every LSBG candidate
must). Returns P(label 1) for each test object and the 004 §4.1 scores.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .metrics import binary_scores

Baseline = Literal["svm", "random_forest"]


def _complete(x: np.ndarray, medians: np.ndarray) -> np.ndarray:
    missing = np.isnan(x).any(axis=1, keepdims=True)
    return np.hstack([np.where(np.isnan(x), medians, x), missing.astype(np.float64)])


def fit_predict(
    kind: Baseline, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int = 0
) -> np.ndarray:
    """P(label 1) [M] for the test features [M, F] from a model fitted on [N, F], labels [N]."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    medians = np.nanmedian(x_train, axis=0)
    medians = np.where(np.isnan(medians), 0.0, medians)
    if kind == "svm":
        # Platt-calibrated probabilities (sklearn's replacement for SVC(probability=True))
        svm = CalibratedClassifierCV(SVC(kernel="rbf", random_state=seed), ensemble=False)
        model = make_pipeline(StandardScaler(), svm)
    elif kind == "random_forest":
        model = RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1)
    else:
        raise ValueError(f"baseline must be 'svm' or 'random_forest', got {kind!r}")
    model.fit(_complete(x_train, medians), y_train)
    return model.predict_proba(_complete(x_test, medians))[:, 1]


def evaluate(x_train, y_train, x_test, y_test, seed: int = 0) -> dict[str, dict]:
    """004 Table 2 columns for both baselines: accuracy, completeness, purity, AUC."""
    return {
        kind: binary_scores(y_test, fit_predict(kind, x_train, y_train, x_test, seed))
        for kind in ("svm", "random_forest")
    }


def compare(
    root: str, n_max: int | None = None, seed: int = 0, n_boot: int = 1000
) -> dict[str, dict]:
    """004 Table 2 for the feature baselines on the lsbg mocks under ``root``: features measured
    with ``sep`` on the source (DES-like) train split, both baselines fitted there and scored on
    the test split of each domain, with bootstrap 95% intervals (004 §6.1).

    Returns {domain: {"svm": scores, "random_forest": scores}} (scores as
    ``metrics.binary_scores`` plus ``ci95``).
    """
    import warnings

    from core.datasets import dataset_paths, open_dataset

    from .features import measure_all
    from .metrics import bootstrap_intervals

    paths = {p.stem: p for p in dataset_paths(root, "lsbg")}
    feats, labels, order = {}, {}, None
    for name, path in paths.items():
        with open_dataset(path) as ds:
            order = order or list(ds.attrs["paired_domains"])
            attrs, y = ds.attrs, ds.file["labels"][()]
            for split in ("train", "test"):
                idx = ds.indices(split)
                if n_max is not None:
                    idx = idx[: max(2, int(round(n_max * len(idx) / len(y))))]
                images = ds.images[idx]
                feats[name, split] = measure_all(
                    images, np.asarray(attrs["magzp"]), float(attrs["pixel_scale_arcsec"])
                )
                labels[name, split] = y[idx]
    src = order[0]
    out: dict[str, dict] = {}
    for name in order:
        y_test = labels[name, "test"]
        out[name] = {}
        for kind in ("svm", "random_forest"):
            p = fit_predict(
                kind, feats[src, "train"], labels[src, "train"], feats[name, "test"], seed
            )
            s = binary_scores(y_test, p)

            def boot(idx: np.ndarray, y=y_test, p=p) -> dict:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return binary_scores(y[idx], p[idx])

            s["ci95"] = bootstrap_intervals(boot, len(y_test), n_boot=n_boot, seed=seed)
            s["n_test"] = int(len(y_test))
            out[name][kind] = s
    return out
