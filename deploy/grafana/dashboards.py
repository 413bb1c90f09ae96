"""skyguard's Grafana dashboards as code (Grafana's own ``grafana-foundation-sdk``), written to
``deploy/grafana/dashboards/<uid>.json``:

    .venv/bin/python deploy/grafana/dashboards.py           # write the JSON
    .venv/bin/python deploy/grafana/dashboards.py --check   # exit 1 if the JSON is out of date

The JSON is committed so that Grafana's file provisioning (``provisioning/dashboards/``) loads it;
it is never edited by hand (``tests/test_deploy.py`` regenerates it and compares byte for byte).

* ``skyguard-drift`` — the windowed MMD² test, the online detector, latents and OOD scores;
* ``skyguard-canaries`` — flip ratio, accuracy under attack, latent distance to flip, steps,
  duration and age of the latest run, runs by outcome;
* ``skyguard-traffic`` — requests and answers, rejected inputs, latency, adaptive batch sizes.

Every query reads only metrics the service exports: ``monitors/metrics.py`` (``skyguard_*``) and
BentoML's ``bentoml_service_*``. Queries use Grafana's ``$__rate_interval`` (4 scrape intervals:
1m with the provisioned 15 s) and the dashboard variables ``$task`` and ``$attack``.

This file belongs to ``deploy/`` and is imported by no package of the project.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    ScaleDistributionConfig,
    StackingConfig,
    VizLegendOptions,
)
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DashboardLink,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    GraphDrawStyle,
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    ScaleDistribution,
    StackingMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

OUT = Path(__file__).resolve().parent / "dashboards"

# the data source of provisioning/datasources/prometheus.yml
DATASOURCE = DataSourceRef(type_val="prometheus", uid="skyguard-prometheus")

# the gateway's own API answers: BentoML also counts scrapes and probes, which would dilute ratios
GATEWAY = 'service_name="skyguard", endpoint!~"/metrics|/readyz|/livez|/healthz"'
PREDICTOR = 'service_name="skyguard-predictor", endpoint!~"/metrics|/readyz|/livez|/healthz"'
TASK = 'task=~"$task"'
TASK_ATTACK = 'task=~"$task", attack=~"$attack"'
# a canary figure per model (the monitor follows the predictor to new bundles). A retired model's
# figures are NaN (prometheus_client's multiprocess mode cannot remove a series): ``>= 0`` leaves
# them out of graphs and legends, as it leaves out a run that flipped nothing.
LIVE = ">= 0"
MODEL_LEGEND = "{{task}} {{attack}} {{model}}"

# bounds of deploy/prometheus/rules/skyguard.rules.yml, drawn as threshold lines
FLIP_RATIO_BOUND = 0.5
CANARY_STALE_S = 6 * 3600
ERROR_RATIO_BOUND = 0.01
DRIFT_ALPHA = 0.05


def q(expr: str, legend: str = "__auto") -> Dataquery:
    """One PromQL target (refIds are given in panel order by ``_panel``)."""
    return Dataquery().expr(expr).legend_format(legend).datasource(DATASOURCE)


def _thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    """Absolute thresholds: (None, base colour), then (value, colour from that value up)."""
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
    )


def _panel(builder, title: str, description: str, targets: list[Dataquery], w: int, h: int):
    for ref, target in zip("ABCDEFGH", targets, strict=False):
        builder.with_target(target.ref_id(ref))
    return builder.title(title).description(description).datasource(DATASOURCE).span(w).height(h)


def timeseries(
    title: str,
    description: str,
    targets: list[Dataquery],
    unit: str = "short",
    *,
    lo: float | None = None,
    hi: float | None = None,
    log: bool = False,
    bound: float | None = None,
    bad_below: bool = False,
    stacked: bool = False,
    bars: bool = False,
    w: int = 12,
    h: int = 8,
) -> Timeseries:
    """A time series panel. ``bound`` draws an alert bound as a dashed line, red on the bad side
    (above it, or below it with ``bad_below``); series whose legend names a 'threshold' or a
    'bound' are drawn dashed too."""
    p = (
        Timeseries()
        .unit(unit)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .override_by_regexp(
            ".*(threshold|bound).*",
            [DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})],
        )
    )
    if lo is not None:
        p = p.min(lo)
    if hi is not None:
        p = p.max(hi)
    if log:
        p = p.scale_distribution(ScaleDistributionConfig().type(ScaleDistribution.LOG).log(10))
    if bound is not None:
        below, above = ("red", "green") if bad_below else ("green", "red")
        p = p.thresholds(_thresholds((None, below), (bound, above))).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED)
        )
    if stacked:
        p = p.stacking(StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(30)
    if bars:
        p = p.draw_style(GraphDrawStyle.BARS).fill_opacity(60)
    return _panel(p, title, description, targets, w, h)


def stat(
    title: str,
    description: str,
    targets: list[Dataquery],
    unit: str = "short",
    *,
    thresholds: ThresholdsConfig | None = None,
    mappings: list | None = None,
    w: int = 6,
    h: int = 8,
) -> Stat:
    """A stat panel of each series' latest value, coloured by ``thresholds``."""
    p = (
        Stat()
        .unit(unit)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(BigValueGraphMode.NONE)
        .color_mode(BigValueColorMode.BACKGROUND)
    )
    if thresholds is not None:
        p = p.thresholds(thresholds)
    if mappings is not None:
        p = p.mappings(mappings)
    return _panel(p, title, description, targets, w, h)


def _variable(name: str, metric: str) -> QueryVariable:
    """A multi-value variable over one label of one metric, 'All' (any value) by default."""
    return (
        QueryVariable(name)
        .label(name)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {name})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


def _dashboard(uid: str, title: str, description: str) -> Dashboard:
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["skyguard"])
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("utc")
        .link(
            DashboardLink("skyguard")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(["skyguard"])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(True)
        )
    )


def drift() -> Dashboard:
    d = _dashboard(
        "skyguard-drift",
        "skyguard · drift",
        "Is the sky the pipeline sends still the sky the models were trained on? MMD² between "
        "recent latents and each bundle's reference latents, with a calibrated false-alarm rate.",
    ).with_variable(_variable("task", "skyguard_predictions_total"))
    d = d.with_row(Row("Windowed MMD² test: latest window against the bundle's reference latents"))
    d = d.with_panel(
        timeseries(
            "MMD² and its threshold",
            "Unbiased MMD² of the latest window, and the permutation threshold it must exceed to "
            "be called drift at the configured level α.",
            [
                q(f"max by (task) (skyguard_drift_mmd2{{{TASK}}})", "{{task}} MMD²"),
                q(f"max by (task) (skyguard_drift_threshold{{{TASK}}})", "{{task}} threshold"),
            ],
        )
    )
    d = d.with_panel(
        timeseries(
            "p-value",
            f"Permutation p-value of the latest windowed test; below α = {DRIFT_ALPHA} (the "
            "dashed line) the test says drift.",
            [q(f"min by (task) (skyguard_drift_p_value{{{TASK}}})", "{{task}}")],
            log=True,
            bound=DRIFT_ALPHA,
            bad_below=True,
        )
    )
    d = d.with_panel(
        stat(
            "Latest decision",
            "What the latest windowed test decided. The alert SkyguardDriftDetected wants it "
            "to say drift, and no test to say otherwise, for 10 minutes.",
            [q(f"max by (task) (skyguard_drift_detected{{{TASK}}})", "{{task}}")],
            thresholds=_thresholds((None, "green"), (1, "red")),
            mappings=[
                ValueMap(
                    {
                        "0": ValueMappingResult(text="no drift", color="green", index=0),
                        "1": ValueMappingResult(text="drift", color="red", index=1),
                    }
                )
            ],
            w=8,
        )
    )
    d = d.with_panel(
        timeseries(
            "Window fill",
            "Latents in the drift window over its size; tests run on a full window.",
            [q(f"max by (task) (skyguard_drift_window_fill_ratio{{{TASK}}})", "{{task}}")],
            "percentunit",
            lo=0,
            hi=1,
            w=8,
        )
    )
    d = d.with_panel(
        timeseries(
            "Tests per minute, by outcome",
            "Windowed tests run, by their decision.",
            [
                q(
                    f"60 * sum by (task, outcome) (rate(skyguard_drift_tests_total{{{TASK}}}[$__rate_interval]))",
                    "{{task}} {{outcome}}",
                )
            ],
            stacked=True,
            w=8,
        )
    )
    d = d.with_row(Row("Online detector: sliding window, bootstrap threshold"))
    d = d.with_panel(
        timeseries(
            "Online statistic and threshold",
            "MMD² of the sliding window after the latest latent, and the bootstrap threshold that "
            "gives one false alarm per configured expected run length.",
            [
                q(f"max by (task) (skyguard_drift_online_statistic{{{TASK}}})", "{{task}} MMD²"),
                q(
                    f"max by (task) (skyguard_drift_online_threshold{{{TASK}}})",
                    "{{task}} threshold",
                ),
            ],
        )
    )
    d = d.with_panel(
        timeseries(
            "Online alarms in the last hour",
            "Latents after which the sliding-window statistic exceeded its threshold.",
            [
                q(
                    f"sum by (task) (increase(skyguard_drift_online_alarms_total{{{TASK}}}[1h]))",
                    "{{task}}",
                )
            ],
        )
    )
    d = d.with_row(Row("Inputs seen by the monitor"))
    d = d.with_panel(
        timeseries(
            "Out-of-distribution percentile",
            "Per-cutout OOD percentile (0-100) against the bundle's reference latents: median "
            "and 90th percentile of the cutouts answered.",
            [
                q(
                    f"histogram_quantile(0.5, sum by (task, le) (rate(skyguard_ood_score_bucket{{{TASK}}}[$__rate_interval])))",
                    "{{task}} median",
                ),
                q(
                    f"histogram_quantile(0.9, sum by (task, le) (rate(skyguard_ood_score_bucket{{{TASK}}}[$__rate_interval])))",
                    "{{task}} 90th",
                ),
            ],
            lo=0,
            hi=100,
        )
    )
    d = d.with_panel(
        timeseries(
            "Latents to the monitor",
            "Latents sent by the gateway, received by the monitor, and dropped (monitor slow or "
            "gone; see the alert SkyguardLatentsDropped).",
            [
                q(
                    f"sum by (task) (rate(skyguard_latents_sent_total{{{TASK}}}[$__rate_interval]))",
                    "{{task}} sent",
                ),
                q(
                    f"sum by (task) (rate(skyguard_monitor_latents_received_total{{{TASK}}}[$__rate_interval]))",
                    "{{task}} received",
                ),
                q(
                    f"sum by (task, reason) (rate(skyguard_latents_dropped_total{{{TASK}}}[$__rate_interval]))",
                    "{{task}} dropped ({{reason}})",
                ),
            ],
            "ops",
        )
    )
    return d


def canaries() -> Dashboard:
    d = (
        _dashboard(
            "skyguard-canaries",
            "skyguard · canaries",
            "How easily can the live model be flipped today? Scheduled one-pixel, FGSM and PGD "
            "attacks on each bundle's canary set, scored by the serving ONNX session.",
        )
        .with_variable(_variable("task", "skyguard_canary_flip_ratio"))
        .with_variable(_variable("attack", "skyguard_canary_flip_ratio"))
    )
    d = d.with_row(Row("Latest run"))
    d = d.with_panel(
        timeseries(
            "Flip ratio",
            f"Fraction of canaries whose label the attack flipped. Dashed: the one-pixel bound of "
            f"SkyguardCanaryFlipRatioHigh ({FLIP_RATIO_BOUND:.0%}); gradient attacks' ratios "
            "depend on their ε and are read against their own history.",
            [
                q(
                    f"max by (task, attack, model) (skyguard_canary_flip_ratio{{{TASK_ATTACK}}} {LIVE})",
                    MODEL_LEGEND,
                )
            ],
            "percentunit",
            lo=0,
            hi=1,
            bound=FLIP_RATIO_BOUND,
        )
    )
    d = d.with_panel(
        timeseries(
            "Accuracy under attack",
            "Accuracy of the live model on the attacked canaries.",
            [
                q(
                    f"max by (task, attack, model) (skyguard_canary_accuracy_under_attack_ratio{{{TASK_ATTACK}}} {LIVE})",
                    MODEL_LEGEND,
                )
            ],
            "percentunit",
            lo=0,
            hi=1,
        )
    )
    d = d.with_panel(
        timeseries(
            "Latent distance to the flipped image",
            "Median Euclidean latent distance d_E between a canary and its flipped image: the "
            "further, the more robust (DeepAdversaries §5). Dashed: half the model's own 7-day "
            "average, below which SkyguardCanaryLatentDistanceFalling fires.",
            [
                q(
                    f"max by (task, attack, model) (skyguard_canary_flip_latent_distance{{{TASK_ATTACK}}} {LIVE})",
                    MODEL_LEGEND,
                ),
                q(
                    # the recording rules the alert reads (deploy/prometheus/rules), for the
                    # models with a figure now: a retired model's average outlives it by 7 days
                    "0.5 * task_attack_model:skyguard_canary_flip_latent_distance:avg_over_time7d"
                    f"{{{TASK_ATTACK}}} and on (task, attack, model) "
                    f"task_attack_model:skyguard_canary_flip_latent_distance:max{{{TASK_ATTACK}}}",
                    f"{MODEL_LEGEND} alert bound",
                ),
            ],
            lo=0,
        )
    )
    d = d.with_panel(
        timeseries(
            "Steps to flip",
            "Median generations (one-pixel) or gradient steps (FGSM, PGD) to flip, over flipped "
            "canaries: more steps, a more robust model.",
            [
                q(
                    f"max by (task, attack, model) (skyguard_canary_steps_to_flip{{{TASK_ATTACK}}} {LIVE})",
                    MODEL_LEGEND,
                )
            ],
            lo=0,
        )
    )
    d = d.with_row(Row("Schedule and budget"))
    d = d.with_panel(
        stat(
            "Since the latest run",
            f"Age of the latest finished run, whatever model it attacked; SkyguardCanaryStale "
            f"fires past {CANARY_STALE_S // 3600} h.",
            [
                q(
                    f"time() - max by (task, attack) (skyguard_canary_last_run_timestamp_seconds{{{TASK_ATTACK}}})",
                    "{{task}} {{attack}}",
                )
            ],
            "s",
            thresholds=_thresholds(
                (None, "green"), (CANARY_STALE_S / 2, "orange"), (CANARY_STALE_S, "red")
            ),
            w=8,
        )
    )
    d = d.with_panel(
        timeseries(
            "Run duration",
            "Wall time of the latest run of each attack (the runner keeps to a time and CPU "
            "budget so that serving is not starved).",
            [
                q(
                    f"max by (task, attack, model) (skyguard_canary_duration_seconds{{{TASK_ATTACK}}} {LIVE})",
                    MODEL_LEGEND,
                )
            ],
            "s",
            lo=0,
            w=8,
        )
    )
    d = d.with_panel(
        timeseries(
            "Runs in the last hour, by outcome",
            "Canary runs by outcome: ok, error, over_budget.",
            [
                q(
                    f"sum by (task, attack, outcome) (increase(skyguard_canary_runs_total{{{TASK_ATTACK}}}[1h]))",
                    "{{task}} {{attack}} {{outcome}}",
                )
            ],
            lo=0,
            bars=True,
            w=8,
        )
    )
    return d


def traffic() -> Dashboard:
    d = _dashboard(
        "skyguard-traffic",
        "skyguard · traffic, latency and batching",
        "What the gateway answers and how fast; the predictor's adaptive batches.",
    ).with_variable(_variable("task", "skyguard_predictions_total"))
    d = d.with_row(Row("Traffic"))
    d = d.with_panel(
        timeseries(
            "Gateway requests by endpoint",
            "API requests to the gateway (scrapes and health probes left out).",
            [
                q(
                    f"sum by (endpoint) (rate(bentoml_service_request_total{{{GATEWAY}}}[$__rate_interval]))",
                    "{{endpoint}}",
                )
            ],
            "reqps",
            stacked=True,
        )
    )
    d = d.with_panel(
        timeseries(
            "Gateway answers by status code",
            "4xx: inputs refused (see rejected inputs); 503: shed by the batching latency cap or "
            "the predictor unreachable; 500: a bug.",
            [
                q(
                    f"sum by (http_response_code) (rate(bentoml_service_request_total{{{GATEWAY}}}[$__rate_interval]))",
                    "{{http_response_code}}",
                )
            ],
            "reqps",
            stacked=True,
        )
    )
    d = d.with_panel(
        timeseries(
            "Gateway 5xx ratio",
            f"5xx answers among the gateway's API answers; SkyguardErrorRate fires above "
            f"{ERROR_RATIO_BOUND:.0%} for 10 minutes.",
            [
                q(
                    f'(sum(rate(bentoml_service_request_total{{{GATEWAY}, http_response_code=~"5.."}}[$__rate_interval]))'
                    f" or 0 * sum(rate(bentoml_service_request_total{{{GATEWAY}}}[$__rate_interval])))"
                    f" / sum(rate(bentoml_service_request_total{{{GATEWAY}}}[$__rate_interval]))",
                    "5xx ratio",
                )
            ],
            "percentunit",
            lo=0,
            bound=ERROR_RATIO_BOUND,
            w=8,
        )
    )
    d = d.with_panel(
        timeseries(
            "Requests in progress",
            "Requests being handled now, per service and endpoint.",
            [
                q(
                    "sum by (service_name, endpoint) (bentoml_service_request_in_progress)",
                    "{{service_name}} {{endpoint}}",
                )
            ],
            lo=0,
            w=8,
        )
    )
    d = d.with_panel(
        stat(
            "Since the latest request",
            "Seconds since each service last answered a request.",
            [
                q(
                    "time() - max by (service_name) (bentoml_service_last_request_timestamp_seconds)",
                    "{{service_name}}",
                )
            ],
            "s",
            thresholds=_thresholds((None, "green"), (600, "orange")),
            w=8,
        )
    )
    d = d.with_panel(
        timeseries(
            "Cutouts answered, by task and label",
            "Predictions by predicted label (photo-z: the z_mode bin's lower edge).",
            [
                q(
                    f"sum by (task, label) (rate(skyguard_predictions_total{{{TASK}}}[$__rate_interval]))",
                    "{{task}} {{label}}",
                )
            ],
            "ops",
            stacked=True,
        )
    )
    d = d.with_panel(
        timeseries(
            "Rejected inputs, by task and reason",
            "Cutouts or requests refused before any model ran; SkyguardRejectedInputsRising "
            "fires above 5% of the inputs for 15 minutes.",
            [
                q(
                    f"sum by (task, reason) (rate(skyguard_rejected_inputs_total{{{TASK}}}[$__rate_interval]))",
                    "{{task}} {{reason}}",
                )
            ],
            "ops",
            stacked=True,
        )
    )
    d = d.with_row(Row("Latency"))
    for service, selector in (("Gateway", GATEWAY), ("Predictor", PREDICTOR)):
        d = d.with_panel(
            timeseries(
                f"{service} latency",
                f"{service} request duration quantiles by endpoint.",
                [
                    q(
                        f"histogram_quantile({p}, sum by (endpoint, le) (rate(bentoml_service_request_duration_seconds_bucket{{{selector}}}[$__rate_interval])))",
                        f"{{{{endpoint}}}} p{round(100 * p)}",
                    )
                    for p in (0.5, 0.95, 0.99)
                ],
                "s",
                lo=0,
            )
        )
    d = d.with_row(Row("Adaptive batching"))
    d = d.with_panel(
        timeseries(
            "Batch size",
            "Cutouts per model call gathered by adaptive batching: median, 95th percentile and "
            "mean, by batched method.",
            [
                q(
                    "histogram_quantile(0.5, sum by (method_name, le) (rate(bentoml_service_adaptive_batch_size_bucket[$__rate_interval])))",
                    "{{method_name}} median",
                ),
                q(
                    "histogram_quantile(0.95, sum by (method_name, le) (rate(bentoml_service_adaptive_batch_size_bucket[$__rate_interval])))",
                    "{{method_name}} p95",
                ),
                q(
                    "sum by (method_name) (rate(bentoml_service_adaptive_batch_size_sum[$__rate_interval]))"
                    " / sum by (method_name) (rate(bentoml_service_adaptive_batch_size_count[$__rate_interval]))",
                    "{{method_name}} mean",
                ),
            ],
            lo=0,
        )
    )
    d = d.with_panel(
        timeseries(
            "Batches per second",
            "Model calls made by adaptive batching, by batched method.",
            [
                q(
                    "sum by (method_name) (rate(bentoml_service_adaptive_batch_size_count[$__rate_interval]))",
                    "{{method_name}}",
                )
            ],
            "ops",
            lo=0,
        )
    )
    return d


DASHBOARDS = (drift, canaries, traffic)


def _number_panels(dashboard) -> None:
    """Panel ids, unique within a dashboard, in reading order (Grafana links use them)."""
    n = 0
    for panel in dashboard.panels or []:
        n += 1
        panel.id_val = n
        for inner in getattr(panel, "panels", None) or []:
            n += 1
            inner.id_val = n


def render() -> dict[str, str]:
    """File name → JSON text of every dashboard, exactly as committed."""
    out = {}
    for make in DASHBOARDS:
        dashboard = make().build()
        _number_panels(dashboard)
        text = JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False).encode(dashboard)
        out[f"{dashboard.uid}.json"] = text + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    rendered = render()
    stale = [
        n
        for n, t in rendered.items()
        if not (OUT / n).is_file() or (OUT / n).read_text("utf-8") != t
    ]
    extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in rendered)
    if args.check:
        for name in stale + extra:
            print(f"{OUT / name}: out of date; run {Path(__file__).name}", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (OUT / name).write_text(rendered[name], "utf-8")
        print(f"wrote {OUT / name}")
    for name in extra:
        print(f"{OUT / name}: no generator writes this file; delete it", file=sys.stderr)
    return 1 if extra else 0


if __name__ == "__main__":
    raise SystemExit(main())
