"""A run's files are not served through a hard link, as through a symbolic link out of the home (issue 26, item 10)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from aiflow_nb import BashTask, Workflow
from aiflow_nb.executors.base import run_dir
from aiflow_nb.server.app import PREFIX
from tests.conftest import RunningService
from tests.server import call, wait_task


def test_a_hard_link_in_a_run_folder_is_not_served(service: RunningService, home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"  # outside the home, on the same file system as the run folder
    secret.write_text("private key material\n")
    with Workflow("links") as wf:
        # The task itself leaves the link behind, as a hostile or careless one could.
        BashTask("t", command=f"rm log.txt; ln {secret} log.txt; ln {secret} output.ipynb")
    client = service.client()
    client.submit(wf)
    te = wait_task(client, client.start_execution("links"), "t", "SUCCESS")
    folder = run_dir(home, te.id, te.attempt)
    assert os.stat(folder / "log.txt").st_ino == os.stat(secret).st_ino  # the link is there
    url, token = service.info.url, service.info.token
    for name in ("log", "notebook"):
        response = call(url, "GET", f"{PREFIX}/task-executions/{te.id}/{name}", token=token)
        assert response.status == 403, response
        error = json.loads(response.body)["error"]
        assert error["code"] == "forbidden" and "hard link" in error["message"]
        assert b"private key" not in response.body
    # A file of the run's own (one name) is served as before.
    os.unlink(folder / "log.txt")
    (folder / "log.txt").write_text("own output\n")
    assert client.task_log(te.id) == "own output\n"
