"""Issue 7: ``storage/`` is the only package that talks to Redis (auth, refresh tokens, rate
limits included): no module of api/, ws/, service/, engine/ or connectors/ imports ``redis``."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("api", "ws", "service", "engine", "connectors")


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_storage_imports_redis() -> None:
    offenders = [str(path.relative_to(ROOT)) for package in PACKAGES
                 for path in sorted((ROOT / package).rglob("*.py"))
                 if "redis" in _imports(path)]
    assert offenders == []
