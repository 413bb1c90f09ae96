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
