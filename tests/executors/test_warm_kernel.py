"""A warm kernel on its own: the run's set-up sent ahead, and what it reads once."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import papermill
import pytest
from jupyter_core.utils import run_sync

from aiflow_nb.executors.warm_kernel import ENGINE, KernelSetupError, WarmKernel
from aiflow_nb.notebooks import write_code_notebook
from tests.executors.test_kernel_pool import wait_gone


@pytest.fixture
def kernel(home: Path) -> Iterator[WarmKernel]:
    kernel = WarmKernel.start("python3")
    pid = kernel.manager.provisioner.pid
    try:
        yield kernel
    finally:
        kernel.shut_down()
        wait_gone({pid})


def test_the_set_up_runs_before_anything_else_sent_to_the_kernel(kernel: WarmKernel, tmp_path: Path) -> None:
    kernel.set_up(f"import os; os.chdir({str(tmp_path)!r}); os.environ['AIFLOW_NB_PROBE'] = 'set'")
    run_sync(kernel.settle)()
    reply = kernel.run_silently(
        f"import os; assert os.getcwd() == {str(tmp_path)!r}; assert os.environ['AIFLOW_NB_PROBE'] == 'set'"
    )
    assert reply["status"] == "ok", reply.get("evalue")


def test_a_failed_set_up_is_named_and_the_kernel_still_answers(kernel: WarmKernel) -> None:
    kernel.set_up("import os; os.chdir('/no/such/folder')")
    with pytest.raises(KernelSetupError, match=r"could not prepare the warm kernel: .*No such file or directory"):
        run_sync(kernel.settle)()
    assert kernel.run_silently("pass")["status"] == "ok"


def test_the_kernels_language_is_read_when_it_starts(kernel: WarmKernel) -> None:
    assert kernel.language_info["name"] == "python"
    assert kernel.language_info["version"].count(".") == 2


def test_a_set_up_the_kernel_does_not_answer_in_time_is_named(kernel: WarmKernel) -> None:
    kernel.set_up("import time; time.sleep(3)")
    with pytest.raises(KernelSetupError, match=r"could not prepare the warm kernel: .*did not answer within 0.2 s"):
        run_sync(kernel.settle)(timeout=0.2)


def test_a_kernel_that_dies_before_it_answers_leaves_the_run_to_a_kernel_of_its_own(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Started without waiting (as a forked runner starts its kernel), it ends before it answers:
    # the notebook runs, on a kernel the engine starts for it.
    spec = tmp_path / "jupyter" / "kernels" / "dies"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-c", "raise SystemExit(3)", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "dies", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    kernel = WarmKernel.start("dies", wait=False)
    out = tmp_path / "pid.txt"
    notebook = write_code_notebook(tmp_path / "x.ipynb", f"import os\nopen({str(out)!r}, 'w').write(str(os.getpid()))")
    try:
        papermill.execute_notebook(
            str(notebook), str(tmp_path / "out.ipynb"), kernel_name="python3", engine_name=ENGINE,
            warm_kernel=kernel, progress_bar=False,
        )  # fmt: skip
    finally:
        kernel.shut_down()
    assert int(out.read_text()) != kernel.manager.provisioner.pid
