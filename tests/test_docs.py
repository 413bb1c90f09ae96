"""The docs site (docs/, mkdocs.yml) says what the code does: its generated parts are current, every
metric, route, alert, dashboard panel and bundle field the code defines appears on its page, the
README's links land on real pages, and ``mkdocs build --strict`` passes.

The generated parts are compared with a fresh rendering by ``docs/gen/generate.py``; the "appears
on its page" checks read the code independently of the generator (the metric definitions by
parsing ``monitors/metrics.py``, the export's fields by parsing ``training/export.py``), so a
generator that silently dropped something would fail them too.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "gen" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


@pytest.mark.parametrize("page", sorted(gen.PARTS))
def test_generated_parts_are_current(page):
    text = (DOCS / page).read_text()
    assert gen.generated(page, text) == text, (
        f"docs/{page} is out of date: run .venv/bin/python docs/gen/generate.py"
    )


def test_a_stale_part_is_rewritten_and_missing_markers_refused():
    text = (DOCS / "monitoring.md").read_text()
    stale = gen.fill(text, "metrics", "nothing here\n")
    assert stale != text and "nothing here\n<!-- end generated: metrics -->" in stale
    assert gen.generated("monitoring.md", stale) == text
    with pytest.raises(ValueError, match="markers of the generated part 'metrics' missing"):
        gen.generated("monitoring.md", "# Monitoring\n")


def _metric_names_in_source() -> list[str]:
    """The first argument of every Counter/Gauge/Histogram call in monitors/metrics.py."""
    tree = ast.parse((ROOT / "monitors" / "metrics.py").read_text())
    names = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("Counter", "Gauge", "Histogram", "Summary", "Info", "Enum")
        ):
            first = node.args[0]
            assert isinstance(first, ast.Constant), ast.dump(first)
            name = first.value
            if node.func.id == "Counter" and not name.endswith("_total"):
                name += "_total"
            names.append(name)
    return names


def test_every_metric_is_on_the_monitoring_page():
    names = _metric_names_in_source()
    assert len(names) >= 20  # the parse found the definitions
    page = (DOCS / "monitoring.md").read_text()
    missing = [n for n in names if f"`{n}" not in page]
    assert not missing, f"metrics of monitors/metrics.py not in docs/monitoring.md: {missing}"


def test_every_alert_and_panel_is_on_the_monitoring_page():
    page = (DOCS / "monitoring.md").read_text()
    for path in (ROOT / "deploy" / "prometheus" / "rules").glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                assert name in page, f"{path.name}: {name} not in docs/monitoring.md"
    for path in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        assert board["title"] in page
        titles = [p["title"] for p in board["panels"]]
        titles += [q["title"] for p in board["panels"] for q in p.get("panels", [])]
        missing = [t for t in titles if t not in page]
        assert not missing, f"{path.name}: panels not in docs/monitoring.md: {missing}"


def test_every_route_is_on_the_api_page():
    doc = gen.openapi_document()
    page = (DOCS / "api.md").read_text()
    routes = [(m.upper(), p) for p, item in doc["paths"].items() for m in item]
    assert ("POST", "/morphology") in routes and ("GET", "/v1/models") in routes
    missing = [f"{m} {p}" for m, p in routes if f"### `{m} {p}`" not in page]
    assert not missing, f"routes not in docs/api.md: {missing}"


def _export_fields() -> set[str]:
    """The keys of the bundle.json dict literal in training/export.py (the one holding
    "schema_version")."""
    tree = ast.parse((ROOT / "training" / "export.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if "schema_version" in keys:
                return keys
    raise AssertionError("no bundle.json literal found in training/export.py")


def test_every_bundle_file_and_field_is_on_the_bundles_page():
    from core.bundle import FILES, REQUIRED, SCHEMA_VERSION

    page = (DOCS / "bundles.md").read_text()
    fields = set(REQUIRED) | _export_fields()
    assert "git_revision" in fields and "files" in fields
    missing = sorted(f for f in fields | set(FILES) if f"`{f}`" not in page)
    assert not missing, f"bundle files or bundle.json fields not in docs/bundles.md: {missing}"
    assert f"Schema version {SCHEMA_VERSION}" in page


def test_readme_is_the_front_door():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make serve" in text and "make test" in text and "curl " in text
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 8
    for link in links:
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"
    pages = {p.name for p in DOCS.glob("*.md")}
    assert pages <= {Path(link).name for link in links} | {"index.md"}, "a page the README skips"


def test_mkdocs_build_strict(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        mkdocs = shutil.which("mkdocs")
    assert mkdocs, "mkdocs is in the dev extra: pip install -c requirements.lock -e '.[dev,cpu]'"
    r = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "site" / "monitoring" / "index.html").is_file()
