"""Public functions that take or return arrays say their shapes, and type their parameters
(issue 23 §3), read from the source so that it stays true."""

from __future__ import annotations

import ast
import re

from test_layout import LAYERS, ROOT

ARRAY = re.compile(r"ndarray|Tensor")
#: a shape in brackets with at least one axis named in capitals or given as a number: [N, D], [B, H, W], [2J]
SHAPE = re.compile(r"\[[^\]]*[A-Z0-9][^\]]*\]")


def _array_functions():
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    if node.name.startswith("_"):
                        continue
                    signature = ast.unparse(node.args) + (
                        ast.unparse(node.returns) if node.returns else ""
                    )
                    if ARRAY.search(signature):
                        yield path.relative_to(ROOT), node


def test_array_functions_state_shapes_and_types():
    found, problems = 0, []
    for rel, node in _array_functions():
        found += 1
        if not SHAPE.search(ast.get_docstring(node) or ""):
            problems.append(f"{rel}:{node.lineno} {node.name}: no shape in the docstring")
        untyped = [a.arg for a in node.args.args if a.annotation is None]
        untyped = [a for a in untyped if a not in ("self", "cls")]
        if untyped:
            problems.append(f"{rel}:{node.lineno} {node.name}: untyped {untyped}")
    assert found > 100, "the reader found too few array functions: is it reading the packages?"
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_missing_shape(tmp_path):
    text = 'def f(x: np.ndarray) -> np.ndarray:\n    """Doubles x."""\n'
    node = ast.parse(text).body[0]
    assert not SHAPE.search(ast.get_docstring(node))
    assert SHAPE.search("x [N, D] float32")
