"""The %%aiflow magics in an in-process IPython, against a real service and real task runs."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from aiflow_nb import BashTask, Workflow, magics
from aiflow_nb.client import Client
from aiflow_nb.server import control, info
from tests.conftest import RunningService
from tests.server import stored_state, wait, wait_execution, wait_task


def new_shell() -> InteractiveShell:
    """The process's in-process IPython, without the extension an earlier test may have loaded."""
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    magics.unload_ipython_extension(shell)
    shell.extension_manager.loaded.discard("aiflow_nb")
    return shell


@pytest.fixture
def ip(
    service: RunningService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[InteractiveShell]:
    """IPython with ``%load_ext aiflow_nb`` done, connected to the test's service, in a temp cwd."""
    monkeypatch.chdir(tmp_path)
    shell = new_shell()
    assert shell.run_cell("%load_ext aiflow_nb").success
    # One line says which service (a running one here; test_an_unreachable... covers starting one).
    assert (
        capsys.readouterr().out == f"aiflow-nb: connected to the service at {service.info.url} (home {service.home})\n"
    )
    yield shell
    magics.unload_ipython_extension(shell)
    shell.extension_manager.loaded.discard("aiflow_nb")


def line(shell: InteractiveShell, text: str) -> str:
    """Run ``%aiflow TEXT`` and return what it printed."""
    with capture_output() as out:
        shell.run_line_magic("aiflow", text)
    return out.stdout


def cell(shell: InteractiveShell, first: str, body: str) -> None:
    shell.run_cell_magic("aiflow", first, body)


def rejected(shell: InteractiveShell, source: str) -> str:
    """Run a cell that must fail with one UsageError line; return that line."""
    with capture_output() as out:
        result = shell.run_cell(source)
    assert not result.success
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    shown = out.stderr.strip()
    assert shown.startswith("UsageError: ") and "\n" not in shown and "Traceback" not in shown, shown
    return shown[len("UsageError: ") :]


def started(output: str) -> int:
    match = re.fullmatch(r"started execution (\d+) of default/\S+\n", output)
    assert match, output
    return int(match[1])


def test_submit_run_send_and_the_spec_the_service_stores(ip: InteractiveShell, service: RunningService) -> None:
    client = service.client()
    cell(ip, "setup --workflow flow", "import os\nGREETING = 'hi'\n")
    cell(
        ip,
        "task a --workflow flow --param n=7",
        # %aiflow inside a task: the event is scoped to this execution.
        "print(GREETING, n)\n%load_ext aiflow_nb\n%aiflow send inner 7\n",
    )
    cell(ip, "task b --workflow flow --on-event inner --value 7", "print(os.getcwd())")
    cell(ip, "task c --workflow flow --on-event go", "print('c')")
    for _ in range(2):  # the same rule line twice: one rule
        ip.run_line_magic("aiflow", "rule c --workflow flow --on-event again --action restart")
    assert line(ip, "submit flow") == "submitted flow version 1\n"
    assert line(ip, "submit") == "submitted flow version 1\n"  # unchanged: same version
    stored = client.workflow("flow").to_spec()
    assert stored == magics.draft(ip).build("flow").to_spec()
    assert [t["name"] for t in stored["tasks"]] == ["a", "b", "c"]
    assert [len(t["rules"]) for t in stored["tasks"]] == [0, 1, 2]

    execution = started(line(ip, "run flow"))
    wait_task(client, execution, "b", "SUCCESS", timeout=120)
    inner = client.events(key="inner")
    assert [(e.value, e.sender, e.context) for e in inner] == [(7, inner[0].sender, {"execution_id": execution})]
    assert inner[0].sender is not None and inner[0].sender.startswith(f"{execution}/a/")
    assert client.execution(execution).status.value == "RUNNING"  # c waits for "go"
    assert re.fullmatch(r"sent 'go' at offset \d+\n", line(ip, 'send go {"why": "test"}'))
    assert client.events(key="go")[0].value == {"why": "test"}
    wait_execution(client, execution, "SUCCESS", timeout=120)
    te = {t.task: t for t in client.task_executions(execution)}
    assert set(te) == {"a", "b", "c"} and all(t.status.value == "SUCCESS" for t in te.values())
    assert "hi 7" in client.task_log(te["a"].id)
    assert str(Path.cwd()) in client.task_log(te["b"].id)  # a cell task runs in the kernel's cwd

    with capture_output() as out:
        ip.run_line_magic("aiflow", "status")
    assert all("application/vnd.jupyter.widget-view+json" in o.data for o in out.outputs)
    listed = magics._loaded[id(ip)]._widgets[("status",)]
    assert listed.rows() == [
        {"namespace": "default", "name": "flow", "version": "1", "paused": "False", "latest": f"#{execution} SUCCESS"}
    ]
    with capture_output() as out:
        ip.run_line_magic("aiflow", "graph flow")
    [svg] = [o.data["image/svg+xml"] for o in out.outputs]
    assert "<svg" in svg and ">a<" in svg


def test_stop_an_execution_and_live_widgets(ip: InteractiveShell, service: RunningService) -> None:
    client = service.client()
    cell(ip, "task sleeper --workflow slow --namespace team", "import time\ntime.sleep(600)")
    assert line(ip, "submit slow --namespace team") == "submitted team/slow version 1\n"
    output = line(ip, "run slow --namespace team")
    match = re.fullmatch(r"started execution (\d+) of team/slow\n", output)
    assert match, output
    execution = int(match[1])
    with capture_output() as out:
        ip.run_line_magic("aiflow", "status slow --namespace team")
        ip.run_line_magic("aiflow", "events --key ping")
    assert all("application/vnd.jupyter.widget-view+json" in o.data for o in out.outputs)
    shown = dict(magics._loaded[id(ip)]._widgets)
    assert list(shown) == [("status", "team", "slow"), ("events", "ping", "")]
    view, feed = shown.values()
    wait_task(client, execution, "sleeper", "RUNNING", timeout=120)
    client.send_event("ping", 1)
    wait(lambda: "ping" in str(feed.children), what="the event feed to show the event")

    stopped = line(ip, f"stop {execution}")
    assert stopped in (f"execution {execution} is STOPPED\n", f"execution {execution} is STOPPING\n")
    wait_execution(client, execution, "STOPPED")
    wait_task(client, execution, "sleeper", "STOPPED")

    with capture_output():
        ip.run_line_magic("aiflow", "events --key ping")  # re-run: the feed it replaces stops
    wait(lambda: not feed.running, what="the replaced feed to stop")
    magics.unload_ipython_extension(ip)  # and unloading stops the rest
    wait(lambda: not view.running, what="the status view to stop")


def test_status_without_a_name_is_live(ip: InteractiveShell, service: RunningService) -> None:
    client = service.client()
    with Workflow("fails") as wf:
        BashTask("boom", command="exit 3").action_on_event_received("START", "go")
    client.submit(wf)
    execution = client.start_execution("fails")
    with capture_output() as out:
        ip.run_line_magic("aiflow", "status")
    assert all("application/vnd.jupyter.widget-view+json" in o.data for o in out.outputs)
    listed = magics._loaded[id(ip)]._widgets[("status",)]
    assert [r["latest"] for r in listed.rows()] == [f"#{execution} RUNNING"]
    client.send_event("go")
    wait_execution(client, execution, "FAILED", timeout=60)
    wait(lambda: [r["latest"] for r in listed.rows()] == [f"#{execution} FAILED"], what="the list to show FAILED")
    with capture_output():
        ip.run_line_magic("aiflow", "status")  # re-run: the list it replaces stops
    wait(lambda: not listed.running, what="the replaced list to stop")


BAD = [
    ("%aiflow task a --workflow wf --bogus 1 --notebook x.ipynb", "unrecognized arguments: --bogus 1"),
    ("%%aiflow task --workflow wf\npass", "the following arguments are required: name"),
    ("%%aiflow task a\npass", "%%aiflow task needs --workflow WF"),
    ("%%aiflow task a --workflow wf --cron 'every hour'\npass", "cron expression 'every hour' is not valid"),
    ("%%aiflow task a --workflow wf --cron '0 * * * *' --tz Nowhere/City\npass", "timezone 'Nowhere/City'"),
    ("%aiflow workflow wf --interval 0", "interval must be positive"),
    ("%aiflow", "a command is missing"),
    ("%aiflow frobnicate", "unknown command 'frobnicate'"),
    ("%aiflow submit never", "no workflow default/never is drafted here (drafted: default/kept, default/broken"),
    ("%aiflow submit broken", "task 'b', rule 1: upstream task 'ghost' is not in workflow 'broken'"),
    ("%aiflow submit empty", "workflow 'empty' has no tasks yet"),
    ("%aiflow run nothere", "workflow default/nothere"),
    ("%aiflow stop 999", "999"),
    ("%aiflow stop abc", "invalid int value: 'abc'"),
    ("%aiflow send", "%aiflow send needs a KEY"),
    ("%aiflow send --force k", "unknown option '--force'"),
    ("%aiflow status nothere", "nothere"),
    ("%aiflow graph nothere", "nothere"),
    ("%%aiflow submit kept\nprint(1)", "submit is a line magic"),
]


def test_bad_input_is_one_line_and_changes_nothing(ip: InteractiveShell, service: RunningService) -> None:
    client = service.client()
    cell(ip, "task a --workflow kept", "print(1)")
    cell(ip, "task b --workflow broken --after ghost", "pass")  # fine until submitted
    ip.run_line_magic("aiflow", "workflow empty --max-active 1")
    draft = magics.draft(ip)
    drafted = {n: draft.cells(n[1], n[0]) for n in draft.names()}
    before = stored_state(client)
    for source, message in BAD:
        shown = rejected(ip, source)
        assert message in shown, (source, shown)
        assert {n: draft.cells(n[1], n[0]) for n in draft.names()} == drafted, source
    assert stored_state(client) == before


def test_an_unreachable_service_is_one_line_and_server_starts_one(
    ip: InteractiveShell, service: RunningService, home: Path
) -> None:
    cell(ip, "task a --workflow wf", "pass")
    service.stop()
    shown = rejected(ip, "%aiflow submit wf")
    assert "does not answer" in shown and "'%aiflow server' starts one" in shown
    assert magics.draft(ip).names() == [("default", "wf")]  # the draft survives
    pid = None
    try:
        output = line(ip, "server")
        new = info.read(home)
        assert new is not None
        pid = new.pid
        assert output == f"aiflow-nb: started a service at {new.url} (pid {pid}, home {home})\n"
        assert line(ip, "submit wf") == "submitted wf version 1\n"
        assert Client(new.url, new.token).workflow_info("wf").version == 1
        assert line(ip, "server").startswith(f"aiflow-nb: the service at {new.url} is running")
    finally:
        if pid is not None:
            control.stop(home)
            if control.status(home) is not None:
                os.kill(pid, signal.SIGKILL)


def test_an_explicit_url_that_does_not_answer(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("AIFLOW_NB_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("AIFLOW_NB_TOKEN", "x")
    shell = new_shell()
    with capture_output() as out:
        magics.load_ipython_extension(shell)
    try:
        assert out.stdout == "aiflow-nb: using the service at http://127.0.0.1:9\n"  # and starts none
        cell(shell, "task a --workflow wf", "pass")
        shown = rejected(shell, "%aiflow run wf")
        assert "the aiflow-nb service at http://127.0.0.1:9 does not answer" in shown
        assert info.read(home) is None
    finally:
        magics.unload_ipython_extension(shell)


def test_send_reads_the_rest_of_the_line_as_the_value() -> None:
    assert magics.send_args("k") == ("k", None, None)
    assert magics.send_args(' k {"a": [1, 2]} ') == ("k", {"a": [1, 2]}, None)
    assert magics.send_args("""k '{"reason": "manual"}'""") == ("k", {"reason": "manual"}, None)
    assert magics.send_args("k hello world --namespace ops") == ("k", "hello world", "ops")
    assert magics.send_args("--namespace ops k 5") == ("k", 5, "ops")
    assert magics.send_args('k "two words"') == ("k", "two words", None)


def test_why_and_replay_show_a_chain_and_a_timeline_and_refuse_bad_input(
    ip: InteractiveShell, service: RunningService
) -> None:
    client = service.client()
    with Workflow("trig") as wf:
        BashTask("t", command="true")
    client.submit(wf.trigger_on("new_data"))
    client.send_event("new_data")
    wait_execution(client, 1, "SUCCESS", timeout=120)
    [te] = client.task_executions(1)
    assert re.fullmatch(r"t #1 .* <- .*new_data.*\n", line(ip, f"why {te.id}"))

    # The drafted version, triggered the same way: the same run, no difference; the clicked-through version
    # (on another key) would have made none.
    cell(ip, "task t --workflow trig", "print(1)")
    ip.run_line_magic("aiflow", "workflow trig --trigger-on new_data")
    with capture_output() as out:
        ip.run_line_magic("aiflow", "replay trig --since 1h --diff")
    [shown] = [o.data["text/html"] for o in out.outputs]
    assert "<svg" in shown and "<rect" in shown and ">t #1<" in shown
    assert "no difference with what the submitted version did" in shown
    ip.run_line_magic("aiflow", "workflow trig --trigger-on other_data")
    with capture_output() as out:
        ip.run_line_magic("aiflow", "replay trig --since 0 --diff")
    [shown] = [o.data["text/html"] for o in out.outputs]
    assert "<rect" not in shown and "only in reality: t #1" in shown
    # --version N: the submitted version, whatever is drafted here.
    with capture_output() as out:
        ip.run_line_magic("aiflow", "replay trig --since 0 --diff --version 1")
    [shown] = [o.data["text/html"] for o in out.outputs]
    assert ">t #1<" in shown and "no difference with what the submitted version did" in shown

    assert "--since must be an offset, a time ago like 24h" in rejected(ip, "%aiflow replay trig --since yesterday")
    assert "unknown outcome mode 'maybe'" in rejected(ip, "%aiflow replay trig --outcomes maybe")
    assert "workflow default/nope does not exist" in rejected(ip, "%aiflow replay nope")
    assert "trig has no version 4" in rejected(ip, "%aiflow replay trig --version 4")
    assert "task execution 999 does not exist" in rejected(ip, "%aiflow why 999")
    assert [e.id for e in client.executions()] == [1]  # nothing written, nothing started
