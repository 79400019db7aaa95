"""Where an aiflow-nb home is: ``AIFLOW_NB_HOME`` or ``~/.aiflow_nb``."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    return Path(os.environ.get("AIFLOW_NB_HOME") or Path.home() / ".aiflow_nb")


def database_path(home: Path) -> Path:
    return home / "aiflow.duckdb"
