"""What can be checked here of the container and the Bento without a Docker engine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def test_dockerfile_is_consistent():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:[\d.]+-cudnn-runtime-ubuntu", text, re.M)
    for src in re.findall(r"^COPY (\S+(?: \S+)*) \S+$", text, re.M):
        for path in src.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which does not exist"
    # the GPU build of ONNX Runtime, and never the CPU build beside it
    assert "'.[gpu]'" in text and "grep -v '^onnxruntime=='" in text
    assert "service.service:Skyguard" in text
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(d.startswith("onnxruntime-gpu") for d in extras["gpu"])
    assert not any(d.startswith("onnxruntime") for d in extras["gpu"] if "gpu" not in d)


def test_bentofile_points_at_the_service():
    cfg = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    module, cls = cfg["service"].split(":")
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
    assert f"class {cls}" in (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert cfg["python"]["requirements_txt"] == "./requirements-serve.txt"
    lock = (ROOT / "requirements.lock").read_text()
    assert re.search(r"^torch==2\.13\.0$", lock, re.M), "torch must stay pinned to the CPU wheel"


def test_bento_requirements_are_the_runtime_closure_of_the_lock():
    """The Bento installs what the service needs at the locked versions, and no dev tools:
    requirements-serve.txt is exactly what ``python -m service.requirements`` derives."""
    from service.requirements import serve_requirements

    committed = (ROOT / "requirements-serve.txt").read_text()
    assert committed == serve_requirements(), (
        "run: python -m service.requirements > requirements-serve.txt"
    )
    names = {line.split("==")[0].lower() for line in committed.splitlines() if "==" in line}
    assert {"torch", "onnxruntime", "bentoml", "galsim", "prometheus-client"} <= names
    assert not names & {"pytest", "ruff", "pyspark", "grafana-foundation-sdk", "pandas"}
