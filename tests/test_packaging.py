"""What can be checked here of the container and the Bento without a Docker engine."""

from __future__ import annotations

import json
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


def _served_packages() -> set[str]:
    """The top-level skyguard packages that service/service.py reaches through its imports."""
    from tests.test_layout import LAYERS, _imports

    seen, todo = set(), [ROOT / "service" / "service.py"]
    packages = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        packages.add(path.relative_to(ROOT).parts[0])
        for module, _ in _imports(path):
            packages.add(module.split(".")[0])
            base = ROOT / module.replace(".", "/")
            for cand in (base.with_suffix(".py"), base / "__init__.py"):
                if cand.is_file():
                    todo.append(cand)
        # a package's modules import their siblings relatively
        todo += [p for p in path.parent.glob("*.py") if path.parent.name in LAYERS]
    return packages


def test_container_and_bento_carry_every_package_the_service_imports():
    packages = _served_packages()
    assert {"core", "monitors", "service", "training"} <= packages
    assert not packages & {"cli", "scoring", "experiments"}
    copied = re.findall(r"^COPY (\w+) \1$", (ROOT / "Dockerfile").read_text(), re.M)
    include = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["include"]
    for pkg in packages:
        assert pkg in copied, f"the Dockerfile does not COPY {pkg}/, which the service imports"
        assert any(p.startswith(f"{pkg}/") for p in include), f"bentofile.yaml lacks {pkg}/"


def test_the_openapi_override_holds_on_the_locked_bentoml():
    """service.service overrides ``bentoml.Service.openapi_spec``, which BentoML does not document
    as an extension point: an upgrade must fail here, not in a client's generator."""
    import bentoml

    lock = re.search(r"^bentoml==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M)
    assert bentoml.__version__ == lock.group(1), "BentoML is not the locked version"
    assert isinstance(getattr(bentoml.Service, "openapi_spec", None), property)

    from service.service import Skyguard

    # what the override fixes (tests/test_service.py validates the whole served document)
    text = json.dumps(Skyguard.openapi_spec.asdict())
    assert '"type": "file"' not in text and '"type": "tensor"' not in text
    assert '{"type": "null"}' not in text and '"nullable": true' in text
