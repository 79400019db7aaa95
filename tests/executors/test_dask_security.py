"""The dask executor trusts no pickle from the cluster, speaks TLS, and keeps the task token out of sight
(issue 26, items 4 and 5)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client as DaskClient

from aiflow_nb import BashTask, Engine, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.errors import ExecutorError
from aiflow_nb.executors import dask_worker

pytestmark = pytest.mark.timeout(240)


def finished(engine: Engine, execution_id: int) -> WorkflowStatus:
    return engine.wait_for(
        lambda: engine.execution(execution_id).status.finished and engine.execution(execution_id).status,
        timeout=120,
        what="the execution to finish",
    )


class Booby:
    """Unpickling it creates a file: proof that a process unpickled what a worker sent."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def _install(marker: str) -> None:
    """On a worker: replace aiflow-nb's run function, as anyone who reaches the scheduler can."""
    from aiflow_nb.executors import dask_worker as module

    module._real_run = module.run  # type: ignore[attr-defined]

    def hostile(request: dict[str, Any], service: Any, home: str) -> Any:
        return Booby(marker)

    module.run = hostile  # type: ignore[assignment]


def _restore() -> None:
    from aiflow_nb.executors import dask_worker as module

    module.run = getattr(module, "_real_run", module.run)


def test_a_result_a_worker_sends_is_never_unpickled(home: Path, dask_cluster: str, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled-by-the-service"
    with DaskClient(dask_cluster, timeout=30) as attacker:
        attacker.run(_install, str(marker))
        try:
            with Engine(home, executor="dask", executor_options={"address": dask_cluster}) as engine:
                with Workflow("victim") as wf:
                    BashTask("t", command="true")
                engine.submit(wf)
                ex = engine.start_execution("victim")
                assert finished(engine, ex) is WorkflowStatus.FAILED
                (te,) = engine.task_executions(ex)
                assert te.status is TaskStatus.FAILED
                assert "result on the Dask cluster was missing or not aiflow-nb's" in (te.error or "")
        finally:
            attacker.run(_restore)
    assert not marker.exists(), "the service unpickled the worker's result"


def test_the_run_result_travels_as_checked_json() -> None:
    good = dask_worker.payload("SUCCESS", None, "a log\n", '{"cells": []}')
    assert dask_worker.decode_result(dask_worker.encode_result(good)) == good
    for bad in (b"\x80\x05", {"status": "SUCCESS"}, '{"status": "PWNED"}', '{"status": "FAILED", "log": 3}', "[1]"):
        with pytest.raises(ValueError):
            dask_worker.decode_result(bad)


def test_the_task_token_is_not_shown_in_the_tasks_arguments() -> None:
    hidden = dask_worker.Hidden("s3cr3t-token-value")
    assert "s3cr3t" not in repr({"url": "http://x", "token": hidden})
    assert "s3cr3t" not in str([hidden])


# -- TLS --------------------------------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A throwaway CA and one certificate it signed for 127.0.0.1 (scheduler, workers and the service use it)."""
    folder = tmp_path_factory.mktemp("tls")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=aiflow-nb test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "node.key",
            "-out", "node.csr", cwd=folder)  # fmt: skip
    (folder / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext.cnf", "-out", "node.pem", cwd=folder)  # fmt: skip
    return {"ca": str(folder / "ca.pem"), "cert": str(folder / "node.pem"), "key": str(folder / "node.key")}


@pytest.fixture(scope="module")
def tls_cluster(certificates: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real LocalCluster that only speaks TLS and requires a certificate of the CA from every peer."""
    from distributed import LocalCluster, Security

    from aiflow_nb.executors import process

    security = Security(
        tls_ca_file=certificates["ca"],
        tls_scheduler_cert=certificates["cert"],
        tls_scheduler_key=certificates["key"],
        tls_worker_cert=certificates["cert"],
        tls_worker_key=certificates["key"],
        tls_client_cert=certificates["cert"],
        tls_client_key=certificates["key"],
        require_encryption=True,
    )
    folder = tmp_path_factory.mktemp("dask-tls")
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=True,
        protocol="tls://",
        host="127.0.0.1",
        security=security,
        dashboard_address=":0",  # no fixed port (8787 may be taken by another cluster)
        local_directory=str(folder),
    )
    try:
        with DaskClient(cluster.scheduler_address, security=security, timeout=30) as client:
            pids = set(client.run(os.getpid).values())
        yield cluster.scheduler_address
    finally:
        cluster.close()
        for pid in pids:
            if process.alive(pid, None):
                os.kill(pid, 9)


def test_runs_go_to_a_tls_cluster_with_the_services_certificate(
    home: Path, tls_cluster: str, certificates: dict[str, str]
) -> None:
    assert tls_cluster.startswith("tls://")
    options = {"address": tls_cluster, **{f"tls_{k}": v for k, v in certificates.items()}}
    with Engine(home, executor="dask", executor_options=options) as engine:
        with Workflow("over_tls") as wf:
            BashTask("t", command="echo ran over TLS")
        engine.submit(wf)
        ex = engine.start_execution("over_tls")
        assert finished(engine, ex) is WorkflowStatus.SUCCESS
        (te,) = engine.task_executions(ex)
        assert "ran over TLS" in engine.task_log(te.id)


def test_tls_settings_that_cannot_work_are_one_clear_error(
    home: Path, tls_cluster: str, certificates: dict[str, str]
) -> None:
    files = {f"tls_{k}": v for k, v in certificates.items()}
    cases = [
        ({"address": tls_cluster, **files, "tls_key": None}, "--dask-tls-key is missing"),
        ({"address": tls_cluster, **files, "tls_ca": "/nowhere/ca.pem"}, "--dask-tls-ca /nowhere/ca.pem: no such file"),
        ({"address": "tcp://127.0.0.1:1", **files}, "is not tls://"),
    ]
    for options, message in cases:
        with pytest.raises(ExecutorError, match=re.escape(message)):
            Engine(home, executor="dask", executor_options=options)
