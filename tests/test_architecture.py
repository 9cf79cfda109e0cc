"""The import arrows of the house (STYLE.md): they point one way, and only `storage/` talks
to a database driver. Every import counts, also those inside functions and under
TYPE_CHECKING: a forbidden arrow is forbidden wherever it is written."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("app", "actors", "domain", "projections", "storage")
DRIVERS = ("sqlite3", "sqlite_utils", "pymongo", "bson", "gridfs")

# package -> the packages of ours it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "domain": ("app", "actors", "projections", "storage"),  # nothing of ours
    "actors": ("app", "storage"),
    "projections": ("app", "actors", "storage"),
    "storage": ("app", "actors"),
}


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) for every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def modules_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def violations(package: str, allowed: object) -> list[str]:
    """`file:line imports module` for every import in `package` that `allowed` refuses."""
    assert callable(allowed)
    return [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in modules_of(package)
        for line, module in imports(path)
        if not allowed(module.split(".")[0], module)
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_arrows_point_one_way(package: str) -> None:
    forbidden = FORBIDDEN[package]
    assert not violations(package, lambda top, module: top not in forbidden)


def test_the_domain_imports_only_the_standard_library_and_eventsourcing_domain() -> None:
    def allowed(top: str, module: str) -> bool:
        return top in sys.stdlib_module_names or top == "domain" or module == "eventsourcing.domain"

    assert not violations("domain", allowed)


@pytest.mark.parametrize("package", [p for p in OURS if p != "storage"])
def test_only_storage_talks_to_a_database_driver(package: str) -> None:
    assert not violations(package, lambda top, module: top not in DRIVERS)


def test_only_app_wires_storage_in() -> None:
    others = [p for p in OURS if p not in ("app", "storage")]
    assert not [v for p in others for v in violations(p, lambda top, module: top != "storage")]
    # ... and in app, only the modules that build and hand down storage know a provider.
    providers = ("storage.sqlite", "storage.mongodb")
    knowing = {
        str(path.relative_to(ROOT))
        for path in modules_of("app")
        for _, module in imports(path)
        if module.startswith(providers)
    }
    assert knowing == {"app/storage.py"}


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    # The checker itself: function-level, TYPE_CHECKING and relative imports are found.
    (tmp_path / "actors").mkdir()
    sample = tmp_path / "actors" / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from app.config import Settings\n"
        "def f():\n    import pymongo\n"
        "from .bridge import ask\n"
    )
    found = [module for _, module in imports(sample, tmp_path)]
    assert {"app.config", "pymongo", "actors.bridge"} <= set(found)
