"""sep features of the central object, and the SVM / random-forest baselines of 004 §4.2."""

import galsim
import numpy as np
import pytest

from training.baselines import evaluate, fit_predict
from training.features import feature_names, measure

MAGZP = np.array([30.0, 30.0, 30.0])


def _cutout(flux=(2e4, 4e4, 6e4), q=0.5, hlr=1.2, noise=3.0, seed=0):
    """[3, 64, 64] elliptical exponential at the centre (0.263″ pixels) plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    gal = galsim.Exponential(half_light_radius=hlr).shear(q=q, beta=0.3 * galsim.radians)
    bands = [gal.withFlux(f).drawImage(nx=64, ny=64, scale=0.263).array for f in flux]
    return np.stack(bands) + rng.normal(0, noise, (3, 64, 64))


def test_features_of_a_known_galaxy():
    f = dict(zip(feature_names(["g", "r", "z"]), measure(_cutout(), MAGZP, 0.263), strict=True))
    assert f["ellipticity"] == pytest.approx(0.5, abs=0.08)
    # MAG_AUTO holds ≳ 94% of an exponential's light: within 0.08 mag of the truth
    for b, flux in zip("grz", (2e4, 4e4, 6e4), strict=True):
        assert f[f"mag_auto_{b}"] == pytest.approx(30 - 2.5 * np.log10(flux), abs=0.08)
    assert f["g-r"] == pytest.approx(2.5 * np.log10(2), abs=0.02)
    assert f["mu_central_r"] < f["mu_eff_r"] < f["mu_mean_r"] + 1.0  # brighter in the core


def test_empty_cutout_gives_nan_features():
    blank = np.random.default_rng(1).normal(0, 3.0, (3, 64, 64))
    assert np.isnan(measure(blank, MAGZP, 0.263)).all()


def test_baselines_separate_separable_features_and_survive_missing_ones():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = rng.normal(size=(400, 5)) + y[:, None] * 1.5
    x[::17, :] = np.nan  # undetected candidates
    scores = evaluate(x[:300], y[:300], x[300:], y[300:])
    for kind in ("svm", "random_forest"):
        assert scores[kind]["auc"] > 0.9 and scores[kind]["accuracy"] > 0.8
    with pytest.raises(ValueError, match="baseline must be"):
        fit_predict("knn", x[:10], y[:10], x[:2])


def test_baselines_have_004s_hyper_parameters():
    """RF: 100 trees, min_samples_split 10 (004 §4.2); SVM: C and γ the 5-fold search found best,
    checked against an independent cross-validation of every grid point."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from training.baselines import SVM_GRID, fit

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 160)
    x = rng.normal(size=(160, 4)) + y[:, None] * np.array([1.0, 0.5, 0.0, 0.0])
    rf = fit("random_forest", x, y)
    assert (rf.model.n_estimators, rf.model.min_samples_split) == (100, 10)
    svm = fit("svm", x, y, seed=3)
    folds = StratifiedKFold(5, shuffle=True, random_state=3)
    x_all = np.hstack([x, np.zeros((len(x), 1))])  # the missing-feature flag column
    acc = {
        (c, g): cross_val_score(
            make_pipeline(StandardScaler(), SVC(C=c, gamma=g)), x_all, y, cv=folds
        ).mean()  # fmt: skip
        for c in SVM_GRID["C"]
        for g in SVM_GRID["gamma"]
    }
    assert svm.params["cv_accuracy"] == pytest.approx(max(acc.values()))
    assert acc[svm.params["C"], svm.params["gamma"]] == pytest.approx(max(acc.values()))
