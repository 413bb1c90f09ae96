"""Canary runs on real (tiny) bundles, scored by their ONNX sessions; the drift watch's schedule."""

import numpy as np
import pytest

from monitors.canaries import CanaryConfig, CanaryRunner
from monitors.watch import DriftWatch, WatchConfig


@pytest.fixture(scope="module")
def runners(bundles):
    from training.bundle import onnx_session
    from training.store import load

    def make(task: str, **kw) -> CanaryRunner:
        b = load(f"skyguard-{task}")
        return CanaryRunner(b, onnx_session(b.onnx_path, ["CPUExecutionProvider"], 1),
                            CanaryConfig(population=8, generations=3, **kw))  # fmt: skip

    return make


@pytest.mark.parametrize("task", ["morphology", "lsbg", "photoz"])
def test_a_zero_budget_attack_flips_nothing(runners, task):
    """ε = 0 leaves the canaries as they are: the served model still answers them all rightly
    (they were picked as correctly answered, and ONNX agrees with torch)."""
    r = runners(task, eps=0.0, alpha=1e-9)
    for attack in ("fgsm", "pgd_linf"):
        res = r.run(attack)
        assert res.outcome == "ok" and res.n == len(r.x) > 0
        assert res.flipped == 0 and res.accuracy_under_attack == 1.0
        assert np.isnan(res.median_latent_distance)


@pytest.mark.parametrize("task", ["morphology", "photoz"])
def test_a_strong_attack_flips_and_the_flips_are_the_served_models(runners, task):
    """A large ε flips canaries; each flip was read from the ONNX session's answer, and the
    flipped images moved in its latent space."""
    r = runners(task, eps_scale=50.0 if task == "morphology" else 20.0)
    res = r.run("pgd_linf")
    assert res.flipped > 0, res
    assert res.flip_ratio == pytest.approx(res.flipped / res.n)
    assert res.median_latent_distance > 0 and 1 <= res.median_steps <= r.n_iter
    assert res.model.startswith(f"skyguard-{task}:")


def test_onepixel_canary_runs_on_the_onnx_session(runners):
    r = runners("morphology")
    res = r.run("onepixel")
    assert res.outcome == "ok" and res.n == len(r.x)
    assert 0.0 <= res.flip_ratio <= 1.0
    with pytest.raises(ValueError, match="classifiers"):
        runners("photoz").run("onepixel")
    with pytest.raises(ValueError, match="attack must be one of"):
        r.run("cw")


def test_a_run_stops_at_its_budget(runners):
    r = runners("morphology", budget_s=1e-9, batch=1)
    res = r.run("fgsm")
    assert res.outcome == "over_budget" and res.n <= 1


def test_the_watch_tests_when_a_window_is_full_and_enough_is_new(rng):
    ref = rng.normal(size=(60, 3))
    w = DriftWatch("lsbg", ref, WatchConfig(window=20, every=10, keep=40, n_permutations=49,
                                            online_window=4, ert=20))  # fmt: skip
    w.calibrate_online()
    assert w.online is not None
    w.add(rng.normal(size=(15, 3)))
    assert not w.due() and w.fill == 0.75
    w.add(rng.normal(size=(5, 3)))
    assert w.due()
    first = w.test()
    assert not w.due() and set(first) >= {"is_drift", "p_value", "statistic", "threshold"}
    alarms = w.add(rng.normal(size=(10, 3)) + 3.0)
    assert w.due() and alarms > 0 and w.status()["online_alarms"] == alarms
    assert len(w.latents) == 30
    assert w.test()["statistic"] > first["statistic"]


def test_a_reference_too_small_for_the_online_window_leaves_it_off(rng):
    w = DriftWatch("lsbg", rng.normal(size=(10, 3)), WatchConfig(window=5, keep=5))
    w.calibrate_online()
    assert w.online is None and "calibration pool" in w.status()["online_off"]
    assert w.add(rng.normal(size=(3, 3))) == 0


def test_drift_report_runs_on_a_stored_bundle(bundles, tmp_path):
    """``python -m monitors.report`` end to end at toy scale: Markdown, JSON and PNG written, and
    the figures are the report's own (rates in [0, 1], one row per bundle)."""
    import json

    from monitors.report import main

    out = tmp_path / "report"
    assert main(["--bundles", "skyguard-morphology", "--window", "4", "--trials", "3",
                 "--permutations", "19", "--online-window", "2", "--ert", "6", "--streams", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    data = json.loads((out / "report.json").read_text())
    (row,) = data.values()
    assert 0.0 <= row["fa_rate"] <= 1.0 and 0.0 <= row["detection"] <= 1.0
    assert len(row["windowed"]["source"]["p_value"]) == 3
    assert (out / "drift_statistics.png").stat().st_size > 10_000
    assert "Drift statistics report" in (out / "report.md").read_text()
