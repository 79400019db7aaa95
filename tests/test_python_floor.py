"""The Python floor in pyproject.toml is what the package's code needs, and the checks run against it.

A user on an older interpreter must be refused by pip, not fail at run time
(the service runs its loop with ``asyncio.Runner``, new in 3.11); mypy must
check the code against the floor; the set-up the README and the Makefile
describe must name the same version.
"""

from __future__ import annotations

import ast
import asyncio
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aiflow_nb"

#: Standard-library names by the Python version that brought them.  A use of
#: one of them in the package raises the floor the code needs to that version.
NEW_IN: dict[tuple[str, str], tuple[int, int]] = {
    ("asyncio", "Runner"): (3, 11),
    ("asyncio", "TaskGroup"): (3, 11),
    ("asyncio", "timeout"): (3, 11),
    ("datetime", "UTC"): (3, 11),
    ("enum", "StrEnum"): (3, 11),
    ("typing", "Self"): (3, 11),
    ("typing", "LiteralString"): (3, 11),
    ("typing", "assert_never"): (3, 11),
    ("tomllib", ""): (3, 11),
    ("itertools", "batched"): (3, 12),
    ("typing", "override"): (3, 12),
    ("warnings", "deprecated"): (3, 13),
}
#: Python's oldest version still maintained when this floor was set: the floor if nothing newer is used.
OLDEST = (3, 10)


def pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def floor() -> tuple[int, int]:
    spec = pyproject()["project"]["requires-python"]
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec)
    assert match, f"requires-python {spec!r} is not a plain '>=X.Y' floor"
    return int(match[1]), int(match[2])


def used_names(tree: ast.AST) -> set[tuple[str, str]]:
    """(module, name) pairs a module uses: ``import m``, ``from m import n`` and ``m.n``."""
    imported_as: dict[str, str] = {}
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported_as[alias.asname or alias.name] = alias.name
                found.add((alias.name, ""))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update((node.module, alias.name) for alias in node.names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported_as:
            found.add((imported_as[node.value.id], node.attr))
    return found


def needed_by_the_code() -> tuple[tuple[int, int], list[str]]:
    need, why = OLDEST, []
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, name in used_names(ast.parse(path.read_text(), str(path))):
            version = NEW_IN.get((module, name))
            if version is not None:
                why.append(f"{path.relative_to(ROOT)}: {module}.{name} (Python {version[0]}.{version[1]})")
                need = max(need, version)
    return need, why


def test_the_floor_is_what_the_code_uses() -> None:
    need, why = needed_by_the_code()
    assert floor() == need, f"requires-python floor {floor()} but the code needs {need}: {why}"


def test_the_package_parses_as_the_floors_python() -> None:
    """No syntax newer than the floor (``type`` aliases, generic classes in brackets, ...)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        ast.parse(path.read_text(), str(path), feature_version=floor())


def test_the_tests_run_on_an_interpreter_that_pip_would_accept() -> None:
    assert sys.version_info[:2] >= floor()
    assert hasattr(asyncio, "Runner")  # what the service runs its event loop with


def test_mypy_checks_against_the_floor() -> None:
    version = tuple(int(part) for part in str(pyproject()["tool"]["mypy"]["python_version"]).split("."))
    assert version == floor()


@pytest.mark.parametrize(
    ("document", "pattern"),
    [
        ("Makefile", r"Python (\d+)\.(\d+)"),  # the machine `make test` (CI: .ci/run) sets itself up on
        ("README.md", r"Python (\d+)\.(\d+) or later"),
    ],
)
def test_the_set_up_names_the_floor(document: str, pattern: str) -> None:
    match = re.search(pattern, (ROOT / document).read_text())
    assert match, f"{document} names no Python version"
    assert (int(match[1]), int(match[2])) == floor()


def test_a_newer_name_raises_what_the_code_needs() -> None:
    """The scan sees the forms the package writes (so the check above can fail)."""
    tree = ast.parse("import asyncio as aio\nfrom itertools import batched\naio.Runner\n")
    assert used_names(tree) >= {("asyncio", "Runner"), ("itertools", "batched")}
