"""End to end, real parts: ``bentoml serve`` with two gateway workers, a real Prometheus (Debian's
``prometheus``) scraping it with the rules of ``deploy/``, Y10 traffic and then Y1 traffic.

It asserts that the drift metric changes, the drift alert becomes active in Prometheus
(``ALERTS``), canary metrics appear, predictions never stop, a live scrape passes
``promtool check metrics``, every dashboard query and every metric the alert rules use returns
series; and, in a second test, that killing the monitor costs counted latents, not predictions.

The model is a quick ConvNet on 240 seeded morphology mocks (3 epochs): its Y10 and Y1 latents
already differ. Prometheus scrapes and evaluates every second, and the drift alert's ``for: 10m``
and 2-minute no_drift look-back are shortened to seconds (asserted to be the ones in the file, so
a change to the rule shows here); the rule's logic is the committed one, and ``promtool test
rules`` checks its real timing (tests/test_deploy.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).parents[1]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "skyguard.rules.yml"
# skipped on a desk without Debian's prometheus package; CI (.ci/run installs it) never skips
pytestmark = pytest.mark.skipif(
    (shutil.which("prometheus") is None or shutil.which("promtool") is None)
    and not os.environ.get("CI"),
    reason="needs Debian's prometheus package: apt-get install prometheus",
)

sys.path.insert(0, str(Path(__file__).parent))
from test_service import _cmdline, _descendants, _free_port, _serve, _stop  # noqa: E402

SERVER_ENV = {
    "SKYGUARD_TASKS": "morphology",
    "SKYGUARD_GATEWAY_WORKERS": "2",
    "SKYGUARD_DRIFT_WINDOW": "30",
    "SKYGUARD_DRIFT_EVERY": "10",
    "SKYGUARD_DRIFT_PERMUTATIONS": "200",
    "SKYGUARD_ONLINE_WINDOW": "4",  # the 24 reference latents hold R and a pool of 3 windows
    "SKYGUARD_CANARY_DELAY_S": "1",
    "SKYGUARD_CANARY_INTERVAL_S": "30",
    "SKYGUARD_CANARY_ATTACKS": "onepixel,fgsm,pgd_linf",
    "SKYGUARD_CANARY_POPULATION": "20",
    "SKYGUARD_CANARY_GENERATIONS": "4",
    "SKYGUARD_CANARY_MAX": "4",
    "SKYGUARD_CANARY_EPS_SCALE": "20",  # the 3-epoch model is too flat for the recipe's ε
    "SKYGUARD_MONITOR_TIMEOUT_S": "1",
}


@pytest.fixture(scope="module")
def e2e_model(tmp_path_factory):
    """(bundle directory, data root) of a quick morphology ConvNet on 240 paired Y10/Y1 mocks."""
    from training.runs import train
    from training.simulate import simulator
    from training.simulate.runner import generate

    root = tmp_path_factory.mktemp("e2e_data")
    generate(simulator("morphology"), 240, root, seed=5, workers=2, progress=False)
    run = train("morphology", "regular", quick=True, data_root=root,
                out_root=tmp_path_factory.mktemp("e2e_runs"), store=False, progress=False,
                epochs=3, n_canaries=24, n_parity=4, n_boot=20)  # fmt: skip
    return run.bundle, root


def _fast_rules(dst: Path) -> Path:
    """The committed rules with the drift alert's 10-minute hold and 2-minute look-back in
    seconds (both asserted present)."""
    text = RULES.read_text()
    drift = text.index("- alert: SkyguardDriftDetected")
    end = text.index("- alert:", drift + 10)
    block = text[drift:end]
    assert "for: 10m" in block and "[2m]" in block, "drift rule changed: update this test"
    block = block.replace("for: 10m", "for: 3s").replace("[2m]", "[8s]")
    dst.write_text(text[:drift] + block + text[end:])
    return dst


@pytest.fixture(scope="module")
def stack(e2e_model, tmp_path_factory):
    """The service and a Prometheus scraping it: (service URL, Prometheus URL, server process)."""
    bundle, _ = e2e_model
    tmp = tmp_path_factory.mktemp("e2e_stack")
    proc, url = _serve("service.service:Skyguard", ROOT, tmp / "server.log",
                       {**SERVER_ENV, "SKYGUARD_MODEL_MORPHOLOGY": str(bundle)})  # fmt: skip
    port = _free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(_fast_rules(tmp / "rules.yml"))],
        "scrape_configs": [
            {"job_name": "skyguard", "static_configs": [{"targets": [url.split("//")[1]]}]}
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    with open(tmp / "prometheus.log", "w") as log:
        prom = subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    prom_url = f"http://127.0.0.1:{port}"
    _until(lambda: _ready(prom_url), 60, "Prometheus not ready")
    yield url, prom_url, proc
    os.killpg(prom.pid, signal.SIGTERM)
    prom.wait(20)
    _stop(proc)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _until(check, timeout: float, what: str, every: float = 0.5, during=None):
    """Poll ``check`` until it is truthy (calling ``during`` between polls); its value."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"{what} (after {timeout} s)")
        if during is not None:
            during()
        time.sleep(every)


def _query(prom: str, expr: str) -> list[dict]:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert r["status"] == "success", (expr, r)
    return r["data"]["result"]


def _value(prom: str, expr: str) -> float | None:
    res = _query(prom, expr)
    return float(res[0]["value"][1]) if res else None


def _test_split(root: Path, domain: str) -> np.ndarray:
    with h5py.File(root / "morphology" / f"{domain}.h5") as f:
        test = np.flatnonzero(f["split"][:] == 2)
        return f["images"][test]


class Traffic:
    """Posts cutouts to /morphology_array and keeps every status code."""

    def __init__(self, url: str) -> None:
        self.url, self.status, self.sent = url, [], 0

    def send(self, images: np.ndarray, batch: int = 8) -> None:
        for i in range(0, len(images), batch):
            r = httpx.post(f"{self.url}/morphology_array",
                           json={"images": images[i : i + batch].tolist()}, timeout=60)  # fmt: skip
            self.status.append(r.status_code)
            assert r.status_code == 200, r.text[:500]
            assert r.json()["n_answered"] == len(images[i : i + batch])
            self.sent += len(images[i : i + batch])


def test_drift_alert_canaries_and_dashboards_on_real_prometheus(stack, e2e_model):
    url, prom, _ = stack
    _, root = e2e_model
    y10, y1 = _test_split(root, "y10"), _test_split(root, "y1")
    traffic = Traffic(url)

    # reference-like traffic: windowed tests run and say no drift
    for _ in range(3):
        traffic.send(y10)
    _until(lambda: _value(prom, 'sum(skyguard_drift_tests_total{outcome="no_drift"})'), 30,
           "no windowed test said no_drift on Y10 traffic")  # fmt: skip
    time.sleep(2)  # two more scrapes
    y10_mmd2 = _value(prom, 'max_over_time(skyguard_drift_mmd2{task="morphology"}[5m])')
    assert _value(prom, 'max_over_time(skyguard_drift_p_value{task="morphology"}[5m])') > 0.05

    # the Y1 sky: the statistic rises, the test says drift, the alert fires
    traffic.send(y1)
    _until(lambda: _query(prom, 'ALERTS{alertname="SkyguardDriftDetected",alertstate="firing"}'),
           90, "drift alert never fired on Y1 traffic", every=1.0,
           during=lambda: traffic.send(y1[:16]))  # fmt: skip
    assert _value(prom, 'skyguard_drift_detected{task="morphology"}') == 1.0
    assert _value(prom, 'skyguard_drift_mmd2{task="morphology"}') > y10_mmd2
    assert _value(prom, 'skyguard_drift_mmd2{task="morphology"}') > _value(
        prom, 'skyguard_drift_threshold{task="morphology"}'
    )

    # canaries ran against the live model and are in Prometheus (the run counters exist from
    # the start at zero: a run is one that counted)
    for attack in ("onepixel", "fgsm", "pgd_linf"):
        _until(lambda a=attack: _query(prom, f'skyguard_canary_runs_total{{attack="{a}"}} > 0'),
               90, f"no {attack} canary run in Prometheus")  # fmt: skip
    assert _query(prom, "skyguard_canary_flip_ratio")
    assert _query(prom, 'skyguard_canary_last_run_timestamp_seconds{attack="onepixel"}')
    robustness = httpx.get(f"{url}/v1/robustness").json()["morphology"]["attacks"]
    assert {"onepixel", "fgsm", "pgd_linf"} <= set(robustness)
    assert all(r["outcome"] in ("ok", "over_budget") for r in robustness.values()), robustness
    # every canary series names the model it attacked, as /v1/robustness does (name:version)
    (model,) = {r["model"] for r in robustness.values()}
    assert httpx.get(f"{url}/v1/robustness").json()["morphology"]["model"] == model
    assert httpx.get(f"{url}/v1/drift").json()["morphology"]["model"] == model
    for metric in ("skyguard_canary_flip_ratio", "skyguard_canary_last_run_timestamp_seconds",
                   "skyguard_canary_runs_total"):  # fmt: skip
        found = _query(prom, f'{metric}{{task="morphology"}}')
        assert found and {r["metric"]["model"] for r in found} == {model}, (metric, found)

    # a broken cutout is refused with its reason, counted, and serving goes on
    bad = y10[:1].astype(np.float64)
    bad[0, 0, 5, 5] = 1e39  # infinite in float32 (JSON has no NaN)
    r = httpx.post(f"{url}/morphology_array", json={"images": bad.tolist()}, timeout=60)
    assert r.status_code == 400, r.text
    _until(lambda: _query(prom, "skyguard_rejected_inputs_total"), 10, "rejection not counted")

    # predictions never stopped: every request answered, every cutout counted once
    assert set(traffic.status) == {200}
    _until(lambda: _value(prom, "sum(skyguard_predictions_total)") == traffic.sent, 10,
           f"Prometheus does not count the {traffic.sent} cutouts answered")  # fmt: skip


def test_killing_the_monitor_costs_latents_not_predictions(stack, e2e_model):
    url, prom, server = stack
    _, root = e2e_model
    y10 = _test_split(root, "y10")[:8]
    traffic = Traffic(url)
    dropped = "sum(skyguard_latents_dropped_total) or vector(0)"
    before = _value(prom, dropped)
    pids = [p for p in _descendants(server.pid) if "skyguard-monitor" in _cmdline(p)]
    assert pids, "monitor worker not found"
    for p in pids:
        os.kill(p, signal.SIGKILL)
    for _ in range(3):
        traffic.send(y10)
    assert set(traffic.status) == {200}
    _until(lambda: _value(prom, dropped) > before, 20, "dropped latents were not counted")


def test_every_dashboard_query_and_rule_metric_returns_series(stack):
    """After the two tests above (drift, canaries, a rejection, dropped latents), every panel
    query of the generated dashboards and every series an alert or recording rule reads exists
    in the real Prometheus."""
    url, prom, _ = stack
    # a live scrape with two gateway workers passes promtool's checks
    scrape = httpx.get(f"{url}/metrics").text
    check = subprocess.run(["promtool", "check", "metrics"], input=scrape, text=True,
                           capture_output=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr

    # every dashboard panel query returns series; so does every metric an alert rule reads
    from test_deploy import collect_expressions

    missing = []
    for source, expr in collect_expressions():
        if source.startswith("dashboard"):
            expr = re.sub(r"\$__rate_interval|\$__interval|\$__range", "1m", expr)
            expr = re.sub(r"\$\w+", ".*", expr)  # template variables: every value
            if not _query(prom, expr):
                missing.append((source, expr))
        else:
            names = re.findall(r"(?<![\w:])([A-Za-z_:][\w:]*)(?![\w:]*\s*\()", expr)
            for metric in {n for n in names if re.search(r"(^|:)(skyguard|bentoml)_", n)}:
                if not _query(prom, metric):
                    missing.append((source, metric))
    assert not missing, "\n".join(f"{s}: {e}" for s, e in missing)
