"""skyguard's Prometheus metrics, defined once (prometheus_client; ``bentoml.metrics`` is
deprecated). Names follow Prometheus conventions: ``skyguard_`` prefix, base units, ``_total`` on
counters. BentoML runs each worker with prometheus_client's multiprocess mode and serves the
merged registry at ``/metrics``.

Publishing only: the numbers themselves are computed elsewhere (``monitors.ood``, the drift
detectors), and the decisions are taken by their ``predict`` methods.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram

PREDICTIONS = Counter(
    "skyguard_predictions_total",
    "Cutouts answered, by task and predicted label (photo-z: the z_mode bin's lower edge, 0.05 wide)",
    ["task", "label"],
)
OOD_SCORE = Histogram(
    "skyguard_ood_score",
    "Per-cutout out-of-distribution percentile (0-100) against the bundle's reference latents",
    ["task"],
    buckets=(10, 25, 50, 75, 90, 95, 99, 99.9, 100),
)
REJECTED = Counter(
    "skyguard_rejected_inputs_total",
    "Cutouts or requests refused before any model ran, by task and reason",
    ["task", "reason"],
)
SHED_REQUESTS = Counter(
    "skyguard_shed_requests_total",
    "Requests refused 503 by the gateway's queue bound before their body was read, by task",
    ["task"],
)
SHED_CUTOUTS = Counter(
    "skyguard_shed_cutouts_total",
    "Cutouts (estimated from Content-Length) of the requests shed by the queue bound, by task",
    ["task"],
)
# summed over the live gateway workers (each has its own queue and bound)
QUEUE_CUTOUTS = Gauge(
    "skyguard_queue_cutouts",
    "Cutouts (estimated from Content-Length) admitted and not yet answered, by task",
    ["task"],
    multiprocess_mode="livesum",
)
QUEUE_BOUND = Gauge(
    "skyguard_queue_bound_cutouts",
    "Cutouts in flight past which a request is shed (measured throughput x latency target, "
    "or SKYGUARD_QUEUE_CUTOUTS), by task",
    ["task"],
    multiprocess_mode="livesum",
)
LATENTS_SENT = Counter(
    "skyguard_latents_sent_total",
    "Latent vectors handed to the monitor, by task",
    ["task"],
)
LATENTS_DROPPED = Counter(
    "skyguard_latents_dropped_total",
    "Latent vectors not delivered to the monitor (monitor slow or gone), by task and reason",
    ["task", "reason"],
)
LATENTS_RECEIVED = Counter(
    "skyguard_monitor_latents_received_total",
    "Latent vectors the monitor received, by task",
    ["task"],
)

# --- drift (owned by the monitor worker; gauges keep the most recent value of that one process) --
_GAUGE = {"multiprocess_mode": "mostrecent"}

DRIFT_MMD2 = Gauge(
    "skyguard_drift_mmd2",
    "Unbiased MMD² of the latest latent window against the bundle's reference latents",
    ["task"],
    **_GAUGE,
)
DRIFT_P_VALUE = Gauge(
    "skyguard_drift_p_value",
    "Permutation p-value of the latest windowed MMD² test",
    ["task"],
    **_GAUGE,
)
DRIFT_THRESHOLD = Gauge(
    "skyguard_drift_threshold",
    "MMD² a window must exceed to be called drift at the configured level (permutation quantile)",
    ["task"],
    **_GAUGE,
)
DRIFT_DETECTED = Gauge(
    "skyguard_drift_detected",
    "1 when the latest windowed test rejected 'same distribution as the reference', else 0",
    ["task"],
    **_GAUGE,
)
DRIFT_WINDOW_FILL = Gauge(
    "skyguard_drift_window_fill_ratio",
    "Latents in the drift window divided by the window size (0-1)",
    ["task"],
    **_GAUGE,
)
DRIFT_TESTS = Counter(
    "skyguard_drift_tests_total",
    "Windowed MMD² tests run, by task and outcome (drift, no_drift)",
    ["task", "outcome"],
)
DRIFT_ONLINE_STATISTIC = Gauge(
    "skyguard_drift_online_statistic",
    "Online detector: MMD² of the sliding window after the latest latent",
    ["task"],
    **_GAUGE,
)
DRIFT_ONLINE_THRESHOLD = Gauge(
    "skyguard_drift_online_threshold",
    "Online detector: bootstrap threshold for the configured expected run time between false alarms",
    ["task"],
    **_GAUGE,
)
DRIFT_ONLINE_ALARMS = Counter(
    "skyguard_drift_online_alarms_total",
    "Online detector: latents after which the sliding-window statistic exceeded its threshold",
    ["task"],
)

# --- canaries (attack: onepixel, fgsm, pgd_linf, pgd_l2; model: the attacked bundle's store
# name:version, as in GET /v1/robustness). The monitor follows the predictor to a new bundle, so
# each model has its own series: a rule comparing a figure over time compares one model with
# itself, never with its predecessor. ------------------------------------------------------------
CANARY_FLIP_RATIO = Gauge(
    "skyguard_canary_flip_ratio",
    "Fraction of canary cutouts whose label the attack flipped on the live model (latest run)",
    ["task", "attack", "model"],
    **_GAUGE,
)
CANARY_ACCURACY = Gauge(
    "skyguard_canary_accuracy_under_attack_ratio",
    "Accuracy of the live model on the attacked canary cutouts (latest run)",
    ["task", "attack", "model"],
    **_GAUGE,
)
CANARY_LATENT_DISTANCE = Gauge(
    "skyguard_canary_flip_latent_distance",
    "Median Euclidean latent distance d_E between a canary and its flipped image (latest run)",
    ["task", "attack", "model"],
    **_GAUGE,
)
CANARY_STEPS = Gauge(
    "skyguard_canary_steps_to_flip",
    "Median generations (one-pixel) or gradient steps (FGSM, PGD) to flip, over flipped canaries",
    ["task", "attack", "model"],
    **_GAUGE,
)
CANARY_DURATION = Gauge(
    "skyguard_canary_duration_seconds",
    "Wall time of the latest canary run",
    ["task", "attack", "model"],
    **_GAUGE,
)
CANARY_LAST_RUN = Gauge(
    "skyguard_canary_last_run_timestamp_seconds",
    "Unix time at which the latest canary run finished",
    ["task", "attack", "model"],
    **_GAUGE,
)
CANARY_RUNS = Counter(
    "skyguard_canary_runs_total",
    "Canary runs, by task, attack, model and outcome (ok, error, over_budget)",
    ["task", "attack", "model", "outcome"],
)
# a model's figures, dropped when it stops being the live one. Not the last-run time: the stale
# alert reads it across models (max by task, attack), and must not go blind on a model switch
# until the new model's first run finishes.
_CANARY_FIGURES = (CANARY_FLIP_RATIO, CANARY_ACCURACY, CANARY_LATENT_DISTANCE, CANARY_STEPS,
                   CANARY_DURATION)  # fmt: skip
_CANARY_OUTCOMES = ("ok", "error", "over_budget")


# --- publishing: numbers computed elsewhere go to the metrics here, and only here --------------
def publish_drift_test(task: str, result: dict) -> None:
    """A windowed test's ``MMDDrift.predict`` result."""
    DRIFT_MMD2.labels(task=task).set(result["statistic"])
    DRIFT_P_VALUE.labels(task=task).set(result["p_value"])
    DRIFT_THRESHOLD.labels(task=task).set(result["threshold"])
    DRIFT_DETECTED.labels(task=task).set(1.0 if result["is_drift"] else 0.0)
    DRIFT_TESTS.labels(task=task, outcome="drift" if result["is_drift"] else "no_drift").inc()


def reset_drift(task: str) -> None:
    """A new monitor process or a new model: no test yet. Overwrites what a dead process or the
    previous model left (``mostrecent`` gauges keep the newest value of any process)."""
    DRIFT_DETECTED.labels(task=task).set(0.0)
    for gauge in (DRIFT_MMD2, DRIFT_P_VALUE, DRIFT_THRESHOLD, DRIFT_ONLINE_STATISTIC,
                  DRIFT_ONLINE_THRESHOLD):  # fmt: skip
        gauge.labels(task=task).set(float("nan"))


def publish_drift_window(task: str, fill: float, online: dict | None, alarms: int) -> None:
    """The window's fill, the online detector's latest result and the alarms just raised."""
    DRIFT_WINDOW_FILL.labels(task=task).set(fill)
    if online is not None and online["step"] >= 0:
        DRIFT_ONLINE_STATISTIC.labels(task=task).set(online["statistic"])
        DRIFT_ONLINE_THRESHOLD.labels(task=task).set(online["threshold"])
    if alarms:
        DRIFT_ONLINE_ALARMS.labels(task=task).inc(alarms)


def publish_canary(result: dict, live: bool = True) -> None:
    """A ``CanaryResult.to_dict()``: the run is counted; its figures go to the gauges when it
    attacked something and its model is still the live one (``live``): a run that finished after
    a model switch must not bring back the retired model's series."""
    labels = {"task": result["task"], "attack": result["attack"], "model": result["model"]}
    CANARY_RUNS.labels(**labels, outcome=result["outcome"]).inc()
    if not live:
        return
    CANARY_DURATION.labels(**labels).set(result["duration_s"])
    CANARY_LAST_RUN.labels(**labels).set(result["finished_at"])
    if not result["n"]:
        return
    CANARY_FLIP_RATIO.labels(**labels).set(result["flip_ratio"])
    CANARY_ACCURACY.labels(**labels).set(result["accuracy_under_attack"])
    # a run that flipped nothing has no distance or steps: NaN, not the previous run's figure
    for gauge, key in ((CANARY_LATENT_DISTANCE, "median_latent_distance"),
                       (CANARY_STEPS, "median_steps")):  # fmt: skip
        gauge.labels(**labels).set(float("nan") if result[key] is None else result[key])


def switch_canary_model(task: str, old: str, new: str, attacks: tuple[str, ...]) -> None:
    """``task``'s live model is now ``new`` (name:version), no longer ``old``: the old model's
    canary figures go, so that dashboards and rules see the live model only, and the new one's
    run counters start at zero (``attacks``: the attacks run on it). The old model's counters
    stay (a ``_total`` never goes back; it simply stops growing), and so does its last-run time
    (see ``_CANARY_FIGURES``).

    prometheus_client's multiprocess mode, which BentoML runs, cannot remove a series (the merged
    registry keeps every label set a process ever wrote): there the old figures become NaN,
    which ``>= 0`` and every comparison in the rules and dashboards leave out."""
    multiprocess = (
        "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ
    )
    for gauge in _CANARY_FIGURES:
        for sample in gauge.collect()[0].samples:  # the label sets this process wrote
            if sample.labels["task"] != task or sample.labels["model"] != old:
                continue
            if multiprocess:
                gauge.labels(**sample.labels).set(float("nan"))
            else:
                gauge.remove(task, sample.labels["attack"], old)
    init_canaries(task, new, attacks)


def publish_shed(task: str, cutouts: int) -> None:
    """A request of ``cutouts`` (estimated) shed by ``task``'s queue bound."""
    SHED_REQUESTS.labels(task=task).inc()
    SHED_CUTOUTS.labels(task=task).inc(cutouts)


def publish_queue(task: str, in_flight: int, bound: int) -> None:
    """``task``'s cutouts in flight and its bound, in this gateway worker."""
    QUEUE_CUTOUTS.labels(task=task).set(in_flight)
    QUEUE_BOUND.labels(task=task).set(bound)


# --- every label set a process can produce exists from its start, at zero: dashboards show 0,
# not "no data", and increase() sees the first event ---------------------------------------------
def init_gateway(tasks: tuple[str, ...], reasons: tuple[str, ...]) -> None:
    for task in tasks:
        SHED_REQUESTS.labels(task=task)
        SHED_CUTOUTS.labels(task=task)
        QUEUE_CUTOUTS.labels(task=task).set(0)
        for reason in reasons:
            REJECTED.labels(task=task, reason=reason)


def init_predictor(tasks: tuple[str, ...]) -> None:
    for task in tasks:
        LATENTS_SENT.labels(task=task)
        for reason in ("backlog", "monitor_unavailable"):
            LATENTS_DROPPED.labels(task=task, reason=reason)


def init_canaries(task: str, model: str, attacks: tuple[str, ...]) -> None:
    """``model`` is ``task``'s live model (at start, or after a switch); ``attacks``: the canary
    attacks run on it."""
    for attack in attacks:
        for outcome in _CANARY_OUTCOMES:
            CANARY_RUNS.labels(task=task, attack=attack, model=model, outcome=outcome)


def init_monitor(models: dict[str, str], attacks: dict[str, tuple[str, ...]]) -> None:
    """``models``: task → its live model's name:version; ``attacks``: the canary attacks run per
    task."""
    for task, model in models.items():
        LATENTS_RECEIVED.labels(task=task)
        DRIFT_ONLINE_ALARMS.labels(task=task)
        for outcome in ("drift", "no_drift"):
            DRIFT_TESTS.labels(task=task, outcome=outcome)
        init_canaries(task, model, attacks.get(task, ()))
