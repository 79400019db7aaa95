"""One Jupyter server (with aiflow-nb's extension) and one service on its home, per module.

Starting a service costs seconds on a busy machine, so the tests of a module
share one; a test that needs none stops it and the next one that needs it
starts it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb.server import control
from tests.conftest import RunningService, kill_runs
from tests.jupyter.servers import JupyterProcess


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jupyter")


@pytest.fixture(scope="module")
def jupyter(lab_root: Path) -> Iterator[JupyterProcess]:
    server = JupyterProcess(lab_root, lab_root / "aiflow_home").start()
    yield server
    server.stop()


class SharedService:
    """The module's service: started on demand, stopped at the end of the module."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.current: RunningService | None = None

    def running(self) -> RunningService:
        if self.current is None or self.current.proc is None or self.current.proc.poll() is not None:
            self.stop()
            self.current = RunningService(self.home).start()
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None
        control.stop(self.home)  # also one started through Jupyter's /aiflow/service
        kill_runs(self.home)


@pytest.fixture(scope="module")
def shared_service(jupyter: JupyterProcess) -> Iterator[SharedService]:
    shared = SharedService(jupyter.aiflow_home)
    yield shared
    shared.stop()


@pytest.fixture
def aiflow(shared_service: SharedService) -> RunningService:
    """The service on the Jupyter server's aiflow home (shared by the module's tests)."""
    return shared_service.running()


@pytest.fixture
def no_service(shared_service: SharedService) -> Iterator[Path]:
    """No service runs on the Jupyter server's home (and any the test starts is stopped after)."""
    shared_service.stop()
    yield shared_service.home
    shared_service.stop()
