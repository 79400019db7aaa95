"""The package installs both halves: Jupyter lists the lab extension and the server extension, enabled and OK."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def jupyter(*args: str, home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env["HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    # Both commands print to stderr and color their words.
    return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)


def test_lab_extension_is_listed_enabled(tmp_path: Path) -> None:
    out = jupyter("labextension", "list", home=tmp_path)
    assert re.search(r"aiflow-nb v\S+ enabled OK", out), out


def test_server_extension_is_listed_enabled(tmp_path: Path) -> None:
    out = jupyter("server", "extension", "list", home=tmp_path)
    assert re.search(r"aiflow_nb\.jupyter enabled", out), out
    assert re.search(r"aiflow_nb\.jupyter\s+OK", out), out
