"""The generated parts of the docs site, written from the code so that they cannot drift:

* ``api`` in ``docs/api.md`` — every route of the service's OpenAPI document, which BentoML builds
  from the ``Skyguard`` class (its ``@bentoml.api`` methods and the mounted ``/v1`` FastAPI app)
  without serving and without any bundle in the store;
* ``settings`` in ``docs/service.md`` — the table of ``SKYGUARD_*`` variables in
  ``service/config.py``'s docstring;
* ``metrics``, ``rules`` and ``dashboards`` in ``docs/monitoring.md`` — every metric defined in
  ``monitors/metrics.py`` (name, type, labels, meaning, and which rules and panels read it), every
  recording and alert rule of ``deploy/prometheus/rules/``, and every panel of the committed
  Grafana dashboards (``deploy/grafana/dashboards/*.json``, themselves regenerated from
  ``deploy/grafana/dashboards.py`` and compared by ``tests/test_deploy.py``).

Each part lives between two markers in its page; the prose around them is written by hand::

    <!-- generated: NAME (docs/gen/generate.py; do not edit by hand) -->
    ...
    <!-- end generated: NAME -->

Run from the repository root::

    .venv/bin/python docs/gen/generate.py          # rewrite the generated parts
    .venv/bin/python docs/gen/generate.py --check  # exit 1, naming the pages, if any is stale

``make docs`` runs ``--check`` before ``mkdocs build --strict``, and ``tests/test_docs.py``
regenerates and compares, so a change of a route, a metric, a rule or a panel fails CI until the
pages are regenerated.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
DASHBOARDS_DIR = ROOT / "deploy" / "grafana" / "dashboards"

BEGIN = "<!-- generated: {name} (docs/gen/generate.py; do not edit by hand) -->"
END = "<!-- end generated: {name} -->"

# a metric name as PromQL writes it (for the "read by" cross-references)
_METRIC_TOKEN = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _sys_path() -> None:
    """The project's packages importable when this file is run as a script."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _rst(text: str) -> str:
    """A docstring as Markdown: dedented, reST double backticks as single ones."""
    return inspect.cleandoc(text or "").replace("``", "`")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (one line, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


# --- the HTTP API ------------------------------------------------------------------------------
def openapi_document() -> dict:
    """The gateway's OpenAPI document as ``/docs.json`` serves it, built from the service class.

    Importing ``service.service`` reads the ``SKYGUARD_*`` settings but opens no bundle: the
    bundles are loaded in the services' ``__init__``, which building the document never calls.
    """
    _sys_path()
    from service.service import Skyguard

    return Skyguard.openapi_spec.asdict()


def _schema_type(schema: dict, doc: dict) -> str:
    """A JSON schema in a few words: ``array of file``, ``one of none, zero, median``."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string" and schema.get("format") == "binary":
        text = "file"
    elif kind == "array":
        items = schema.get("items") or {}
        text = (
            "array of " + _schema_type(items, doc) if items else "array (nested lists of numbers)"
        )
    elif kind == "object":
        text = "object"
    elif "anyOf" in schema:
        text = " or ".join(_schema_type(s, doc) for s in schema["anyOf"])
    else:
        text = str(kind or "any")
    return text + (" or null" if schema.get("nullable") else "")


def _request_body(body: dict, doc: dict) -> list[str]:
    out = []
    for content_type, media in body.get("content", {}).items():
        schema = media.get("schema", {})
        if "$ref" in schema:
            schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        required = set(schema.get("required", []))
        out += [f"Request body, `{content_type}`:", ""]
        rows = []
        for name, prop in schema.get("properties", {}).items():
            default = "—" if name in required else f"`{json.dumps(prop.get('default'))}`"
            rows.append([f"`{name}`", _schema_type(prop, doc),
                         "yes" if name in required else "no", default])  # fmt: skip
        out += _table(["field", "type", "required", "default"], rows) + [""]
        encoding = media.get("encoding")
        if encoding:
            parts = ", ".join(
                f"`{k}` as `{v['contentType']}`" for k, v in encoding.items() if "contentType" in v
            )
            out += [f"Form fields sent as JSON parts: {parts}.", ""]
    return out


def _responses(responses: dict, doc: dict) -> list[str]:
    rows = []
    for code, resp in responses.items():
        body = ""
        for content_type, media in resp.get("content", {}).items():
            body = f"`{content_type}`: {_schema_type(media.get('schema', {}), doc)}"
        rows.append([f"`{code}`", resp.get("description", ""), body])
    return _table(["status", "meaning", "body"], rows)


def render_api(doc: dict | None = None) -> str:
    """The ``api`` part of docs/api.md: the route index, then each operation."""
    doc = doc or openapi_document()
    ops = [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict)
    ]

    def group(op: dict) -> str:
        return (op.get("tags") or ["Models, drift and robustness (/v1)"])[0]

    groups: dict[str, list] = {}
    for entry in ops:
        groups.setdefault(group(entry[2]), []).append(entry)

    def summary(op: dict) -> str:
        text = op.get("summary") or _rst(op.get("description", ""))
        return text.split("\n\n")[0]

    lines = [f"OpenAPI {doc['openapi']}; {len(ops)} operations.", ""]
    lines += _table(
        ["method", "path", "group", "what it does"],
        [[m.upper(), f"`{p}`", group(o), summary(o)] for p, m, o in ops],
    )
    for name, entries in groups.items():
        lines += ["", f"## {name}", ""]
        for path, method, op in entries:
            lines += [f"### `{method.upper()} {path}`", ""]
            text = _rst(op.get("description", "")) or op.get("summary", "")
            if text:
                lines += [text, ""]
            if "requestBody" in op:
                lines += _request_body(op["requestBody"], doc)
            lines += _responses(op.get("responses", {}), doc) + [""]
    errors = [
        s for s in ("InvalidArgument", "NotFound", "InternalServerError")
        if s in doc.get("components", {}).get("schemas", {})
    ]  # fmt: skip
    if errors:
        lines += ["## Error bodies", ""]
        rows = []
        for s in errors:
            schema = doc["components"]["schemas"][s]
            fields = ", ".join(
                f"`{k}` ({v.get('title', '')}{', required' if k in schema.get('required', []) else ''})"
                for k, v in schema.get("properties", {}).items()
            )
            rows.append([f"`{s}`", schema.get("description", ""), fields])
        lines += _table(["schema", "meaning", "fields"], rows) + [""]
    return "\n".join(lines).rstrip() + "\n"


# --- metrics, rules, dashboards ----------------------------------------------------------------
def metric_definitions() -> list[dict]:
    """Every prometheus_client metric defined in ``monitors/metrics.py``, in definition order:
    ``{"name"}`` (the family name a scrape shows), ``type``, ``labels``, ``help``, ``series``
    (the sample names: ``_total``; ``_bucket``/``_sum``/``_count``), ``buckets``, ``mode``."""
    _sys_path()
    from prometheus_client.metrics import MetricWrapperBase

    import monitors.metrics as m

    out = []
    for attr, value in vars(m).items():
        if not isinstance(value, MetricWrapperBase) or attr.startswith("_"):
            continue
        kind = value._type
        name = value._name
        series = {
            "counter": [f"{name}_total"],
            "histogram": [f"{name}_bucket", f"{name}_sum", f"{name}_count"],
        }.get(kind, [name])
        out.append(
            {
                "attr": attr,
                "name": name,
                "type": kind,
                "labels": list(value._labelnames),
                "help": value._documentation,
                "series": series,
                "buckets": [b for b in getattr(value, "_upper_bounds", []) if b != float("inf")],
                "mode": getattr(value, "_multiprocess_mode", None),
            }
        )
    return out


def rule_files() -> list[Path]:
    """The rule files Prometheus loads (their promtool unit tests left out)."""
    return sorted(p for p in RULES_DIR.glob("*.yml") if not p.name.endswith(".test.yml"))


def rules() -> list[dict]:
    """Every rule of every group: ``{"file", "group", "record" | "alert", "expr", ...}``."""
    out = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append({"file": path.name, "group": group["name"], **rule})
    return out


def dashboards() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))]


def _panels(dashboard: dict) -> Iterable[tuple[str | None, dict]]:
    """(row title, panel) in the dashboard's order; a collapsed row's panels sit inside it."""
    row = None
    for p in dashboard["panels"]:
        if p.get("type") == "row":
            row = p.get("title")
            for inner in p.get("panels", []):
                yield row, inner
            continue
        yield row, p


def _exprs(panel: dict) -> list[str]:
    return [t["expr"] for t in panel.get("targets", []) if t.get("expr")]


def _reads(expr: str, names: Iterable[str]) -> set[str]:
    tokens = set(_METRIC_TOKEN.findall(expr))
    return {n for n in names if tokens & {n, f"{n}_total", f"{n}_bucket", f"{n}_sum", f"{n}_count"}}


def render_metrics() -> str:
    """The ``metrics`` part of docs/monitoring.md."""
    _sys_path()
    from service.fits_input import REASONS

    defs = metric_definitions()
    names = [d["name"] for d in defs]
    readers: dict[str, list[str]] = {n: [] for n in names}
    for r in rules():
        for n in _reads(r["expr"], names):
            readers[n].append(f"rule `{r.get('alert') or r.get('record')}`")
    for d in dashboards():
        for _, p in _panels(d):
            for n in set().union(*(_reads(e, names) for e in _exprs(p))):
                readers[n].append(f"panel “{p.get('title')}” ({d['uid']})")
    rows = []
    for d in defs:
        kind = d["type"] + (
            f" (multiprocess: {d['mode']})" if d["type"] == "gauge" and d["mode"] else ""
        )
        meaning = d["help"]
        if d["buckets"]:
            meaning += "; buckets " + ", ".join(f"{b:g}" for b in d["buckets"])
        used = sorted(dict.fromkeys(readers[d["name"]]))
        rows.append(
            [
                "<br>".join(f"`{s}`" for s in d["series"]),
                kind,
                ", ".join(f"`{label}`" for label in d["labels"]),
                meaning,
                "; ".join(used) or "—",
            ]
        )
    lines = [f"{len(defs)} metrics, defined in `monitors/metrics.py`.", ""]
    lines += _table(["series", "type", "labels", "meaning", "read by"], rows)
    lines += [
        "",
        "`reason` of `skyguard_rejected_inputs_total` (every value exists from the start, at 0): "
        + ", ".join(f"`{r}`" for r in REASONS)
        + ".",
    ]
    bentoml = sorted(
        {
            re.sub(r"_(bucket|sum|count)$", "", t)
            for e in [r["expr"] for r in rules()]
            + [x for d in dashboards() for _, p in _panels(d) for x in _exprs(p)]
            for t in _METRIC_TOKEN.findall(e)
            if t.startswith("bentoml_")
        }
    )
    if bentoml:
        lines += [
            "",
            "BentoML's own metrics that the rules and dashboards read: "
            + ", ".join(f"`{t}`" for t in bentoml)
            + ".",
        ]
    return "\n".join(lines) + "\n"


def render_rules() -> str:
    """The ``rules`` part of docs/monitoring.md: recording rules, then alerts."""
    all_rules = rules()
    records = [r for r in all_rules if "record" in r]
    alerts = [r for r in all_rules if "alert" in r]
    files = ", ".join(f"`deploy/prometheus/rules/{p.name}`" for p in rule_files())
    lines = [f"{len(records)} recording rules and {len(alerts)} alerts, from {files}.", ""]
    lines += ["### Recording rules", ""]
    for r in records:
        lines += [f"`{r['record']}`", "", "```promql", r["expr"].strip(), "```", ""]
    lines += ["### Alerts", ""]
    lines += _table(
        ["alert", "for", "labels", "summary"],
        [
            [
                f"`{r['alert']}`",
                r.get("for", "—"),
                ", ".join(f"{k}={v}" for k, v in r.get("labels", {}).items()),
                r.get("annotations", {}).get("summary", ""),
            ]
            for r in alerts
        ],
    )
    lines.append("")
    for r in alerts:
        extra = f" ({r['labels']['reason']})" if "reason" in r.get("labels", {}) else ""
        lines += [f"#### {r['alert']}{extra}", ""]
        description = r.get("annotations", {}).get("description")
        if description:
            lines += ["```text", description.strip(), "```", ""]
        lines += ["```promql", r["expr"].strip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def render_dashboards() -> str:
    """The ``dashboards`` part of docs/monitoring.md: every panel of every dashboard."""
    boards = dashboards()
    lines = [
        f"{len(boards)} dashboards, `deploy/grafana/dashboards/*.json` "
        "(written by `deploy/grafana/dashboards.py`).",
        "",
    ]
    for d in boards:
        variables = [v["name"] for v in d.get("templating", {}).get("list", [])]
        lines += [f"### {d['title']} (`{d['uid']}`)", "", d.get("description", ""), ""]
        if variables:
            lines += ["Variables: " + ", ".join(f"`${v}`" for v in variables) + ".", ""]
        row = object()
        for r, p in _panels(d):
            if r != row:
                row = r
                if r:
                    lines += [f"#### {r}", ""]
            lines += [f"**{p.get('title')}** ({p.get('type')}) — {p.get('description', '')}", ""]
            exprs = _exprs(p)
            if exprs:
                lines += ["```promql", *exprs, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def render_settings() -> str:
    """The ``settings`` part of docs/service.md: ``service/config.py``'s own table of every
    ``SKYGUARD_*`` variable, as written there."""
    _sys_path()
    import service.config

    return "```text\n" + inspect.cleandoc(service.config.__doc__ or "") + "\n```\n"


# --- pages -------------------------------------------------------------------------------------
#: page → {part name: renderer}
PARTS: dict[str, dict[str, Callable[[], str]]] = {
    "api.md": {"api": render_api},
    "service.md": {"settings": render_settings},
    "monitoring.md": {
        "metrics": render_metrics,
        "rules": render_rules,
        "dashboards": render_dashboards,
    },
}


def fill(text: str, name: str, body: str, page: str = "page") -> str:
    """``text`` with the part ``name`` between its markers replaced by ``body``."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"{page}: markers of the generated part {name!r} missing: {begin!r}")
    return text[: i + len(begin)] + "\n" + body + text[j:]


def generated(page: str, current: str) -> str:
    """The page ``page`` (a name under docs/) with every generated part rendered anew."""
    for name, render in PARTS[page].items():
        current = fill(current, name, render(), page)
    return current


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a page is out of date")
    args = ap.parse_args(argv)
    stale = []
    for page in PARTS:
        path = DOCS / page
        old = path.read_text()
        new = generated(page, old)
        if new != old:
            stale.append(page)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"out of date: {', '.join('docs/' + p for p in stale)}; "
              "run .venv/bin/python docs/gen/generate.py", file=sys.stderr)  # fmt: skip
        return 1
    print(("updated: " if stale else "up to date: ") + ", ".join(stale or PARTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
