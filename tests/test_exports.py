"""The package's public names: ``aiflow_nb.__all__`` is the one list, and everything else follows it."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import aiflow_nb

ROOT = Path(__file__).resolve().parent.parent
INIT = ROOT / "aiflow_nb" / "__init__.py"


def test_every_public_name_resolves_to_what_its_module_defines() -> None:
    assert len(set(aiflow_nb.__all__)) == len(aiflow_nb.__all__)
    for name in aiflow_nb.__all__:
        value = getattr(aiflow_nb, name)
        assert getattr(value, "__name__", name) == name, f"aiflow_nb.{name} is {value!r}"


def test_a_name_outside_the_list_is_refused() -> None:
    for name in ("Rule", "Outcome", "scheduler_internals"):
        assert not hasattr(aiflow_nb, name)


def test_the_type_checkers_see_the_same_names() -> None:
    """The ``if TYPE_CHECKING:`` imports (what mypy and editors read) are exactly ``__all__``."""
    tree = ast.parse(INIT.read_text())
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    imported = [
        alias.asname or alias.name for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names
    ]
    assert sorted(imported) == sorted(aiflow_nb.__all__)


def test_star_import_gives_the_list() -> None:
    namespace: dict[str, object] = {}
    exec("from aiflow_nb import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(aiflow_nb.__all__)


def test_the_readme_imports_only_public_names_and_lists_none_of_its_own() -> None:
    readme = (ROOT / "README.md").read_text()
    imports = re.findall(r"from aiflow_nb import ([\w, ]+)", readme)
    assert imports, "the README shows no import from aiflow_nb"
    for line in imports:
        for name in (part.strip() for part in line.split(",")):
            assert name in aiflow_nb.__all__, f"README imports {name!r}, which aiflow_nb does not export"
    # The README points at the list rather than copying it.
    assert "aiflow_nb.__all__" in readme


def test_a_task_process_importing_the_model_loads_no_database_or_http_stack() -> None:
    """The names are imported on first use: a task's ``stop_requested`` or a ``Workflow`` pulls in
    neither DuckDB nor the HTTP libraries."""
    code = (
        "import sys\n"
        "from aiflow_nb import Workflow, NotebookTask, TaskAction, stop_requested\n"
        "print(' '.join(m for m in ('duckdb', 'httpx', 'tornado', 'pyarrow') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
