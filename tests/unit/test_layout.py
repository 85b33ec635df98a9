"""The code's layout holds: layers import downwards only, SQL only in the adapters, small
functions and modules (docs/adr/ADR-009-layers.md)."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# lower layers first; a package may import only packages of lower layers (and itself)
LAYERS = [
    ("domain",),
    ("core",),
    ("adapters",),
    ("consumers",),
    ("actors", "serve_app"),
    ("cluster",),
    ("cli",),
    ("bench",),  # the benchmark may use the CLI's checks (invariants), never the other way
]
PACKAGES = [p for layer in LAYERS for p in layer]
LEVEL = {p: i for i, layer in enumerate(LAYERS) for p in layer}
_SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+(\s+\w+)?\s+SET|DELETE\s+FROM)\b",
    re.IGNORECASE | re.DOTALL,
)


def _modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


@cache
def _source(path: Path) -> str:
    return path.read_text()


@cache
def _tree(path: Path) -> ast.Module:
    """Each module read and parsed once for all the checks below."""
    return ast.parse(_source(path))


def _imports(path: Path) -> set[str]:
    tree = _tree(path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_lower_layers(package: str) -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(package)
        for name in _imports(path)
        if name != package and LEVEL[name] >= LEVEL[package]
    }
    assert not wrong, sorted(wrong)


def test_domain_imports_nothing_of_the_platform_nor_any_infrastructure() -> None:
    infra = {"ray", "psycopg", "psycopg_pool", "redis", "aiokafka", "sqlalchemy", "fastapi"}
    for path in _modules("domain"):
        tree = _tree(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for mod in mods:
                    top = mod.split(".")[0]
                    assert top in {"domain", "__future__"} or top not in {*PACKAGES, *infra}, (
                        f"{path.relative_to(ROOT)} imports {mod}"
                    )


def _strings(path: Path) -> list[tuple[int, str]]:
    tree = _tree(path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
            out.append((node.lineno, str(text)))
    return out


def test_sql_text_lives_only_in_the_adapters() -> None:
    others = [p for p in PACKAGES if p != "adapters"]
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _modules(*others)
        for line, text in _strings(path)
        if _SQL.search(text)
        and not text.lstrip().startswith(('"""', "The ", "A "))
        and "\n\n" not in text  # docstrings that mention SQL words are prose, not statements
    ]
    assert not found, found


def test_no_function_over_60_lines_and_no_module_over_300() -> None:
    long_functions, long_modules = [], []
    for path in _modules(*PACKAGES):
        source = _source(path)
        if source.count("\n") > 300:
            long_modules.append(f"{path.relative_to(ROOT)} ({source.count(chr(10))} lines)")
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.name} ({length})")
    assert not long_modules, long_modules
    assert not long_functions, long_functions
