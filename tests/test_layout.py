"""The package layout, read from the imports: every import points down, and the runtime needs
nothing of training but what the canaries attack with.

Bottom to top: ``core`` (bundle format and store, preprocessing, MMD kernels, datasets) →
``training`` → ``experiments`` → ``monitors`` → ``service`` → ``scoring`` → ``cli``. Imports
inside functions count as much as those at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "training", "experiments", "monitors", "service", "scoring", "cli")
RUNTIME = {"monitors", "service", "scoring"}
#: The one module of the runtime that may use training: the canaries attack the live model with
#: the training package's attacks, on its torch rebuild of the bundle, at its recipes' budgets.
CANARY_NEEDS = {
    "training.attacks",
    "training.losses",
    "training.metrics",
    "training.recipes",
    "training.verify",
}


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module, line) of every import of a skyguard package in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # relative: own package
            out.append((node.module or "", node.lineno))
    return [(m, line) for m, line in out if m.split(".")[0] in LAYERS]


def _modules() -> list[Path]:
    return [p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))]


def test_packages_import_only_downwards():
    """Every import of another skyguard package points to a lower layer."""
    upward = []
    for path in _modules():
        rel = path.relative_to(ROOT)
        own = LAYERS.index(rel.parts[0])
        for module, line in _imports(path):
            if LAYERS.index(module.split(".")[0]) > own:
                upward.append(f"{rel}:{line} imports {module}")
    assert not upward, "imports pointing up the layout:\n" + "\n".join(upward)


def test_core_imports_no_other_package():
    for path in sorted((ROOT / "core").rglob("*.py")):
        others = [m for m, _ in _imports(path) if m.split(".")[0] != "core"]
        assert not others, f"{path.relative_to(ROOT)} imports {others}"


def test_runtime_needs_of_training_only_the_canaries_attacks():
    """monitors/, service/ and scoring/ import nothing of training or experiments, except the
    canary module's attack kit."""
    found = []
    for path in _modules():
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in RUNTIME:
            continue
        for module, line in _imports(path):
            top = ".".join(module.split(".")[:2])
            if module.split(".")[0] not in {"training", "experiments"}:
                continue
            if rel.as_posix() == "monitors/canaries.py" and top in CANARY_NEEDS:
                continue
            found.append(f"{rel}:{line} imports {module}")
    assert not found, "the runtime reaches into training:\n" + "\n".join(found)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The reader finds imports inside functions, where an upward one would hide."""
    path = tmp_path / "mod.py"
    path.write_text("from . import x\ndef f():\n    from cli.main import main\n    import numpy\n")
    assert _imports(path) == [("cli.main", 3)]
