"""The aiflow-nb command line against a real service: each command's round trip, and user mistakes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from aiflow_nb import BashTask, Workflow
from aiflow_nb.cli.workflows import load_workflows
from tests.cli_runner import cli, cli_json, mistake
from tests.conftest import RunningService
from tests.server import wait_execution, wait_for_file, wait_task, write_notebook


def header(table: str) -> list[str]:
    return table.splitlines()[0].split()


def write_workflow_file(path: Path, tmp_path: Path) -> Path:
    notebook = write_notebook(tmp_path / "hello.ipynb", "print('hello from the notebook')")
    path.write_text(
        f"""
from aiflow_nb import BashTask, NotebookTask, Workflow

with Workflow("clidemo") as wf:
    BashTask("first", command="echo from-first")
    NotebookTask("nb", notebook={str(notebook)!r})
    waiter = BashTask("waiter", command={wait_for_file(tmp_path / "never")!r})
    waiter.action_on_event_received("START", "go")
"""
    )
    return path


def test_workflow_execution_and_task_commands(service: RunningService, home: Path, tmp_path: Path) -> None:
    client = service.client()
    source = write_workflow_file(tmp_path / "flows.py", tmp_path)
    assert cli_json(home, "workflow", "submit", str(source)) == [
        {"namespace": "default", "name": "clidemo", "version": 1}
    ]
    with Workflow("fromjson", namespace="team") as other:
        BashTask("t", command="true")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(other.to_spec()))
    assert cli_json(home, "--output", "json", "workflow", "submit", str(spec)) == [
        {"namespace": "team", "name": "fromjson", "version": 1}
    ]
    submitted = cli(home, "workflow", "submit", str(source)).stdout  # unchanged: same version, as a table
    assert header(submitted) == ["NAMESPACE", "NAME", "VERSION"]
    assert submitted.splitlines()[1].split() == ["default", "clidemo", "1"]

    # list / show / pause / resume
    listed = cli_json(home, "workflow", "list")
    assert [(w["namespace"], w["name"], w["paused"]) for w in listed] == [
        ("default", "clidemo", False),
        ("team", "fromjson", False),
    ]
    table = cli(home, "workflow", "list").stdout
    assert header(table) == ["NAMESPACE", "NAME", "VERSION", "PAUSED", "LATEST"]
    assert [line.split()[:2] for line in table.splitlines()[1:]] == [["default", "clidemo"], ["team", "fromjson"]]
    shown = cli_json(home, "workflow", "show", "clidemo")
    assert Workflow.from_spec(shown["spec"]) == load_workflows(source)[0]
    assert [t["name"] for t in shown["spec"]["tasks"]] == ["first", "nb", "waiter"]
    assert [
        t["name"] for t in cli_json(home, "workflow", "show", "fromjson", "--namespace", "team")["spec"]["tasks"]
    ] == ["t"]
    shown_text = cli(home, "workflow", "show", "clidemo").stdout
    assert "name: clidemo" in shown_text and ["TASK", "KIND", "RULES", "STREAMING"] in [
        line.split() for line in shown_text.splitlines()
    ]
    assert cli_json(home, "workflow", "pause", "clidemo") == {"paused": True}
    assert client.workflow_info("clidemo").paused is True
    assert cli_json(home, "workflow", "resume", "clidemo") == {"resumed": True}
    assert client.workflow_info("clidemo").paused is False

    # executions
    ex = cli_json(home, "execution", "start", "clidemo")["id"]
    other_ex = cli_json(home, "execution", "start", "fromjson", "--namespace", "team")["id"]
    wait_execution(client, other_ex, "SUCCESS")
    first = wait_task(client, ex, "first", "SUCCESS")
    nb = wait_task(client, ex, "nb", "SUCCESS", timeout=120)
    assert [e["id"] for e in cli_json(home, "execution", "list")] == [ex, other_ex]
    assert [e["id"] for e in cli_json(home, "execution", "list", "clidemo", "--status", "RUNNING")] == [ex]
    assert [e["id"] for e in cli_json(home, "execution", "list", "--status", "SUCCESS")] == [other_ex]
    assert [e["id"] for e in cli_json(home, "execution", "list", "--namespace", "team")] == [other_ex]
    assert cli_json(home, "execution", "list", "clidemo", "--status", "FAILED") == []
    shown_ex = cli_json(home, "execution", "show", str(ex))
    assert (shown_ex["id"], shown_ex["workflow"], shown_ex["status"]) == (ex, "clidemo", "RUNNING")
    assert sorted(t["task"] for t in shown_ex["task_executions"]) == ["first", "nb"]
    executions_table = cli(home, "execution", "list").stdout
    assert header(executions_table) == ["ID", "NAMESPACE", "WORKFLOW", "VERSION", "STATUS", "START_TIME", "END_TIME"]

    # the graph
    svg = tmp_path / "graph.svg"
    assert cli_json(home, "workflow", "graph", "clidemo", "--out", str(svg)) == {"written": str(svg)}
    assert "<svg" in svg.read_text() and "clidemo" in svg.read_text()

    # tasks
    tasks = cli_json(home, "task", "list", str(ex))
    assert sorted((t["task"], t["status"]) for t in tasks) == [("first", "SUCCESS"), ("nb", "SUCCESS")]
    task_table = cli(home, "task", "list", str(ex)).stdout
    assert header(task_table) == ["ID", "TASK", "SEQ", "ATTEMPT", "STATUS", "START_TIME", "DURATION", "ERROR"]
    # DURATION as people read it (the JSON keeps seconds).
    at = task_table.splitlines()[0].index("DURATION")
    durations = [line[at:].split("  ")[0] for line in task_table.splitlines()[1:]]
    assert all(re.fullmatch(r"\d+ ms|\d+\.\d s|\d+ min \d+ s|\d+ h \d+ min", d) for d in durations), durations
    assert all(isinstance(t["duration"], float) for t in tasks)
    # A workflow's name lists the task runs of its latest execution, as the usage says.
    assert cli_json(home, "task", "list", "clidemo") == tasks
    assert cli_json(home, "task", "list", "fromjson", "--namespace", "team") == cli_json(
        home, "task", "list", str(other_ex)
    )
    assert cli(home, "task", "list", "clidemo").stdout.splitlines()[0] == task_table.splitlines()[0]
    assert [(t["task"], t["seq"]) for t in cli_json(home, "task", "start", str(ex), "waiter")] == [("waiter", 1)]
    wait_task(client, ex, "waiter", "RUNNING")
    cli_json(home, "task", "stop", str(ex), "waiter")
    wait_task(client, ex, "waiter", "STOPPED")
    restarted = cli_json(home, "task", "restart", str(ex), "waiter")
    assert [t["seq"] for t in restarted] == [1, 2]
    wait_task(client, ex, "waiter", "RUNNING", seq=2)
    assert "from-first" in cli(home, "task", "log", str(first.id)).stdout
    out = tmp_path / "executed.ipynb"
    cli(home, "task", "notebook", str(nb.id), "--out", str(out))
    executed = nbformat.read(out, as_version=4)
    assert "hello from the notebook" in "".join(o.get("text", "") for c in executed.cells for o in c.outputs)
    assert json.loads(cli(home, "task", "notebook", str(nb.id)).stdout)["cells"]

    # stop, delete
    stopped = cli_json(home, "execution", "stop", str(ex))
    assert stopped["id"] == ex
    wait_execution(client, ex, "STOPPED")
    assert cli_json(home, "workflow", "delete", "clidemo") == {"deleted": True}
    assert [w["name"] for w in cli_json(home, "workflow", "list")] == ["fromjson"]

    status = cli_json(home, "server", "status")
    assert (status["running"], status["healthy"], status["pid"]) == (True, True, service.pid)


def test_event_commands(service: RunningService, home: Path) -> None:
    client = service.client()
    since = client.health()["latest_offset"]
    sent = cli_json(home, "event", "send", "cli-key", '{"a": 1}')["offset"]
    text = cli_json(home, "event", "send", "cli-key", "plain words", "--namespace", "other")["offset"]
    assert cli(home, "event", "send", "cli-key", "7").stdout.strip() == f"sent 'cli-key' at offset {text + 1}"
    stored = client.events(since=since)
    assert [(e.offset, e.key, e.value, e.namespace) for e in stored] == [
        (sent, "cli-key", {"a": 1}, "default"),
        (text, "cli-key", "plain words", "other"),
        (text + 1, "cli-key", 7, "default"),
    ]
    listed = cli_json(home, "event", "list", "--since", str(sent), "--key", "cli-key")
    assert [(e["offset"], e["value"]) for e in listed] == [(text, "plain words"), (text + 1, 7)]
    assert [e["offset"] for e in cli_json(home, "event", "list", "--namespace", "other")] == [text]
    table = cli(home, "event", "list", "--since", str(since)).stdout
    assert header(table) == ["OFFSET", "NAMESPACE", "KEY", "VALUE", "SENDER", "CREATE_TIME"]
    assert len(table.splitlines()) == 4

    # tail: what is there after --since, then live, until Ctrl-C.
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiflow_nb.cli",
            "--home",
            str(home),
            "event",
            "tail",
            "--since",
            str(text),
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stdout is not None
        assert json.loads(tail.stdout.readline())["offset"] == text + 1
        live = client.send_event("live", "now")
        assert json.loads(tail.stdout.readline())["offset"] == live
        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=60) == 0
        assert tail.stderr is not None and "Traceback" not in tail.stderr.read()
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
        for stream in (tail.stdout, tail.stderr):
            if stream is not None:
                stream.close()


def test_user_mistakes_exit_non_zero_with_one_line(service: RunningService, home: Path, tmp_path: Path) -> None:
    raises = tmp_path / "raises.py"
    raises.write_text("raise RuntimeError('kaboom in the workflow file')\n")
    broken = tmp_path / "broken.py"
    broken.write_text("with Workflow(\n")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    bad_spec = tmp_path / "bad.json"
    bad_spec.write_text('{"name": "x", "tasks": []}')
    missing = tmp_path / "missing.py"

    assert "999" in mistake(home, "execution", "show", "999")
    assert "999" in mistake(home, "execution", "stop", "999")
    assert "must be a number" in mistake(home, "execution", "show", "latest")
    assert "999" in mistake(home, "task", "list", "999")
    assert "workflow default/hourly" in mistake(home, "task", "list", "hourly")
    assert "999" in mistake(home, "task", "log", "999")
    assert str(missing) in mistake(home, "workflow", "submit", str(missing))
    assert "kaboom in the workflow file" in mistake(home, "workflow", "submit", str(raises))
    assert "SyntaxError" in mistake(home, "workflow", "submit", str(broken))
    assert "defines no Workflow" in mistake(home, "workflow", "submit", str(empty))
    assert "bad.json" in mistake(home, "workflow", "submit", str(bad_spec))
    assert "nope" in mistake(home, "execution", "start", "nope")
    assert "nope" in mistake(home, "workflow", "show", "nope")
    assert "nope" in mistake(home, "workflow", "delete", "nope")
    assert "key" in mistake(home, "event", "send", " ")
    assert "TASK" in mistake(home, "task", "start", "1")
    assert client_state_is_empty(service)

    # argparse misuse: exit 2 with usage.
    assert "invalid choice" in mistake(home, "execution", "frobnicate", code=2)
    assert "needs a name or id" in mistake(home, "workflow", "show", code=2)


def test_version(home: Path) -> None:
    from aiflow_nb import __version__

    assert cli(home, "--version").stdout == f"aiflow-nb {__version__}\n"


def test_task_list_of_a_workflow_without_executions(service: RunningService, home: Path) -> None:
    with Workflow("idle") as wf:
        BashTask("t", command="true")
    service.client().submit(wf)
    assert mistake(home, "task", "list", "idle") == "aiflow-nb: workflow default/idle has no execution yet"


def client_state_is_empty(service: RunningService) -> bool:
    client = service.client()
    return client.workflows() == [] and client.executions() == [] and client.events() == []


def test_commands_without_a_service(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-service-home"
    message = mistake(nowhere, "workflow", "list")
    assert "no aiflow-nb service is running" in message and "aiflow-nb server start" in message
    assert "no aiflow-nb service is running" in mistake(nowhere, "event", "send", "k")
    assert cli(nowhere, "server", "status", code=3).stdout.startswith("no aiflow-nb service is running")
    assert cli_json(nowhere, "server", "stop") == {"stopped": False, "home": str(nowhere.resolve())}


@pytest.fixture(autouse=True)
def _no_env_service(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI must find the service through --home only.
    monkeypatch.delenv("AIFLOW_NB_URL", raising=False)
    monkeypatch.delenv("AIFLOW_NB_TOKEN", raising=False)


def test_workflow_submit_of_a_notebook_with_aiflow_cells(service: RunningService, home: Path, tmp_path: Path) -> None:
    from nbformat import v4

    from aiflow_nb.workflow.cells import workflows_from_notebook

    nb = v4.new_notebook()
    nb.cells = [
        v4.new_markdown_cell("Two workflows, defined by cells"),
        v4.new_code_cell("%load_ext aiflow_nb"),
        v4.new_code_cell("%%aiflow task first --workflow nbflow --param n=2\nprint(n)"),
        v4.new_code_cell("%%aiflow task second --workflow nbflow --after first\nprint('second')"),
        v4.new_code_cell("%aiflow workflow other --namespace team --trigger-on go\n%aiflow submit nbflow"),
        v4.new_code_cell("%%aiflow task only --workflow other --namespace team\nprint('other')"),
    ]
    path = tmp_path / "flows.ipynb"
    nbformat.write(nb, path)
    assert cli_json(home, "workflow", "submit", str(path)) == [
        {"namespace": "default", "name": "nbflow", "version": 1},
        {"namespace": "team", "name": "other", "version": 1},
    ]
    client = service.client()
    assert [client.workflow(w.name, w.namespace) for w in load_workflows(path)] == workflows_from_notebook(path)
    assert client.executions() == []  # submitting runs nothing

    nb.cells.append(v4.new_code_cell("%%aiflow task third --workflow nbflow --after ghost\npass"))
    nbformat.write(nb, path)
    message = mistake(home, "workflow", "submit", str(path))
    assert "flows.ipynb" in message and "'ghost'" in message
    assert [w.version for w in client.workflows()] == [1, 1]


def test_event_send_file_sends_an_ndjson_file_all_or_none(service: RunningService, home: Path, tmp_path: Path) -> None:
    client = service.client()
    since = client.health()["latest_offset"]
    good = tmp_path / "events.ndjson"
    good.write_text(
        '{"key": "bulk", "value": {"i": 1}}\n\n{"key": "bulk", "value": "é", "namespace": "other", '
        '"idempotency_key": "bulk-2"}\n',
        encoding="utf-8",
    )
    assert cli_json(home, "event", "send", "--file", str(good))["offsets"] == [since + 1, since + 2]
    # Sent again: the event with a key of its own keeps its offset, the other is appended again.
    again = cli(home, "event", "send", "--file", str(good)).stdout.strip()
    assert again == f"sent 2 events from {good} (offsets {since + 2}-{since + 3})"
    piped = subprocess.run(
        [sys.executable, "-m", "aiflow_nb.cli", "--home", str(home), "event", "send", "--file", "-", "-o", "json"],
        input='{"key": "piped", "value": [1, 2]}\n',
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout) == {"offsets": [since + 4]}
    stored = client.events(since=since)
    assert [(e.offset, e.key, e.value, e.namespace) for e in stored] == [
        (since + 1, "bulk", {"i": 1}, "default"),
        (since + 2, "bulk", "é", "other"),
        (since + 3, "bulk", {"i": 1}, "default"),
        (since + 4, "piped", [1, 2], "default"),
    ]
    # A mistake names the file and its line; nothing of the file is sent.
    bad = tmp_path / "bad.ndjson"
    for text, message in [
        ('{"key": "ok"}\n\n{"key": " "}\n', f"{bad}, line 3: event key must be a non-empty string"),
        ('{"key": "ok"}\n{"key": "ok", "colour": 1}\n', f"{bad}, line 2: unknown event field(s): colour"),
        ('{"key": "ok"}\n{"key": \n', f"{bad}, line 2, column 1: not valid JSON"),
        ('{"key": "ok", "value": ' + "9" * 5000 + "}\n", f"{bad}, line 1: not valid JSON here (Exceeds the limit"),
        ("\n", f"{bad} holds no events"),
    ]:
        bad.write_text(text, encoding="utf-8")
        failed = cli(home, "event", "send", "--file", str(bad), code=1)
        assert failed.stderr.startswith(f"aiflow-nb: {message}"), failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1
    missing = cli(home, "event", "send", "--file", str(tmp_path / "nope.ndjson"), code=1)
    assert "cannot read" in missing.stderr and "nope.ndjson" in missing.stderr
    assert "not both" in cli(home, "event", "send", "k", "--file", str(good), code=2).stderr
    assert client.events(since=since + 4) == []
