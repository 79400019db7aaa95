"""The client: finding the service, its errors, and sends that survive a service restart without doubling."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiflow_nb import BashTask, Engine, Event, NotebookTask, Workflow, errors
from aiflow_nb.client import Client
from aiflow_nb.events import MAX_VALUE_BYTES
from tests.conftest import RunningService
from tests.server import wait, wait_execution, wait_task, write_notebook


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- discovery ------------------------------------------------------------------------------


def test_discovery_from_arguments_environment_and_server_json(
    service: RunningService, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, token = service.info.url, service.info.token
    empty = tmp_path / "elsewhere"  # a home where nothing runs
    with Client(url, token, home=empty) as client:
        assert (client.url, client.token) == (url, token)
        assert client.health()["status"] == "ok"

    monkeypatch.setenv("AIFLOW_NB_URL", url)
    monkeypatch.setenv("AIFLOW_NB_TOKEN", token)
    with Client(home=empty) as client:
        assert (client.url, client.token) == (url, token)
        assert client.workflows() == []  # the token from the environment is accepted

    # Arguments win over the environment.
    monkeypatch.setenv("AIFLOW_NB_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AIFLOW_NB_TOKEN", "stale")
    with Client(url, token, home=empty) as client:
        assert client.workflows() == []

    # Without either: server.json of the home (given, or AIFLOW_NB_HOME, which the fixture sets).
    monkeypatch.delenv("AIFLOW_NB_URL")
    monkeypatch.delenv("AIFLOW_NB_TOKEN")
    with Client(home=home) as by_home, Client() as by_env:
        assert (by_home.url, by_home.token) == (url, token) == (by_env.url, by_env.token)
        assert by_home.send_event("found") == by_env.events(key="found")[0].offset


def test_no_service_is_a_clear_error(service: RunningService, home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    with pytest.raises(errors.ServiceUnavailableError) as info:
        Client(home=empty)
    assert str(empty) in str(info.value) and "aiflow-nb server start" in str(info.value)
    assert isinstance(info.value, ConnectionError)

    # A server.json left by a killed service is not taken for a running one.
    service.kill()
    assert (home / "server.json").exists()
    with pytest.raises(errors.ServiceUnavailableError, match="no aiflow-nb service is running"):
        Client(home=home)

    # A known address where nothing answers: retried calls give up after retry_for, others at once.
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, "token", home=empty, retry_for=0.5) as client:
        with pytest.raises(errors.ServiceUnavailableError, match=f"{url} does not answer"):
            client.health()
        with pytest.raises(errors.ServiceUnavailableError, match="does not answer"):
            client.start_execution("anything")

    # A URL the client cannot use, or a host that does not exist: named at once, not retried.
    for bad in ("localhost:8888", "https://127.0.0.1:8888", "http://127.0.0.1:port", "http:///api"):
        with pytest.raises(errors.ServiceUnavailableError, match="expected http://HOST:PORT") as caught:
            Client(bad, "token", home=empty)
        assert repr(bad) in str(caught.value)
    nowhere = Client("http://no-such-host.invalid:8888", "token", home=empty, retry_for=30)
    with (
        nowhere,
        pytest.raises(errors.ServiceUnavailableError, match="cannot reach the aiflow-nb service at http://no-"),
    ):
        nowhere.health()


# -- errors -----------------------------------------------------------------------------------


def test_errors_are_the_engines_types_and_messages(service: RunningService, tmp_path: Path) -> None:
    """The same calls on an in-process engine (another home) and through the client fail alike."""
    with Workflow("good") as good:
        BashTask("t", command="true")
    with Workflow("good") as ghost:
        BashTask("t", command="true").start_after("ghost")
    spec = good.to_spec()
    spec["tasks"][0]["schedule"] = {"cron": "every day", "interval": None, "timezone": "UTC"}

    calls: list[tuple[str, Callable[[Any], object]]] = [
        ("rule on an unknown task", lambda api: api.submit(ghost)),
        ("workflow without tasks", lambda api: api.submit(Workflow("empty"))),
        ("bad cron", lambda api: api.submit(Workflow.from_spec(spec) if isinstance(api, Engine) else spec)),
        ("empty event key", lambda api: api.send_event("")),
        ("oversized event", lambda api: api.send_event("big", "x" * MAX_VALUE_BYTES)),
        ("empty idempotency key", lambda api: api.send_event("k", idempotency_key="")),
        ("value with a lone surrogate", lambda api: api.send_event("file", {"name": "caf\udce9.csv"})),
        ("value that is not JSON", lambda api: api.send_event("set", {1, 2})),
        ("key with a lone surrogate", lambda api: api.send_event("k\udc80")),
        ("unknown workflow", lambda api: api.start_execution("nope")),
        ("pause an unknown workflow", lambda api: api.pause("nope")),
        ("unknown execution", lambda api: api.execution(999)),
        ("stop an unknown execution", lambda api: api.stop_execution(999)),
        ("unknown task", lambda api: api.start_task(1, "ghost")),
        ("unknown task execution", lambda api: api.task_execution(999)),
        ("stop a finished execution", lambda api: api.stop_execution(1)),
    ]
    client = service.client()
    engine = Engine(tmp_path / "engine-home", stop_grace=2.0)
    try:
        for api in (engine, client):
            api.submit(good)
            assert api.start_execution("good") == 1
        engine.wait_for(lambda: engine.execution(1).status.finished, timeout=60, what="the engine's execution")
        wait_execution(client, 1, "SUCCESS")
        for what, call in calls:
            with pytest.raises(errors.AiflowError) as by_engine:
                call(engine)
            with pytest.raises(errors.AiflowError) as by_client:
                call(client)
            assert type(by_client.value) is type(by_engine.value), what
            assert str(by_client.value) == str(by_engine.value), what
    finally:
        engine.close()
    # A wrong token is its own error.
    with Client(service.info.url, "wrong") as stranger, pytest.raises(errors.UnauthorizedError):
        stranger.workflows()


# -- sends across a restart ------------------------------------------------------------------------


def test_send_event_is_retried_across_a_restart_and_never_doubled(service: RunningService, home: Path) -> None:
    restarted: list[RunningService] = []
    acked: list[int] = []
    problems: list[BaseException] = []

    def kill_and_restart() -> None:
        try:
            wait(lambda: len(acked) >= 20, 60, "20 acknowledged sends")
            service.kill()
            restarted.append(RunningService(home).start())
        except BaseException as exc:  # reported by the test
            problems.append(exc)

    with Client(home=home, retry_for=120) as client:
        early = client.send_event("keyed", "first", idempotency_key="the-key")
        restarter = threading.Thread(target=kill_and_restart)
        restarter.start()
        try:
            sent = after_restart = 0
            while not problems and after_restart < 20:
                if restarted:
                    after_restart += 1
                acked.append(client.send_event("survive", sent))
                sent += 1
            restarter.join(timeout=120)
            assert not problems, problems
            assert client.url == restarted[0].info.url  # found again through server.json
            # After the restart the key is still known: a retried send is not doubled.
            assert client.send_event("keyed", "first", idempotency_key="the-key") == early
            stored = client.events(key="survive", limit=10_000)
            assert [e.value for e in client.events(key="keyed")] == ["first"]
        finally:
            restarter.join(timeout=120)
            for running in restarted:
                running.stop()
    assert len(set(acked)) == len(acked) == sent
    # Every acknowledged send is in the log once, in the order sent, at the offset it was acknowledged with.
    assert [(e.offset, e.value) for e in stored] == list(zip(acked, range(sent), strict=True))


def test_a_client_follows_a_restarted_service_for_calls_it_does_not_retry(service: RunningService, home: Path) -> None:
    """A submit is not retried (it is not idempotent), but one the old service never got goes to the new one."""
    with Workflow("w") as wf:
        BashTask("t", command="true")
    with Client(home=home) as client:
        assert client.submit(wf) == 1
        service.stop()
        with pytest.raises(errors.ServiceUnavailableError, match="does not answer"):
            client.submit(wf)  # nothing runs: a clear error, at once
        restarted = RunningService(home).start()
        try:
            wf.tasks["t"].command = "echo changed"
            assert client.submit(wf) == 2  # the same client, without a retry: found through server.json
            assert client.url == restarted.info.url != service.info.url
        finally:
            restarted.stop()


# -- send_event from inside a task ---------------------------------------------------------------


def test_send_event_from_a_notebook_task_is_scoped_to_its_execution(
    service: RunningService, home: Path, tmp_path: Path
) -> None:
    client = service.client()
    source = write_notebook(
        tmp_path / "sender.ipynb", "import aiflow_nb\nsent = aiflow_nb.send_event('ping', {'from': 'notebook'})"
    )
    with Workflow("scoped", namespace="teamx") as wf:
        NotebookTask("sender", notebook=source).action_on_event_received("START", "go")
        BashTask("pong", command="echo pong").action_on_event_received("START", "ping")
    client.submit(wf)
    first = client.start_execution("scoped", "teamx")
    second = client.start_execution("scoped", "teamx")
    client.send_event("go", namespace="teamx", context={"execution_id": first})
    wait_execution(client, first, "SUCCESS", timeout=120)
    [ping] = client.events(key="ping")
    assert ping.value == {"from": "notebook"}
    assert ping.namespace == "teamx"
    assert ping.sender == f"{first}/sender/1"
    assert ping.context == {"execution_id": first}
    assert [(t.task, t.status.value) for t in client.task_executions(first)] == [
        ("sender", "SUCCESS"),
        ("pong", "SUCCESS"),
    ]
    # The other execution did not see the scoped ping ...
    assert client.task_executions(second) == []
    assert client.execution(second).status.value == "RUNNING"
    # ... but sees one sent from outside any task, which has no scope.
    env = {**os.environ, "AIFLOW_NB_HOME": str(home)}
    for name in [n for n in env if n.startswith("AIFLOW_NB_") and n != "AIFLOW_NB_HOME"]:
        del env[name]
    code = "import aiflow_nb; print(aiflow_nb.send_event('ping', 'outside', namespace='teamx'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    outside = client.events(key="ping")[-1]
    assert (outside.offset, outside.sender, outside.context) == (int(out.stdout), None, None)
    wait_task(client, second, "pong", "SUCCESS")
    assert [t.task for t in client.task_executions(second)] == ["pong"]
    assert [e.key for e in client.events(namespace="teamx") if e.key == "ping"] == ["ping", "ping"]


# -- the long poll ----------------------------------------------------------------------------------


def test_a_long_poll_answers_once_an_event_is_committed(service: RunningService) -> None:
    client = service.client()
    since = client.health()["latest_offset"]
    # A read timeout shorter than the poll's wait: only an answer to the new event comes in time.
    impatient = Client(service.info.url, service.info.token, timeout=20, retry_for=0)
    answers: list[Any] = []
    problems: list[BaseException] = []
    polling = threading.Event()

    def poll() -> None:
        try:
            polling.set()
            answers.append(impatient.request("GET", "/events", params={"since": since, "wait": 30}))
        except BaseException as exc:  # reported by the test
            problems.append(exc)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        polling.wait(30)
        # Sent while the poll waits (or, at worst, just before it reads: it then answers at once).
        sent = client.send_event("long.poll", "hello")
    finally:
        poller.join(timeout=60)
        impatient.close()
    assert not problems, problems
    assert [(e["offset"], e["key"], e["value"]) for e in answers[0]["events"]] == [(sent, "long.poll", "hello")]


@pytest.mark.parametrize("wait_for", ["31", "-1", "x"])
def test_a_long_poll_refuses_a_wait_out_of_range(service: RunningService, wait_for: str) -> None:
    response = httpx.get(
        service.info.url + "/api/v1/events",
        params={"wait": wait_for},
        headers={"Authorization": f"token {service.info.token}"},
        trust_env=False,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_argument"
    assert "wait" in response.json()["error"]["message"]
    with pytest.raises(errors.AiflowError, match="wait"):
        service.client().request("GET", "/events", params={"wait": wait_for})


# -- HTTP ---------------------------------------------------------------------------------------------


def test_an_answer_before_the_end_of_the_body_is_read(service: RunningService) -> None:
    # The service refuses a wrong token once it has the head, and closes: the client, still sending
    # a large batch, reports that refusal (not a broken pipe, nor retries until its deadline).
    events = [Event("row", {"i": i, "pad": "x" * 200}) for i in range(30_000)]
    client = Client(service.info.url, "wrong-token", retry_for=0)
    with client, pytest.raises(errors.UnauthorizedError) as caught:
        client.send_events(events)
    assert "token" in str(caught.value)
    with Client(service.info.url, service.info.token) as client:
        assert client.events(key="row") == []


def test_a_service_restarted_with_a_new_token_on_the_same_port(service: RunningService, home: Path) -> None:
    """A refused token is read again from server.json: the call goes through to the new service."""
    port = free_port()
    service.stop()
    first = RunningService(home, flags=["--port", str(port)]).start()
    restarted: RunningService | None = None
    try:
        with Client(home=home) as client:
            assert client.send_event("before") > 0  # a keep-alive connection to the first service
            first.stop()
            restarted = RunningService(home, flags=["--port", str(port)]).start()
            assert restarted.info.url == first.info.url and restarted.info.token != first.info.token
            with Workflow("w") as wf:
                BashTask("t", command="true")
            assert client.submit(wf) == 1  # not retried on a lost connection, yet not refused
            assert client.token == restarted.info.token
    finally:
        first.stop()
        if restarted is not None:
            restarted.stop()


def test_an_http_server_that_is_not_the_service(tmp_path: Path) -> None:
    """Something else on the port: its error answer is named, not taken for the service's."""
    site = tmp_path / "site"
    site.mkdir()
    port = free_port()
    other = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait(lambda: _answers(url), 30, "the other HTTP server")
        with Client(url, "token", home=tmp_path) as client, pytest.raises(errors.AiflowError) as caught:
            client.workflows()
        assert type(caught.value) is errors.AiflowError
        assert str(caught.value).startswith("HTTP 404: ")
    finally:
        other.kill()
        other.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, trust_env=False, timeout=2)
    except httpx.TransportError:
        return False
    return True
