"""Scores the seeds report, computed the way they define them.

Classification (002 Tables 2, 4; 004 §4.1): accuracy, precision / recall / F1 weighted by the
number of true instances of each class, the confusion matrix; for the binary LSBG task also
completeness (recall of LSBGs), purity (precision of LSBGs) and ROC AUC, with bootstrap 95%
intervals over the test set (004 §6.1).

Photo-z (003 §3.1): with δz = (z_phot − z_spec) / (1 + z_spec) and z_phot the mean of the
predicted p(z): bias = mean(δz), σ_MAD = 1.4826 · median|δz − median(δz)|, η = fraction with
|δz| > 0.05.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, weighted precision / recall / F1 and the confusion matrix [K, K] (rows: true
    class; K = ``num_classes``) of predicted classes ``y_pred`` [N] against ``y_true`` [N]."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    p, r, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=range(num_classes), average="weighted", zero_division=0
    )
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f1),
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=range(num_classes)).tolist(),
    }


def binary_scores(y_true: np.ndarray, p_pos: np.ndarray, threshold: float = 0.5) -> dict:
    """004 §4.1 for label 1 = LSBG: accuracy, completeness, purity, ROC AUC from P(LSBG) [N]."""
    y_true, p_pos = np.asarray(y_true), np.asarray(p_pos)
    pred = (p_pos >= threshold).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "completeness": float(skm.recall_score(y_true, pred, zero_division=0)),
        "purity": float(skm.precision_score(y_true, pred, zero_division=0)),
        "auc": float(skm.roc_auc_score(y_true, p_pos)),
    }


def bootstrap_intervals(
    score: Callable[[np.ndarray], dict],
    n: int,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every scalar that ``score(indices)`` returns, resampling
    the ``n`` test objects with replacement ``n_boot`` times (004 §6.1): ``indices`` [N] int64,
    N = ``n``, drawn with replacement."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n_boot):
        for k, v in score(rng.integers(0, n, n)).items():
            if np.isscalar(v):
                draws.setdefault(k, []).append(float(v))
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    # a resample with one class leaves some scores (ROC AUC) undefined: they are skipped
    return {
        k: (float(np.nanpercentile(v, lo)), float(np.nanpercentile(v, hi)))
        for k, v in draws.items()
        if not np.all(np.isnan(v))
    }


def pdf_mean(pdf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """z_phot [N]: the mean of each p(z) [N, B] over the bin centres."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    pdf = np.asarray(pdf, dtype=np.float64)
    return (pdf * centres).sum(1) / pdf.sum(1)


def photoz_scores(z_phot: np.ndarray, z_spec: np.ndarray, outlier: float = 0.05) -> dict:
    """003 §3.1: bias, σ_MAD and outlier fraction η of δz = (z_phot − z_spec) / (1 + z_spec),
    for redshifts z_phot [N] and z_spec [N]."""
    z_phot, z_spec = np.asarray(z_phot, dtype=np.float64), np.asarray(z_spec, dtype=np.float64)
    dz = (z_phot - z_spec) / (1 + z_spec)
    return {
        "bias": float(dz.mean()),
        "sigma_mad": float(1.4826 * np.median(np.abs(dz - np.median(dz)))),
        "eta": float(np.mean(np.abs(dz) > outlier)),
        "n": int(len(dz)),
    }
