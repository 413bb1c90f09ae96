"""skyguard's Prometheus metrics, defined once (prometheus_client; ``bentoml.metrics`` is
deprecated). Names follow Prometheus conventions: ``skyguard_`` prefix, base units, ``_total`` on
counters. BentoML runs each worker with prometheus_client's multiprocess mode and serves the
merged registry at ``/metrics``.

Publishing only: the numbers themselves are computed elsewhere (``monitors.ood``, the drift
detectors), and the decisions are taken by their ``predict`` methods.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
