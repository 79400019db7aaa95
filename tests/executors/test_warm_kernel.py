"""A warm kernel on its own: the run's set-up sent ahead, and what it reads once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_core.utils import run_sync

from aiflow_nb.executors.warm_kernel import KernelSetupError, WarmKernel
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
