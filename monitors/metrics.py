"""skyguard's Prometheus metrics, defined once (prometheus_client; ``bentoml.metrics`` is
deprecated). Names follow Prometheus conventions: ``skyguard_`` prefix, base units, ``_total`` on
counters. BentoML runs each worker with prometheus_client's multiprocess mode and serves the
merged registry at ``/metrics``.

Publishing only: the numbers themselves are computed elsewhere (``monitors.ood``, the drift
detectors), and the decisions are taken by their ``predict`` methods.
"""

from __future__ import annotations

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

# --- canaries (attack: onepixel, fgsm, pgd_linf, pgd_l2) -------------------------------------
CANARY_FLIP_RATIO = Gauge(
    "skyguard_canary_flip_ratio",
    "Fraction of canary cutouts whose label the attack flipped on the live model (latest run)",
    ["task", "attack"],
    **_GAUGE,
)
CANARY_ACCURACY = Gauge(
    "skyguard_canary_accuracy_under_attack_ratio",
    "Accuracy of the live model on the attacked canary cutouts (latest run)",
    ["task", "attack"],
    **_GAUGE,
)
CANARY_LATENT_DISTANCE = Gauge(
    "skyguard_canary_flip_latent_distance",
    "Median Euclidean latent distance d_E between a canary and its flipped image (latest run)",
    ["task", "attack"],
    **_GAUGE,
)
CANARY_STEPS = Gauge(
    "skyguard_canary_steps_to_flip",
    "Median generations (one-pixel) or gradient steps (FGSM, PGD) to flip, over flipped canaries",
    ["task", "attack"],
    **_GAUGE,
)
CANARY_DURATION = Gauge(
    "skyguard_canary_duration_seconds",
    "Wall time of the latest canary run",
    ["task", "attack"],
    **_GAUGE,
)
CANARY_LAST_RUN = Gauge(
    "skyguard_canary_last_run_timestamp_seconds",
    "Unix time at which the latest canary run finished",
    ["task", "attack"],
    **_GAUGE,
)
CANARY_RUNS = Counter(
    "skyguard_canary_runs_total",
    "Canary runs, by task, attack and outcome (ok, error, over_budget)",
    ["task", "attack", "outcome"],
)


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


def publish_canary(result: dict) -> None:
    """A ``CanaryResult.to_dict()``: gauges only when the run attacked something."""
    labels = {"task": result["task"], "attack": result["attack"]}
    CANARY_RUNS.labels(**labels, outcome=result["outcome"]).inc()
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


# --- every label set a process can produce exists from its start, at zero: dashboards show 0,
# not "no data", and increase() sees the first event ---------------------------------------------
def init_gateway(tasks: tuple[str, ...], reasons: tuple[str, ...]) -> None:
    for task in tasks:
        for reason in reasons:
            REJECTED.labels(task=task, reason=reason)


def init_predictor(tasks: tuple[str, ...]) -> None:
    for task in tasks:
        LATENTS_SENT.labels(task=task)
        for reason in ("backlog", "monitor_unavailable"):
            LATENTS_DROPPED.labels(task=task, reason=reason)


def init_monitor(tasks: tuple[str, ...], attacks: dict[str, tuple[str, ...]]) -> None:
    """``attacks``: the canary attacks run per task."""
    for task in tasks:
        LATENTS_RECEIVED.labels(task=task)
        DRIFT_ONLINE_ALARMS.labels(task=task)
        for outcome in ("drift", "no_drift"):
            DRIFT_TESTS.labels(task=task, outcome=outcome)
        for attack in attacks.get(task, ()):
            for outcome in ("ok", "error", "over_budget"):
                CANARY_RUNS.labels(task=task, attack=attack, outcome=outcome)
