"""A type checker accepts operator tasks written as documented and rejects wrong ones.

``mypy --strict`` checks ``typed/good.py`` (no error) and ``typed/bad.py`` (an error on each line marked
``# error``), against the aiflow_nb under test, as a user's project that installed it would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aiflow_nb

pytestmark = pytest.mark.timeout(300)

TYPED = Path(__file__).parent / "typed"


def mypy(tmp_path: Path, *files: Path) -> list[str]:
    source_root = Path(aiflow_nb.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    options = ["--strict", "--no-error-summary", "--show-error-codes", "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *options, "--python-executable", sys.executable, *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode in (0, 1), done.stderr
    return [line for line in done.stdout.splitlines() if ": error: " in line]


def test_mypy_accepts_operator_tasks_and_rejects_each_wrong_argument(tmp_path: Path) -> None:
    errors = mypy(tmp_path, TYPED / "good.py", TYPED / "bad.py")
    assert not [e for e in errors if "good.py" in e], errors
    marked = [i for i, line in enumerate((TYPED / "bad.py").read_text().splitlines(), 1) if "# error" in line]
    flagged = sorted({int(m.group(1)) for e in errors if (m := re.search(r"bad\.py:(\d+):", e))})
    assert flagged == marked, errors
