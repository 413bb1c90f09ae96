"""The classical baselines of 004 §4.2: an RBF support-vector machine and a random forest on the
SourceExtractor-style features of ``training.features``.

Cutouts with no detected candidate keep NaN features; they are filled with the training medians
and flagged by an extra 0/1 column, so every object gets a prediction (as every LSBG candidate
must). Returns P(label 1) for each test object and the 004 §4.1 scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .metrics import binary_scores

Baseline = Literal["svm", "random_forest"]
#: 004 §4.2's SVM grid search: C and γ of the RBF kernel by 5-fold cross-validation on the
#: training split; 004 found C = 10⁴, γ = 0.001, both inside this grid. Features are standardised
#: first (004 does not say; unscaled magnitudes and colours would make γ meaningless).
SVM_GRID = {"C": (1.0, 10.0, 1e2, 1e3, 1e4, 1e5), "gamma": (1e-4, 1e-3, 1e-2, 1e-1)}
CV_FOLDS = 5
#: 004 §4.2's random forest: 100 trees, min_samples_split = 10.
RF_PARAMS = {"n_estimators": 100, "min_samples_split": 10}


def _complete(x: np.ndarray, medians: np.ndarray) -> np.ndarray:
    missing = np.isnan(x).any(axis=1, keepdims=True)
    return np.hstack([np.where(np.isnan(x), medians, x), missing.astype(np.float64)])


@dataclass
class FittedBaseline:
    """A fitted baseline: ``predict_proba(x [M, F]) -> P(label 1) [M]``, and the hyper-parameters
    it was fitted with (for the SVM, those the cross-validation chose, with its accuracy)."""

    kind: Baseline
    model: object
    medians: np.ndarray
    params: dict

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(label 1: LSBG) [M] float64 for features x [M, F] (NaN where nothing was detected)."""
        return self.model.predict_proba(_complete(x, self.medians))[:, 1]


def fit(kind: Baseline, x_train: np.ndarray, y_train: np.ndarray, seed: int = 0) -> FittedBaseline:
    """The 004 §4.2 baseline ``kind`` fitted on features [N, F] (NaN where nothing was detected)
    and labels [N]: the RBF SVM with C and γ chosen by ``CV_FOLDS``-fold cross-validation over
    ``SVM_GRID`` (accuracy), then Platt-calibrated (sklearn's replacement for
    ``SVC(probability=True)``); or the random forest of ``RF_PARAMS``."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if kind not in ("svm", "random_forest"):
        raise ValueError(f"baseline must be 'svm' or 'random_forest', got {kind!r}")
    medians = np.nanmedian(x_train, axis=0)
    medians = np.where(np.isnan(medians), 0.0, medians)
    x = _complete(x_train, medians)
    if kind == "random_forest":
        model = RandomForestClassifier(**RF_PARAMS, random_state=seed, n_jobs=1).fit(x, y_train)
        return FittedBaseline(kind, model, medians, dict(RF_PARAMS))
    folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed)
    grid = {f"svc__{k}": list(v) for k, v in SVM_GRID.items()}
    search = GridSearchCV(make_pipeline(StandardScaler(), SVC(kernel="rbf")), grid, cv=folds,
                          scoring="accuracy", n_jobs=1).fit(x, y_train)  # fmt: skip
    best = {k.removeprefix("svc__"): v for k, v in search.best_params_.items()}
    svm = CalibratedClassifierCV(SVC(kernel="rbf", random_state=seed, **best), ensemble=False)
    model = make_pipeline(StandardScaler(), svm).fit(x, y_train)
    params = {**best, "cv_accuracy": float(search.best_score_), "cv_folds": CV_FOLDS}
    return FittedBaseline(kind, model, medians, params)


def fit_predict(
    kind: Baseline, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int = 0
) -> np.ndarray:
    """P(label 1) [M] for the test features [M, F] from ``fit(kind, x_train, y_train, seed)``."""
    return fit(kind, x_train, y_train, seed).predict_proba(x_test)


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
    ``metrics.binary_scores`` plus ``ci95``, ``n_test`` and the fitted ``params``).
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
    fitted = {
        k: fit(k, feats[src, "train"], labels[src, "train"], seed) for k in ("svm", "random_forest")
    }
    out: dict[str, dict] = {}
    for name in order:
        y_test = labels[name, "test"]
        out[name] = {}
        for kind, model in fitted.items():
            p = model.predict_proba(feats[name, "test"])
            s = binary_scores(y_test, p)

            def boot(idx: np.ndarray, y: np.ndarray = y_test, p: np.ndarray = p) -> dict:
                """Scores of one resample ``idx`` [N] (with replacement) of labels y [N], P(LSBG) p [N]."""
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return binary_scores(y[idx], p[idx])

            s["ci95"] = bootstrap_intervals(boot, len(y_test), n_boot=n_boot, seed=seed)
            s["n_test"] = int(len(y_test))
            s["params"] = model.params
            out[name][kind] = s
    return out
