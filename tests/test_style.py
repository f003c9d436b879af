"""Code-shape rules from STYLE.md that a machine can check: short functions in the library."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 60  # lines; STYLE.md 16: a function that needs a scroll is a class or a hook waiting


def test_no_library_function_is_longer_than_60_lines():
    long = []
    for root in ("nasnet_det", "search"):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > LIMIT:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n})")
    assert not long, f"functions over {LIMIT} lines: " + ", ".join(long)


def test_the_check_sees_a_long_function(tmp_path):
    # The rule above must be able to fail: a 90-line function is counted as 90 lines.
    src = "def f():\n" + "    x = 1\n" * 89
    (node,) = ast.parse(src).body
    assert node.end_lineno - node.lineno + 1 == 90
