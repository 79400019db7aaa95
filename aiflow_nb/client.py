"""Client of the aiflow-nb service: the one way in for every other process.

It finds the service from ``url``/``token``, else ``AIFLOW_NB_URL`` /
``AIFLOW_NB_TOKEN``, else ``server.json`` in the home (``AIFLOW_NB_HOME`` or
``~/.aiflow_nb``), and raises the same :mod:`aiflow_nb.errors` types as the
engine.

>>> client = Client()                                       # doctest: +SKIP
>>> client.send_event("hour_complete", {"hour": "10:00"})   # doctest: +SKIP
42
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from aiflow_nb import errors, transport
from aiflow_nb.events.event import DEFAULT_NAMESPACE, Event, check_name, compact_dumps, encode
from aiflow_nb.home import default_home
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo

#: Connection failures worth retrying (the service may be restarting).
_RETRYABLE = (ConnectionError, TimeoutError)

#: Events a chunk of a batch sent by :meth:`Client.send_events` (~50 KB of small events): the
#: service checks one chunk while the next is encoded here.
CHUNK_EVENTS = 1000

# What json.dumps(..., separators=(",", ":"), ensure_ascii=False) writes, built once (see compact_dumps).
_dumps = compact_dumps(ensure_ascii=False, allow_nan=True)


class Lines:
    """A batch of events as NDJSON chunks, encoded as they are sent and sent the same on a retry."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._source = chunks
        self._made: list[bytes] = []

    def __iter__(self) -> Iterator[bytes]:
        made = self._made
        i = 0
        while True:
            if i == len(made):
                chunk = next(self._source, None)
                if chunk is None:
                    return
                made.append(chunk)
            yield made[i]
            i += 1


def ndjson_chunks(events: Sequence[Event], keys: Sequence[str | None]) -> Iterator[bytes]:
    """The events as lines of JSON, :data:`CHUNK_EVENTS` a chunk.

    Written the way the service reads fastest (its ``lines`` module): the
    names first, fields at their default left out, then the value, then
    the event's idempotency key if it has one, no spaces; UTF-8.
    """
    heads: dict[tuple[str, str, str | None], str] = {}
    for start in range(0, len(events), CHUNK_EVENTS):
        lines = []
        for i in range(start, min(start + CHUNK_EVENTS, len(events))):
            event, ident = events[i], keys[i]
            key, namespace, sender = event.key, event.namespace, event.sender
            try:
                if event.context is None and type(key) is str and type(namespace) is str and _name(sender):
                    head = heads.get((key, namespace, sender))
                    if head is None:
                        head = heads[key, namespace, sender] = _head(key, namespace, sender)
                    tail = "}" if ident is None else f',"idempotency_key":{_dumps(ident)}}}'
                    lines.append(head + _dumps(event.value) + tail)
                else:  # the service checks the names and words the error
                    item = {"key": key, "namespace": namespace, "sender": sender, "value": event.value}
                    item.update(context=event.context, idempotency_key=ident)
                    lines.append(_dumps({k: v for k, v in item.items() if v is not None}))
            except (TypeError, ValueError, RecursionError) as exc:
                raise errors.InvalidEventError(f"event {i} ({key!r}) is not JSON-able ({exc})") from None
        lines.append("")  # every line ends with a newline
        try:
            chunk = "\n".join(lines).encode()
        except UnicodeEncodeError:
            i = start + _not_unicode(lines)
            try:  # worded as the service words it: the check that refuses such text is shared
                encode(events[i])
                check_name("idempotency key", keys[i], optional=True)
            except errors.InvalidEventError as exc:
                raise errors.InvalidEventError(f"event {i}: {exc}") from None
            raise
        yield chunk


def _not_unicode(lines: list[str]) -> int:
    """The first of ``lines`` UTF-8 cannot encode (a lone surrogate)."""
    for i, line in enumerate(lines):
        try:
            line.encode()
        except UnicodeEncodeError:
            return i
    return -1


def _name(sender: object) -> bool:
    return sender is None or type(sender) is str


def _head(key: str, namespace: str, sender: str | None) -> str:
    """An event's line up to its value: ``{"key":K[,"namespace":N][,"sender":S],"value":``."""
    head = '{"key":' + _dumps(key)
    if namespace != DEFAULT_NAMESPACE:  # the service's default: less to write and read
        head += ',"namespace":' + _dumps(namespace)
    if sender is not None:
        head += ',"sender":' + _dumps(sender)
    return head + ',"value":'


class Client:
    """Mirrors the engine's API over HTTP."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        home: str | Path | None = None,
        timeout: float = 60.0,
        retry_for: float = 30.0,
    ) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.timeout = timeout
        self.retry_for = retry_for
        self._explicit = (url or os.environ.get("AIFLOW_NB_URL"), token or os.environ.get("AIFLOW_NB_TOKEN"))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[transport.Connection] = []
        self.url, self.token = self._discover()

    def close(self) -> None:
        """Close the keep-alive connections of every thread."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __del__(self) -> None:
        # A forgotten client must not leak sockets (nor ResourceWarnings).
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------

    def _discover(self) -> tuple[str, str]:
        url, token = self._explicit
        if url:
            _check_url(url)
        if url and token:
            return url.rstrip("/"), token
        from aiflow_nb.server import info  # light: json + os

        server = info.read(self.home)
        if server is None or not server.alive:
            raise errors.ServiceUnavailableError(
                f"no aiflow-nb service is running for {self.home}; start one with 'aiflow-nb server start'"
            )
        # A url given without a token still wins; only the token comes from the file.
        return (url or server.url).rstrip("/"), token or server.token

    def _connection(self) -> transport.Connection:
        conn: transport.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "url", None) != self.url:
            parsed = urllib.parse.urlsplit(self.url)
            conn = transport.Connection(parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=self.timeout)
            self._local.conn, self._local.url = conn, self.url
            with self._lock:
                self._connections.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
        self._local.conn = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        *,
        retry: bool = False,
        raw: bool = False,
        keyed: bool = False,
    ) -> Any:
        """Call the API; ``retry`` repeats on connection failures (only for safe calls).

        ``keyed`` sends an ``Idempotency-Key`` header, the same on every retry,
        so a retried append is not doubled.
        """
        query = {k: v for k, v in (params or {}).items() if v is not None}
        target = "/api/v1" + path + ("?" + urllib.parse.urlencode(query) if query else "")
        payload: bytes | Iterable[bytes] | None
        if isinstance(body, Lines):
            payload, content_type = body, "application/x-ndjson"  # sent chunked, as it is encoded
        else:
            # Compact: a batch of events is a tenth smaller to write, send and read; the encoder is
            # built once (json.dumps builds one a call), and writes what json.dumps would.
            try:
                payload = _dumps(body).encode() if body is not None else None
            except UnicodeEncodeError:  # a lone surrogate: escaped, for the service to name the event
                payload = json.dumps(body, separators=(",", ":")).encode()
            content_type = "application/json"
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        request_key = uuid.uuid4().hex if keyed else None
        while True:
            headers = {"Authorization": f"token {self.token}", "Content-Type": content_type}
            if request_key is not None:
                headers["Idempotency-Key"] = request_key
            try:
                response = self._connection().request(method, target, headers, payload)
                break
            except transport.ProtocolError as exc:
                self._drop_connection()
                raise errors.ServiceUnavailableError(
                    f"{self.url} does not answer as the aiflow-nb service does ({exc})"
                ) from None
            except _RETRYABLE as exc:
                self._drop_connection()
                gone = self.url
                try:  # a restarted service has a new port and token
                    self.url, self.token = self._discover()
                except errors.ServiceUnavailableError:
                    pass
                # A refused connection sent nothing: any call may go to the service that replaced it.
                moved = self.url != gone and isinstance(exc, ConnectionRefusedError)
                if not (retry or moved) or time.monotonic() > deadline:
                    raise errors.ServiceUnavailableError(
                        f"the aiflow-nb service at {gone} does not answer ({exc})"
                    ) from None
                if not moved:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
            except OSError as exc:  # not a lost connection: a host name that does not resolve, no route
                self._drop_connection()
                raise errors.ServiceUnavailableError(
                    f"cannot reach the aiflow-nb service at {self.url} ({exc.strerror or exc})"
                ) from None
            except BaseException:
                # A request cut off midway (a value that is not JSON-able, Ctrl-C): the service
                # must not take what was sent as a whole request, nor this connection be reused.
                self._drop_connection()
                raise
        data = response.body
        if response.status >= 400:
            try:
                error = json.loads(data)["error"]
                code, message = error["code"], error["message"]
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", f"HTTP {response.status}: {data[:200]!r}"
            raise errors.error_class(code)(message)
        if raw:
            return data
        return json.loads(data) if data else None

    # -- events ----------------------------------------------------------------

    def send_event(
        self,
        key: str,
        value: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        sender: str | None = None,
        context: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Append an event; a retried send is never doubled.

        The request carries an ``Idempotency-Key`` of its own, reused when it
        is retried; ``idempotency_key`` is the event's own (the same key sent
        again later, by anyone, returns the first event's offset).
        """
        body = {"key": key, "value": value, "namespace": namespace, "sender": sender, "context": context}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        return int(self.request("POST", "/events", body, retry=True, keyed=idempotency_key is None)["offset"])

    def send_events(self, events: Sequence[Event], idempotency_keys: Sequence[str | None] | None = None) -> list[int]:
        """Append events in one transaction (all or none); a retried send is never doubled.

        >>> client.send_events([Event("row", 1), Event("row", 2)])  # doctest: +SKIP
        [41, 42]
        """
        keys: list[str | None] = list(idempotency_keys) if idempotency_keys is not None else [None] * len(events)
        if len(keys) != len(events):
            raise errors.InvalidEventError("idempotency_keys must have one entry per event")
        # Without keys, the request's key makes a retry safe; with some, the service takes no request
        # key, so each event without one gets its own.
        keyed = all(k is None for k in keys)
        if not keyed:
            keys = [k if k is not None else uuid.uuid4().hex for k in keys]
        if not events:
            return []  # as the engine does: nothing to append
        # As NDJSON, streamed: the service checks the first events while the rest are encoded.
        answer = self.request("POST", "/events", Lines(ndjson_chunks(events, keys)), retry=True, keyed=keyed)
        return [int(o) for o in answer["offsets"]]

    def events(
        self,
        since: int = 0,
        limit: int | None = None,
        key: str | None = None,
        namespace: str | None = None,
        sender: str | None = None,
    ) -> list[Event]:
        params = {"since": since, "limit": limit, "key": key, "namespace": namespace, "sender": sender}
        return [Event.from_dict(e) for e in self.request("GET", "/events", params=params, retry=True)["events"]]

    def stream(self, since: int = 0, stop: threading.Event | None = None) -> Iterator[Event]:
        """Every event after ``since``, then live; reconnects from the last offset seen.

        Ends when ``stop`` is set (checked at least once a second).
        """
        from aiflow_nb.stream import follow

        return follow(self, since, stop)

    # -- workflows -------------------------------------------------------------

    def submit(self, workflow: Any) -> int:
        """Submit a Workflow (or its spec); returns the version."""
        spec = workflow.to_spec() if hasattr(workflow, "to_spec") else workflow
        return int(self.request("POST", "/workflows", spec)["version"])

    def workflows(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/workflows", retry=True)["workflows"])

    def workflow(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> dict[str, Any]:
        return dict(self.request("GET", f"/workflows/{_q(namespace)}/{_q(name)}", retry=True))

    def workflow_info(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> WorkflowInfo:
        return WorkflowInfo.from_dict(self.workflow(name, namespace))

    def delete_workflow(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.request("DELETE", f"/workflows/{_q(namespace)}/{_q(name)}")

    def pause(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.request("POST", f"/workflows/{_q(namespace)}/{_q(name)}/pause")

    def resume(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.request("POST", f"/workflows/{_q(namespace)}/{_q(name)}/resume")

    def backfill(self, name: str, start: datetime, end: datetime, namespace: str = DEFAULT_NAMESPACE) -> int:
        body = {"start": start.isoformat(), "end": end.isoformat()}
        return int(self.request("POST", f"/workflows/{_q(namespace)}/{_q(name)}/backfill", body)["ticks"])

    def graph_svg(self, name: str, namespace: str = DEFAULT_NAMESPACE, execution: int | None = None) -> str:
        data = self.request(
            "GET", f"/workflows/{_q(namespace)}/{_q(name)}/graph", params={"execution": execution}, raw=True, retry=True
        )
        return bytes(data).decode()

    # -- executions --------------------------------------------------------------

    def start_execution(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> int:
        return int(self.request("POST", f"/workflows/{_q(namespace)}/{_q(name)}/executions")["id"])

    def stop_execution(self, execution_id: int) -> WorkflowExecution:
        return WorkflowExecution.from_dict(self.request("POST", f"/executions/{int(execution_id)}/stop"))

    def execution(self, execution_id: int) -> WorkflowExecution:
        return WorkflowExecution.from_dict(self.request("GET", f"/executions/{int(execution_id)}", retry=True))

    def executions(
        self,
        workflow: str | None = None,
        namespace: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[WorkflowExecution]:
        params = {"workflow": workflow, "namespace": namespace, "status": status, "limit": limit}
        data = self.request("GET", "/executions", params=params, retry=True)
        return [WorkflowExecution.from_dict(e) for e in data["executions"]]

    def task_executions(self, execution_id: int) -> list[TaskExecution]:
        data = self.request("GET", f"/executions/{int(execution_id)}/tasks", retry=True)
        return [TaskExecution.from_dict(t) for t in data["task_executions"]]

    def _task_action(self, execution_id: int, task: str, action: str) -> list[TaskExecution]:
        data = self.request("POST", f"/executions/{int(execution_id)}/tasks/{_q(task)}/{action}")
        return [TaskExecution.from_dict(t) for t in data["task_executions"]]

    def start_task(self, execution_id: int, task: str) -> list[TaskExecution]:
        return self._task_action(execution_id, task, "start")

    def stop_task(self, execution_id: int, task: str) -> list[TaskExecution]:
        return self._task_action(execution_id, task, "stop")

    def restart_task(self, execution_id: int, task: str) -> list[TaskExecution]:
        return self._task_action(execution_id, task, "restart")

    def task_execution(self, task_execution_id: int) -> TaskExecution:
        return TaskExecution.from_dict(self.request("GET", f"/task-executions/{int(task_execution_id)}", retry=True))

    def task_log(self, task_execution_id: int) -> str:
        return bytes(
            self.request("GET", f"/task-executions/{int(task_execution_id)}/log", raw=True, retry=True)
        ).decode()

    def task_notebook(self, task_execution_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/task-executions/{int(task_execution_id)}/notebook", retry=True))

    def health(self) -> dict[str, Any]:
        return dict(self.request("GET", "/health", retry=True))


def _check_url(url: str) -> None:
    """Refuse a service URL the client could not use, naming it (``localhost:8888`` lacks ``http://``)."""
    parsed = urllib.parse.urlsplit(url)
    try:
        parsed.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError:
        parsed = parsed._replace(netloc="")
    if parsed.scheme != "http" or not parsed.hostname:
        raise errors.ServiceUnavailableError(f"not an aiflow-nb service URL: {url!r} (expected http://HOST:PORT)")


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def task_scope() -> dict[str, Any] | None:
    """Where this process runs, if it is a task run by aiflow-nb."""
    execution = os.environ.get("AIFLOW_NB_EXECUTION_ID")
    if not execution:
        return None
    return {
        "execution_id": int(execution),
        "namespace": os.environ.get("AIFLOW_NB_NAMESPACE", DEFAULT_NAMESPACE),
        "sender": "{}/{}/{}".format(
            execution, os.environ.get("AIFLOW_NB_TASK", ""), os.environ.get("AIFLOW_NB_SEQ", "")
        ),
    }


_default: Client | None = None


def send_event(
    key: str,
    value: Any = None,
    namespace: str | None = None,
    *,
    idempotency_key: str | None = None,
    client: Client | None = None,
) -> int:
    """Send an event from any process (through ``client``, else a default one).

    Inside a running task it is scoped to the task's execution: the
    namespace defaults to the workflow's, the sender is
    ``<execution>/<task>/<seq>`` and only that execution's rules see it.
    """
    global _default
    if client is None:
        if _default is None:
            _default = Client()
        client = _default
    scope = task_scope()
    if scope is None:
        return client.send_event(key, value, namespace or DEFAULT_NAMESPACE, idempotency_key=idempotency_key)
    return client.send_event(
        key,
        value,
        namespace or scope["namespace"],
        sender=scope["sender"],
        context={"execution_id": scope["execution_id"]},
        idempotency_key=idempotency_key,
    )
