"""The package installs both halves: Jupyter lists the lab extension and the server extension, enabled and OK.

The packaging check builds the sdist and the wheel from a clean clone of the checkout (what is committed,
nothing the checkout built or ran), installs the wheel with ``[lab]`` in a fresh venv and asks that
venv's Jupyter for both extensions; it also looks into the archives as a package index would show them.
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Building the lab extension (npm install) and installing JupyterLab into a fresh venv take minutes.
pytestmark = pytest.mark.timeout(3600)


def jupyter(*args: str, home: Path, python: str = sys.executable) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["HOME"] = str(home)
    done = subprocess.run(
        [python, "-m", "jupyter", *args], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    # Both commands print to stderr and color their words.
    return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)


def assert_both_extensions_enabled(home: Path, python: str = sys.executable) -> None:
    labs = jupyter("labextension", "list", home=home, python=python)
    assert re.search(r"aiflow-nb v\S+ enabled OK", labs), labs
    servers = jupyter("server", "extension", "list", home=home, python=python)
    assert re.search(r"aiflow_nb\.jupyter enabled", servers), servers
    assert re.search(r"aiflow_nb\.jupyter\s+OK", servers), servers


def test_lab_and_server_extensions_are_listed_enabled(tmp_path: Path) -> None:
    assert_both_extensions_enabled(tmp_path)


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 900) -> None:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and the wheel, built from a clean clone of the checkout's committed state."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    work = tmp_path_factory.mktemp("packaging")
    clone = work / "clone"
    run("git", "clone", "--quiet", "--no-hardlinks", ROOT, clone)
    # The wheel from the sdist, as pip builds it from a package index.
    run(sys.executable, "-m", "build", "--outdir", work / "dist", clone, timeout=1800)
    [sdist] = (work / "dist").glob("aiflow_nb-*.tar.gz")
    [wheel] = (work / "dist").glob("aiflow_nb-*.whl")
    return sdist, wheel


def test_sdist_has_the_license_and_no_run_output(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    assert "LICENSE" in names
    assert "docs/semantics.md" in names  # the README's paths name files of the sdist
    assert not [n for n in names if n.startswith(("notebooks/quickstart_data", "labextension/node_modules"))]


def test_wheel_has_the_license_and_a_readme_without_dead_links(built: tuple[Path, Path]) -> None:
    _, wheel = built
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        [meta] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(zf.read(meta))
    assert any(re.search(r"\.dist-info/licenses/LICENSE$", n) for n in names), names
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert any(n.startswith("aiflow_nb-") and "/share/jupyter/labextensions/aiflow-nb/" in n for n in names)
    # A package index shows the README as the description: a relative link there leads nowhere.
    readme = metadata.get_payload()
    assert isinstance(readme, str) and "aiflow-nb" in readme
    relative = re.findall(r"\]\((?!https?://|#|mailto:)([^)\s]+)\)", readme)
    assert not relative, f"relative links in the README are dead on a package index: {relative}"
    # It is docs/pypi.md, not README.md (whose screenshots are relative images).
    assert "pip install aiflow-nb" in readme and "![" not in readme
    assert metadata["Description-Content-Type"] == "text/markdown"


def test_the_wheel_installs_in_a_fresh_venv_with_both_extensions_enabled(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    _, wheel = built
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", f"{wheel}[lab]", timeout=1800)
    (tmp_path / "home").mkdir()
    assert_both_extensions_enabled(tmp_path / "home", str(python))
