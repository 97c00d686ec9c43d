"""The shape of the code: app/ uses only the public APIs of its libraries. (The layers are
import-linter's contract in pyproject.toml, checked by `make lint`.)"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"

# Modules that are a library's own machinery, not its API.
INTERNAL = ("sqlalchemy.util", "sqlalchemy.pool.impl", "asyncpg.protocol", "asyncpg.pool")


def _imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _is_internal(module: str) -> bool:
    if module.startswith(INTERNAL):
        return True
    root, *rest = module.split(".")
    return root != "app" and any(part.startswith("_") for part in rest)


def test_no_module_of_app_imports_a_library_internal():
    offenders = {
        f"{path.relative_to(APP.parent)}: {module}"
        for path in APP.rglob("*.py")
        for module in _imported_modules(ast.parse(path.read_text(), str(path)))
        if _is_internal(module)
    }
    assert not offenders, sorted(offenders)


def test_the_check_sees_a_private_import():
    tree = ast.parse("from sqlalchemy.util.queue import AsyncAdaptedQueue\nimport asyncpg._x\n")
    assert {m for m in _imported_modules(tree) if _is_internal(m)} == {
        "sqlalchemy.util.queue",
        "sqlalchemy.util.queue.AsyncAdaptedQueue",
        "asyncpg._x",
    }


def test_imports_run_downward_through_the_layers():
    """import-linter's contract (pyproject.toml; `make lint` runs it too), so that `make test`
    and CI keep the layers as well."""
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(linter), "--no-cache"], cwd=APP.parent, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
