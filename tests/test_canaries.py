"""Canary runs on real (tiny) bundles, scored by their ONNX sessions; their metrics across a model
switch; the drift watch's schedule."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitors.canaries import CanaryConfig, CanaryResult, CanaryRunner
from monitors.watch import DriftWatch, WatchConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runners(bundles):
    from core.bundle import onnx_session
    from core.store import load

    def make(task: str, source: str | Path | None = None, **kw) -> CanaryRunner:
        b = load(source or f"skyguard-{task}")
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


@pytest.fixture(scope="module")
def photoz_trained(bundles, tmp_path_factory):
    """A photo-z bundle trained long enough to answer its input: the session's one-epoch model
    puts every object in one redshift bin, which no attack can move by |δz| > 0.05."""
    from training.runs import train

    out = tmp_path_factory.mktemp("photoz_canary_runs")
    return train("photoz", "regular", quick=True, data_root=bundles, out_root=out, store=False,
                 progress=False, epochs=8, n_canaries=6, n_parity=4, n_boot=20).bundle  # fmt: skip


@pytest.mark.parametrize("task", ["morphology", "photoz"])
def test_a_strong_attack_flips_and_the_flips_are_the_served_models(runners, photoz_trained, task):
    """A large ε flips canaries; each flip was read from the ONNX session's answer, and the
    flipped images moved in its latent space."""
    if task == "morphology":
        r = runners(task, eps_scale=50.0)
    else:
        r = runners(task, source=photoz_trained, eps_scale=200.0)
    res = r.run("pgd_linf")
    assert res.flipped > 0, res
    assert res.flip_ratio == pytest.approx(res.flipped / res.n)
    assert res.median_latent_distance > 0 and 1 <= res.median_steps <= r.n_iter
    assert res.model.startswith(f"skyguard-{task}:")


def test_onepixel_canary_runs_on_the_onnx_session(runners):
    r = runners("morphology")
    res = r.run("onepixel")
    assert res.outcome == "ok" and res.n == len(r.x)
    assert res.flip_ratio == pytest.approx(res.flipped / res.n)
    if res.flipped:  # scored on the ONNX session: a flip moved the latent, within the DE budget
        assert res.median_latent_distance > 0
        assert 0 <= res.median_steps <= r.config.generations
    else:
        assert np.isnan(res.median_latent_distance) and np.isnan(res.median_steps)
    with pytest.raises(ValueError, match="classifiers"):
        runners("photoz").run("onepixel")
    with pytest.raises(ValueError, match="attack must be one of"):
        r.run("cw")


def test_a_run_stops_at_its_budget(runners):
    r = runners("morphology", budget_s=1e-9, batch=1)
    res = r.run("fgsm")
    assert res.outcome == "over_budget" and res.n <= 1


# --- metrics across a model switch -------------------------------------------------------------
# What the monitor publishes, in a fresh process (prometheus_client picks single-process or
# multiprocess mode at import, from PROMETHEUS_MULTIPROC_DIR), scraped as /metrics would be: lsbg
# runs on its model; morphology runs on model a1, switches to b2 (as Monitor._follow does), a1's
# run still going at the switch finishes (counted, not shown), then b2 runs.
_SWITCH = """
import json, os, sys
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from monitors.metrics import init_monitor, publish_canary, switch_canary_model

lsbg, a1, a1_late, b2 = json.loads(sys.argv[1])
attacks = ("onepixel", "fgsm")
init_monitor({"morphology": a1["model"], "lsbg": lsbg["model"]},
             {"morphology": attacks, "lsbg": attacks})
publish_canary(lsbg)
publish_canary(a1)
switch_canary_model("morphology", a1["model"], b2["model"], attacks)
publish_canary(a1_late, live=False)
publish_canary(b2)
registry = REGISTRY
if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
sys.stdout.write(generate_latest(registry).decode())
"""
_FIGURES = {
    "skyguard_canary_flip_ratio": "flip_ratio",
    "skyguard_canary_accuracy_under_attack_ratio": "accuracy_under_attack",
    "skyguard_canary_flip_latent_distance": "median_latent_distance",
    "skyguard_canary_steps_to_flip": "median_steps",
    "skyguard_canary_duration_seconds": "duration_s",
}


def _run(task: str, model: str, flip_ratio: float) -> dict:
    return CanaryResult(
        task=task, attack="fgsm", model=model, outcome="ok", n=8, flipped=round(8 * flip_ratio),
        flip_ratio=flip_ratio, accuracy_under_attack=1 - flip_ratio, median_steps=1.0,
        median_latent_distance=4 * flip_ratio, duration_s=2 * flip_ratio,
        finished_at=1e9 + 100 * flip_ratio,
    ).to_dict()  # fmt: skip


@pytest.mark.parametrize("multiprocess", [False, True], ids=["single_process", "multiprocess"])
def test_canary_series_name_their_model_and_a_switch_retires_the_old_ones(tmp_path, multiprocess):
    """Every canary series carries the model it attacked (the run's name:version). After a
    switch the old model's figures are gone (multiprocess: NaN, the only removal its merged
    registry allows), a run of the old model finishing late is counted but does not bring them
    back, its counters and last-run time stay, the new model's counters exist from zero, and
    another task's series are untouched."""
    lsbg = _run("lsbg", "skyguard-lsbg:c3", 0.125)
    a1, a1_late, b2 = (_run("morphology", m, r) for m, r in
                       (("skyguard-morphology:a1", 0.75), ("skyguard-morphology:a1", 0.5),
                        ("skyguard-morphology:b2", 0.25)))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    if multiprocess:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    scrape = subprocess.run(
        [sys.executable, "-c", _SWITCH, json.dumps([lsbg, a1, a1_late, b2])],
        capture_output=True, text=True, cwd=ROOT, env=env, check=True, timeout=60,
    ).stdout  # fmt: skip
    samples = [s for family in text_string_to_metric_families(scrape) for s in family.samples
               if s.name.startswith("skyguard_canary_") and not s.name.endswith("_created")]  # fmt: skip
    assert samples and all("model" in s.labels for s in samples)

    def series(name: str, model: str, **labels) -> list[float]:
        return [s.value for s in samples if s.name == name and s.labels["model"] == model
                and all(s.labels[k] == v for k, v in labels.items())]  # fmt: skip

    for name, key in _FIGURES.items():
        assert series(name, b2["model"]) == [pytest.approx(b2[key])], name
        assert series(name, lsbg["model"]) == [pytest.approx(lsbg[key])], name
        old = series(name, a1["model"])  # single process: removed; multiprocess: NaN
        assert len(old) == (1 if multiprocess else 0) and all(map(math.isnan, old)), (name, old)
    last_run = "skyguard_canary_last_run_timestamp_seconds"
    assert series(last_run, a1["model"]) == [a1["finished_at"]]
    assert series(last_run, b2["model"]) == [b2["finished_at"]]
    runs = "skyguard_canary_runs_total"
    assert series(runs, a1["model"], attack="fgsm", outcome="ok") == [2.0]
    assert series(runs, b2["model"], attack="fgsm", outcome="ok") == [1.0]
    assert series(runs, b2["model"], attack="onepixel", outcome="error") == [0.0]
    assert series(runs, lsbg["model"], attack="fgsm", outcome="ok") == [1.0]


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
    # the rates are the fractions of their own windows' p-values below α (0.05, the default)
    for rate, domain in (("fa_rate", "source"), ("detection", "target")):
        p = np.asarray(row["windowed"][domain]["p_value"])
        assert len(p) == 3 and row[rate] == pytest.approx(float((p < 0.05).mean())), rate
    assert row["n_reference"] > 0 and row["n_source_test"] >= 4
    assert (out / "drift_statistics.png").stat().st_size > 10_000
    assert "Drift statistics report" in (out / "report.md").read_text()
