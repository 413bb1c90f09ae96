"""deploy/ checked by what can check it here: promtool (Prometheus config, rules and their unit
tests, and every dashboard query parsed as PromQL), amtool (the Alertmanager route),
docker-compose (the compose file), kubernetes-validate (the manifests' schemas), and plain YAML
for the cross-references none of them sees. Every query of the dashboards and every rule
expression reads only metrics the code exports (``monitors/metrics.py``, and BentoML's own).

``collect_expressions()`` is also what the end-to-end test runs against a live Prometheus.

promtool is required (Debian's ``prometheus`` package); amtool (``prometheus-alertmanager``),
docker-compose (``docker-compose``) and kubernetes-validate (PyPI) are used where installed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules" / "skyguard.rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules" / "skyguard.rules.test.yml"
ALERTMANAGER_YML = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD_JSON = GRAFANA / "dashboards"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_GPU = DEPLOY / "docker-compose.gpu.yml"
K8S = DEPLOY / "k8s"

# the alerts the end-to-end test and the Alertmanager route refer to by name
ALERTS = {
    "SkyguardDriftDetected",
    "SkyguardCanaryFlipRatioHigh",
    "SkyguardCanaryLatentDistanceFalling",
    "SkyguardCanaryStale",
    "SkyguardRejectedInputsRising",
    "SkyguardErrorRate",
    "SkyguardLatentsDropped",
}

# BentoML's own metrics (bentoml 1.4: RunnerTrafficMetricsMiddleware and the adaptive batching
# histogram; multiprocess gauges add pid), as a live scrape of the service shows them:
# name → (type, labels)
_REQUEST = {"endpoint", "http_response_code", "runner_name", "service_name", "service_version"}
BENTOML_METRICS = {
    "bentoml_service_request_total": ("counter", _REQUEST),
    "bentoml_service_request_duration_seconds": ("histogram", _REQUEST),
    "bentoml_service_adaptive_batch_size": (
        "histogram",
        {"method_name", "runner_name", "service_name", "service_version", "worker_index"},
    ),
    "bentoml_service_request_in_progress": (
        "gauge",
        {"endpoint", "runner_name", "service_name", "service_version"},
    ),
    "bentoml_service_last_request_timestamp_seconds": (
        "gauge",
        {"pid", "runner_name", "service_name", "service_version"},
    ),
}
# labels Prometheus attaches to every scraped series (docker-compose: job, instance; Kubernetes
# adds namespace and pod by relabelling)
TARGET_LABELS = {"job", "instance", "namespace", "pod"}

# Grafana's variables in dashboard queries, replaced by what makes them plain PromQL: the
# provisioned data source's timeInterval is 15 s, so $__rate_interval is 4 × 15 s; 'All' is .*
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$task": ".*", "$attack": ".*"}


# --- what the code exports ---------------------------------------------------------------------


def exported_metrics() -> dict[str, tuple[str, set[str]]]:
    """Metric family → (type, label names): monitors/metrics.py's definitions, read from its
    source (no import, no registry), and BentoML's own."""
    tree = ast.parse((ROOT / "monitors" / "metrics.py").read_text("utf-8"))
    out = dict(BENTOML_METRICS)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in ("Counter", "Gauge", "Histogram", "Summary"):
            continue
        name = node.args[0].value
        labels = node.args[2] if len(node.args) > 2 else None
        for kw in node.keywords:
            if kw.arg == "labelnames":
                labels = kw.value
        label_names = {e.value for e in labels.elts} if labels is not None else set()
        kind = node.func.id.lower()
        if kind == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]
        out[name] = (kind, label_names)
    return out


def exported_series() -> dict[str, set[str]]:
    """Series name as scraped → its label names (counters: _total; histograms: _bucket with le,
    _sum, _count)."""
    out = {}
    for family, (kind, labels) in exported_metrics().items():
        if kind == "counter":
            out[family if family.endswith("_total") else family + "_total"] = labels
        elif kind in ("histogram", "summary"):
            out[family + "_bucket"] = labels | {"le"}
            out[family + "_sum"] = labels
            out[family + "_count"] = labels
        else:
            out[family] = labels
    return out


# --- what deploy/ queries ----------------------------------------------------------------------


def _load_yaml(path: Path):
    return yaml.safe_load(path.read_text("utf-8"))


def _rules() -> list[dict]:
    return [rule for group in _load_yaml(RULES)["groups"] for rule in group["rules"]]


def _dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text("utf-8")) for p in sorted(DASHBOARD_JSON.glob("*.json"))}


def _panels(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def collect_expressions() -> list[tuple[str, str]]:
    """Every PromQL expression of deploy/: (where it comes from, the expression), over the
    committed dashboard JSON (every panel target) and the rule file (records and alerts).

    Dashboard queries come with Grafana's variables replaced (``GRAFANA_VARIABLES``:
    ``$__rate_interval`` → 1m, ``$task`` and ``$attack`` → ``.*``), so each is plain PromQL that
    a Prometheus API call runs as it is. Sources read ``dashboard <uid> / <panel title> / <refId>``,
    ``record <name>`` or ``alert <name>`` (``alert <name> #<n>`` for an alert of several rules);
    an alert's expression returns series only while its condition holds, a record's and a
    panel's whenever their metrics have data."""
    out = []
    for uid, dashboard in _dashboards().items():
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                out.append((f"dashboard {uid} / {panel['title']} / {target['refId']}", expr))
    rules = _rules()
    names = [r.get("alert") or r["record"] for r in rules]
    for i, (rule, name) in enumerate(zip(rules, names, strict=True)):
        kind = "alert" if "alert" in rule else "record"
        # an alert of several rules (SkyguardCanaryStale): #1, #2, ... in file order
        suffix = f" #{names[: i + 1].count(name)}" if names.count(name) > 1 else ""
        out.append((f"{kind} {name}{suffix}", rule["expr"].strip()))
    return out


_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


def referenced(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """A PromQL expression's series selectors: (metric name → label names in its matchers,
    label names of its by/without/on/ignoring/group_* clauses). A lexical reading, enough for
    the expressions of deploy/ (promtool parses them for real in another test)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string contents can hold anything
    selectors: dict[str, set[str]] = {}

    def selector(m: re.Match) -> str:
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2)))
        selectors.setdefault(m.group(1), set()).update(labels)
        return " "

    text = re.sub(rf"({_NAME})\s*\{{([^}}]*)\}}", selector, text)
    if re.search(r"\{", text):
        raise AssertionError(f"a selector without a metric name: {expr}")
    grouping: set[str] = set()

    def group(m: re.Match) -> str:
        grouping.update(x.strip() for x in m.group(2).split(",") if x.strip())
        return " "

    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", group, text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(r"(?<![a-zA-Z0-9_:.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", " ", text)  # numbers
    for m in re.finditer(rf"({_NAME})\s*(\()?", text):
        name, call = m.group(1), m.group(2)
        if not call and name.lower() not in _KEYWORDS:
            selectors.setdefault(name, set())
    return selectors, grouping


def _records() -> dict[str, set[str]]:
    """Recording rule name → the labels its series carry (its outer by clause)."""
    out = {}
    for rule in _rules():
        if "record" in rule:
            m = re.match(r"\s*\w+\s+by\s*\(([^)]*)\)", rule["expr"])
            labels = {x.strip() for x in m.group(1).split(",")} if m else None
            out[rule["record"]] = labels
    # a record without an outer aggregation keeps the labels of the records it reads
    for name, labels in out.items():
        if labels is None:
            rule = next(r for r in _rules() if r.get("record") == name)
            used, _ = referenced(rule["expr"])
            out[name] = set().union(*(out.get(u) or set() for u in used))
    return out


# --- tools -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install Debian's `prometheus` package (apt-get install prometheus)"
        )
    return path


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def check(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{' '.join(proc.args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


# --- Prometheus --------------------------------------------------------------------------------


def test_prometheus_config(promtool):
    """promtool checks the config and the rule files it names (rule_files must resolve)."""
    out = check(run(promtool, "check", "config", PROMETHEUS_YML))
    assert "1 rule files found" in out
    config = _load_yaml(PROMETHEUS_YML)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "skyguard"
    assert job["scrape_interval"] == "15s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["skyguard:3000"]}]
    assert [PROMETHEUS_YML.parent / f for f in config["rule_files"]] == [RULES]
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


def test_rules_check(promtool):
    out = check(run(promtool, "check", "rules", RULES))
    assert f"{len(_rules())} rules found" in out


def test_rules_unit_tests(promtool):
    """promtool test rules: each alert fires where it should and is silent where it should not."""
    check(run(promtool, "test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent))


def test_rules_name_the_alerts_and_test_each_both_ways():
    rules = _rules()
    alerts = [r for r in rules if "alert" in r]
    assert {r["alert"] for r in alerts} == ALERTS
    groups = {g["name"] for g in _load_yaml(RULES)["groups"]}
    assert groups == {"skyguard"}
    for rule in alerts:
        assert rule["labels"]["severity"] in ("page", "warning"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    fired, silent = set(), set()
    for test in _load_yaml(RULES_TEST)["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case["exp_alerts"] else silent).add(case["alertname"])
    assert fired == ALERTS, f"never shown firing: {ALERTS - fired}"
    assert silent == ALERTS, f"never shown silent: {ALERTS - silent}"


# --- every expression --------------------------------------------------------------------------


def test_collect_expressions_covers_dashboards_and_rules():
    exprs = collect_expressions()
    sources = [s for s, _ in exprs]
    assert len(sources) == len(set(sources))
    assert {s.split()[0] for s in sources} == {"dashboard", "record", "alert"}
    assert {s.split()[1] for s in sources if s.startswith("dashboard")} == set(_dashboards())
    assert not [e for _, e in exprs if "$" in e], "a Grafana variable left in a query"


def test_every_expression_parses(promtool, tmp_path):
    """Each expression as a recording rule of a scratch file: promtool's own PromQL parser."""
    rules = [
        {"record": f"check:expr_{i}", "expr": e} for i, (_, e) in enumerate(collect_expressions())
    ]
    path = tmp_path / "all.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}), "utf-8")
    check(run(promtool, "check", "rules", path))


@pytest.mark.parametrize(("source", "expr"), collect_expressions())
def test_expression_reads_exported_metrics(source, expr):
    series = exported_series()
    records = _records()
    selectors, grouping = referenced(expr)
    assert selectors, f"{source}: no metric in {expr}"
    known_labels = set(TARGET_LABELS)
    for name, labels in selectors.items():
        if name in records:  # a panel may draw what an alert compares against
            allowed = (records[name] or set()) | TARGET_LABELS
        else:
            assert name in series, f"{source}: {name} is not a metric the service exports"
            allowed = series[name] | TARGET_LABELS
        assert labels <= allowed, f"{source}: {name} has no label {labels - allowed}"
        known_labels |= allowed
    assert grouping <= known_labels, (
        f"{source}: grouping by unknown labels {grouping - known_labels}"
    )


def test_referenced_reads_selectors():
    selectors, grouping = referenced(
        'sum by (task) (rate(skyguard_x_total{task=~"a|b}", reason!="{"}[5m])) / 2e3'
        " > on (task) group_left skyguard_y unless absent(skyguard_z:rate15m)"
    )
    assert selectors == {
        "skyguard_x_total": {"task", "reason"},
        "skyguard_y": set(),
        "skyguard_z:rate15m": set(),
    }
    assert grouping == {"task"}


# --- Grafana -----------------------------------------------------------------------------------


def _generator():
    spec = importlib.util.spec_from_file_location(
        "skyguard_deploy_dashboards", GRAFANA / "dashboards.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboards_are_generated_not_edited():
    """The committed JSON is exactly what dashboards.py writes (run it after changing it)."""
    rendered = _generator().render()
    committed = {p.name: p.read_text("utf-8") for p in DASHBOARD_JSON.glob("*.json")}
    assert set(rendered) == set(committed), "run deploy/grafana/dashboards.py"
    for name, text in rendered.items():
        assert committed[name] == text, (
            f"{name} differs from its generator: run deploy/grafana/dashboards.py"
        )


def test_dashboards_and_provisioning_fit_together():
    datasources = _load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    (ds,) = datasources
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    (provider,) = _load_yaml(GRAFANA / "provisioning" / "dashboards" / "skyguard.yml")["providers"]
    grafana = _load_yaml(COMPOSE)["services"]["grafana"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    series = exported_series()
    for uid, dashboard in _dashboards().items():
        assert dashboard["uid"] == uid
        ids = [p["id"] for p in _panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{uid}: panel ids repeat"
        for panel in _panels(dashboard):
            for ref in [panel.get("datasource")] + [
                t.get("datasource") for t in panel.get("targets", [])
            ]:
                if ref is not None:
                    assert ref == {"type": "prometheus", "uid": ds["uid"]}, (
                        f"{uid} / {panel['title']}"
                    )
        for variable in dashboard["templating"]["list"]:
            m = re.fullmatch(rf"label_values\(({_NAME}),\s*(\w+)\)", variable["query"])
            assert m and m.group(1) in series and m.group(2) in series[m.group(1)], variable


# --- Alertmanager ------------------------------------------------------------------------------


def test_alertmanager_route():
    config = _load_yaml(ALERTMANAGER_YML)
    receivers = {r["name"] for r in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert {r["receiver"] for r in routes} <= receivers
    text = ALERTMANAGER_YML.read_text("utf-8")
    assert "REPLACE_ME" in text, "placeholders are marked REPLACE_ME"
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (Debian: prometheus-alertmanager)")
    check(run(amtool, "check-config", ALERTMANAGER_YML))
    for labels, receiver in (
        (["alertname=SkyguardErrorRate", "severity=page"], "skyguard-pager"),
        (["alertname=SkyguardDriftDetected", "severity=warning", "task=lsbg"], "skyguard-team"),
        (["alertname=SkyguardLatentsDropped", "severity=warning"], "skyguard-team"),
    ):
        out = check(
            run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}", *labels)
        )
        assert out.split("\n")[0].strip() == receiver, (labels, out)


# --- docker-compose ----------------------------------------------------------------------------


def test_compose_services_mounts_and_ports():
    compose = _load_yaml(COMPOSE)
    services = compose["services"]
    assert set(services) == {"skyguard", "prometheus", "alertmanager", "grafana"}
    build = services["skyguard"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                path = (DEPLOY / source).resolve()
                # the model store is git-ignored and made by `make serve`; the rest is deploy/
                assert path.exists() or path == ROOT / "models", f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
    # Prometheus reaches the service and Alertmanager under their compose names and ports
    config = _load_yaml(PROMETHEUS_YML)
    host, port = config["scrape_configs"][0]["static_configs"][0]["targets"][0].split(":")
    assert host in services and f"{port}:{port}" in services[host]["ports"]
    host, port = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0].split(
        ":"
    )
    assert host in services and f"{port}:{port}" in services[host]["ports"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    assert (
        "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in services["prometheus"]["volumes"]
    )
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in services["prometheus"]["volumes"]
    assert (
        "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"
        in services["alertmanager"]["volumes"]
    )
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in services["grafana"]["volumes"]
    gpu = _load_yaml(COMPOSE_GPU)["services"]["skyguard"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}


def test_compose_config_validates():
    """The Compose schema, by docker-compose itself (needs no Docker engine)."""
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif shutil.which("docker") and run("docker", "compose", "version").returncode == 0:
        command = ["docker", "compose"]
    else:
        pytest.skip("neither docker-compose (Debian: docker-compose) nor the docker compose plugin")
    check(run(*command, "-f", COMPOSE, "config", "-q"))
    check(run(*command, "-f", COMPOSE, "-f", COMPOSE_GPU, "config", "-q"))


# --- Kubernetes --------------------------------------------------------------------------------


def _k8s() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in sorted(K8S.rglob("*.yaml")):  # secrets/ too
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def test_k8s_kinds_and_api_versions():
    kinds = {(kind, doc["apiVersion"]) for (kind, _), doc in _k8s().items()}
    assert kinds == {
        ("Namespace", "v1"),
        ("Deployment", "apps/v1"),
        ("Service", "v1"),
        ("HorizontalPodAutoscaler", "autoscaling/v2"),
        ("PersistentVolumeClaim", "v1"),
        ("ConfigMap", "v1"),
        ("Role", "rbac.authorization.k8s.io/v1"),
        ("RoleBinding", "rbac.authorization.k8s.io/v1"),
        ("Secret", "v1"),
    }


def test_k8s_cross_references():
    docs = _k8s()
    deployment = docs[("Deployment", "skyguard")]
    service = docs[("Service", "skyguard")]
    hpa = docs[("HorizontalPodAutoscaler", "skyguard")]
    namespace = docs[("Namespace", "skyguard")]["metadata"]["name"]
    for (kind, _), doc in docs.items():
        if kind not in ("Namespace", "ConfigMap"):
            assert doc["metadata"]["namespace"] == namespace, kind
    pod = deployment["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "skyguard",
    }
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    (service_port,) = service["spec"]["ports"]
    target = service_port["targetPort"]
    assert ports.get(target, target) == 3000
    # probes on the container's port, on BentoML's health endpoints
    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/livez"),
        ("startupProbe", "/livez"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path and ports.get(get["port"], get["port"]) == 3000, probe
    resources = container["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1
    assert "cpu" in resources["requests"], "the HPA's CPU utilisation needs a CPU request"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == 3000
    assert annotations["prometheus.io/path"] == "/metrics"
    mounts = {m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert mounts == set(volumes)
    claim = volumes["models"]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in docs
    # the token file: a key of the mounted Secret, at the path the gateway is told
    env = {e["name"]: e.get("value") for e in container["env"]}
    token_file = Path(env["SKYGUARD_API_TOKENS_FILE"])
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "api-tokens"]
    assert token_file.parent == Path(mount["mountPath"]) and mount["readOnly"]
    secret = docs[("Secret", volumes["api-tokens"]["secret"]["secretName"])]
    assert token_file.name in secret["stringData"]
    binding = docs[("RoleBinding", "prometheus-discovery")]
    assert ("Role", binding["roleRef"]["name"]) in docs


def _k8s_prometheus_config() -> dict:
    configmap = _k8s()[("ConfigMap", "prometheus-skyguard")]
    return yaml.safe_load(configmap["data"]["prometheus.yml"])


def test_k8s_token_secret_is_closed_until_filled(tmp_path, monkeypatch):
    """The Secret as shipped holds no token: the gateway refuses to start (closed, never open);
    filled as its comment says, the gateway reads the token from the mounted file."""
    from service.config import api_tokens

    secret = _k8s()[("Secret", "skyguard-api-tokens")]
    mounted = tmp_path / "tokens"
    mounted.write_text(secret["stringData"]["tokens"], "utf-8")
    monkeypatch.delenv("SKYGUARD_API_TOKENS", raising=False)
    monkeypatch.setenv("SKYGUARD_API_TOKENS_FILE", str(mounted))
    with pytest.raises(ValueError, match="holds no token"):
        api_tokens()
    token = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdl+/="
    mounted.write_text(secret["stringData"]["tokens"] + token + "\n", "utf-8")
    assert api_tokens() == (token,)


def test_k8s_scrape_configuration(promtool, tmp_path):
    """The ConfigMap's prometheus.yml: the same job, pods of the Deployment, the annotations'
    port. Debian's promtool is built without Kubernetes discovery, so it checks the file with
    the discovery swapped for a static target (relabelling, alerting, rules still checked), and
    the file as it is only where it knows kubernetes_sd_configs."""
    config = _k8s_prometheus_config()
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "skyguard"
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["role"] == "pod" and sd["namespaces"]["names"] == ["skyguard"]
    pod_labels = _k8s()[("Deployment", "skyguard")]["spec"]["template"]["metadata"]["labels"]
    key, value = sd["selectors"][0]["label"].split("=")
    assert pod_labels[key] == value
    as_is = tmp_path / "as-is.yml"
    as_is.write_text(yaml.safe_dump(config), "utf-8")
    proc = run(promtool, "check", "config", as_is)
    static = dict(job, static_configs=[{"targets": ["10.0.0.1:3000"]}])
    del static["kubernetes_sd_configs"]
    swapped = tmp_path / "static.yml"
    swapped.write_text(yaml.safe_dump(dict(config, scrape_configs=[static])), "utf-8")
    check(run(promtool, "check", "config", swapped))
    if "field kubernetes_sd_configs not found" in proc.stdout + proc.stderr:
        pytest.skip("this promtool is built without Kubernetes discovery (Debian's is)")
    check(proc)


def test_k8s_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in _k8s().values():
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
