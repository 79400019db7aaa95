"""The ``%%aiflow`` / ``%aiflow`` magics: define workflows in cells, submit, run, watch.

Defining cells (setup, task, rule, workflow) only edit this kernel's draft
(:class:`aiflow_nb.workflow.cells.Draft`); nothing reaches the service before
``%aiflow submit``.  Everything else goes through :class:`aiflow_nb.client.Client`.
A mistake is a one-line :class:`UsageError`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class

from aiflow_nb import errors
from aiflow_nb.client import Client, send_event, task_scope
from aiflow_nb.events.event import DEFAULT_NAMESPACE
from aiflow_nb.home import default_home
from aiflow_nb.workflow import cell_syntax, cells, overrides
from aiflow_nb.workflow.cell_syntax import Key, Parser, split

#: Seconds a read retries while the service does not answer (a restart takes a few).
RETRY_FOR = 10.0

COMMANDS = (
    *cell_syntax.DEFINING,
    *("submit", "run", "start", "stop", "send", "status", "graph", "events", "server", "why", "replay"),
)


def _parsers() -> dict[str, Parser]:
    submit = Parser("%aiflow submit")
    submit.add_argument("workflow", nargs="?", help="default: every drafted workflow")
    run = Parser("%aiflow run")
    run.add_argument("workflow")
    run.add_argument("-p", "--parameter", dest="parameters", action="append", default=[], metavar="NAME=VALUE")
    stop = Parser("%aiflow stop")
    stop.add_argument("execution", type=int)
    status = Parser("%aiflow status")
    status.add_argument("workflow", nargs="?")
    graph = Parser("%aiflow graph")
    graph.add_argument("workflow")
    for p in (submit, run, status, graph):
        p.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    events = Parser("%aiflow events")
    events.add_argument("--key", default=None)
    events.add_argument("--namespace", default=None)
    server = Parser("%aiflow server")
    why = Parser("%aiflow why")
    why.add_argument("task_execution", type=int)
    replay = Parser("%aiflow replay")
    replay.add_argument("workflow")
    replay.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    replay.add_argument("--since", default=None)
    replay.add_argument("--until", default=None)
    replay.add_argument("--outcomes", default="recorded")
    replay.add_argument("--diff", action="store_true")
    replay.add_argument("--version", type=int, default=None)
    return {"submit": submit, "run": run, "start": run, "stop": stop, "status": status, "graph": graph,
            "events": events, "server": server, "why": why, "replay": replay}  # fmt: skip


_PARSERS = _parsers()
_SEND = re.compile(r"^(?:--namespace[ =](?P<ns1>\S+)\s+)?(?P<key>\S+)(?:\s+(?P<rest>.*?))?\s*$", re.S)


def send_args(rest: str) -> tuple[str, Any, str | None]:
    """KEY, VALUE and --namespace of ``%aiflow send``: the value is the rest of the line,
    JSON when it parses, else text (one layer of quotes around it is dropped)."""
    match = _SEND.match(rest.strip())
    if not rest.strip() or match is None:
        raise errors.SpecError("%aiflow send needs a KEY: %aiflow send KEY [VALUE] [--namespace NS]")
    key, raw, namespace = match["key"], match["rest"] or "", match["ns1"]
    tail = re.search(r"(?:^|\s)--namespace[ =](\S+)$", raw)
    if tail is not None:
        namespace, raw = tail[1], raw[: tail.start()].strip()
    if key.startswith("-"):
        raise errors.SpecError(f"%aiflow send: unknown option {key!r} (only --namespace NS)")
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        try:
            words = shlex.split(raw)
        except ValueError:
            words = []
        if len(words) == 1:
            raw = words[0]
    return key, cell_syntax.json_value(raw) if raw else None, namespace


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def connect() -> tuple[Client, str]:
    """A client of the service, starting one on the default home if none runs; and a line saying which."""
    if os.environ.get("AIFLOW_NB_URL") or task_scope() is not None:
        # A given service, or the one running this task: never start another.
        client = Client(retry_for=RETRY_FOR)
        return client, f"aiflow-nb: using the service at {client.url}"
    from aiflow_nb.server import control

    home = default_home().expanduser().resolve()
    server, started = control.start(home)
    client = Client(home=home, retry_for=RETRY_FOR)
    if started:
        return client, f"aiflow-nb: started a service at {server.url} (pid {server.pid}, home {home})"
    return client, f"aiflow-nb: connected to the service at {server.url} (home {home})"


@magics_class
class AiflowMagics(Magics):
    """``%aiflow`` and ``%%aiflow``; see the README section "In a notebook"."""

    def __init__(self, shell: InteractiveShell | None = None) -> None:
        super().__init__(shell)
        self.draft = cells.Draft()
        self._client: Client | None = None
        self._widgets: dict[tuple[str, ...], Any] = {}
        # Which cell (by its id) registered which draft keys, so a re-run
        # cell (say, a renamed task) replaces what it made before.
        self._owners: dict[Key, str] = {}
        self._cell_id: str | None = None
        self._seen: set[Key] = set()
        self._failed = False

    # -- plumbing ------------------------------------------------------------

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client, note = connect()
            print(note)
        return self._client

    def close(self) -> None:
        """Stop the widgets and close the client (on unload)."""
        for widget in self._widgets.values():
            widget.close()
        self._widgets.clear()
        if self._client is not None:
            self._client.close()
            self._client = None

    def pre_run_cell(self, info: Any) -> None:
        self._cell_id = getattr(info, "cell_id", None)
        self._seen = set()
        self._failed = False

    def post_run_cell(self, result: Any) -> None:
        cell_id, self._cell_id = self._cell_id, None
        if cell_id is None or self._failed or not getattr(result, "success", False):
            return  # a failed cell keeps what it made before
        for key, owner in list(self._owners.items()):
            if owner == cell_id and key not in self._seen:
                self.draft.discard(key)
                del self._owners[key]

    # -- the magic -----------------------------------------------------------

    @line_cell_magic
    def aiflow(self, line: str, cell: str | None = None) -> None:
        """Define, submit, run and watch aiflow-nb workflows.

        Defining (only edits this kernel's draft; re-running a cell replaces what it made)::

            %%aiflow setup --workflow WF [--namespace NS]          (code run before every cell task of WF)
            %%aiflow task NAME --workflow WF [--notebook PATH] [--param k=v ...] [--streaming] [--retries N]
                  [--retry-delay S] [--timeout S] [--executor NAME]
                  [--on-event KEY[@NS] [--value V]] [--after a,b | a:FAILED]
                  [--condition module:Class] [--action start|stop|restart] [--cron EXPR [--tz TZ]] [--interval S]
            %aiflow rule TASK --workflow WF --on-event KEY | --after ... | --condition ... [--action ...]
            %aiflow workflow WF [--trigger-on KEY[@NS] [--value V]] [--cron EXPR [--tz TZ]] [--interval S]
                  [--catchup] [--max-active N [--on-max-active queue|skip]]

        Talking to the service::

            %aiflow submit [WF] [--namespace NS]    %aiflow stop EXECUTION
            %aiflow run WF [--namespace NS] [-p NAME=VALUE ...]   (also: %aiflow start WF ...)
            %aiflow send KEY [VALUE] [--namespace NS]    %aiflow status [WF] (live)    %aiflow graph WF
            %aiflow events [--key K] [--namespace NS]    %aiflow server    %aiflow why TASK_EXECUTION
            %aiflow replay WF [--since 24h|OFFSET|TIME] [--until ...] [--outcomes success|failed|recorded] [--diff]
                  [--version N]  (the drafted WF, else the submitted one (or its version N), over the logged
                  window: nothing is written or launched)
        """
        try:
            self._dispatch(line, cell)
        except errors.ServiceUnavailableError as exc:
            self._failed = True
            self._client = None  # reconnect (or start one) next time
            raise UsageError(f"{_one_line(exc)}; '%aiflow server' starts one") from None
        except errors.AiflowError as exc:
            self._failed = True
            raise UsageError(_one_line(exc)) from None

    def _dispatch(self, line: str, cell: str | None) -> None:
        words = split(line)
        if not words or words[0] not in COMMANDS:
            what = f"unknown command {words[0]!r}" if words else "a command is missing"
            raise errors.SpecError(f"%aiflow: {what}; commands: {', '.join(COMMANDS)}")
        command = words[0]
        if command in cell_syntax.DEFINING:
            self._define(line, cell)
            return
        if cell is not None and cell.strip():
            raise errors.SpecError(f"{command} is a line magic: %aiflow {command} ...")
        if command == "send":
            self._send(line.strip()[len("send") :])
            return
        opts = _PARSERS[command].parse(words[1:])
        getattr(self, f"_{command}")(**opts)

    def _define(self, line: str, cell: str | None) -> None:
        parsed = cell_syntax.parse_cell(line, cell, os.getcwd())
        key = self.draft.add(parsed)
        if self._cell_id is not None:
            self._owners[key] = self._cell_id
            self._seen.add(key)

    # -- commands ------------------------------------------------------------

    def _submit(self, workflow: str | None, namespace: str) -> None:
        if workflow is None:
            if not self.draft.names():
                raise errors.SpecError("nothing is drafted here: define tasks with %%aiflow task NAME --workflow WF")
            chosen = self.draft.build_all()
        else:
            chosen = [self.draft.build(workflow, namespace)]
        for wf in chosen:
            version = self.client.submit(wf)
            shown = wf.name if wf.namespace == DEFAULT_NAMESPACE else f"{wf.namespace}/{wf.name}"
            print(f"submitted {shown} version {version}")

    def _run(self, workflow: str, namespace: str, parameters: Sequence[str] = ()) -> None:
        given = overrides.from_assignments(parameters)
        execution = self.client.start_execution(workflow, namespace, given)
        print(f"started execution {execution} of {namespace}/{workflow}")

    def _start(self, workflow: str, namespace: str, parameters: Sequence[str] = ()) -> None:
        """``%aiflow start WF [-p NAME=VALUE ...]``: as ``run``."""
        self._run(workflow, namespace, parameters)

    def _stop(self, execution: int) -> None:
        stopped = self.client.stop_execution(execution)
        print(f"execution {stopped.id} is {stopped.status.value}")

    def _send(self, rest: str) -> None:
        key, value, namespace = send_args(rest)
        # Inside a running task only its own execution reacts (send_event scopes it).
        offset = send_event(key, value, namespace, client=self.client)
        print(f"sent {key!r} at offset {offset}")

    def _status(self, workflow: str | None, namespace: str) -> None:
        from aiflow_nb.widgets import WorkflowList, WorkflowView

        if workflow is None:
            self._show(("status",), WorkflowList(self.client))
            return
        self.client.workflow_info(workflow, namespace)  # a NotFoundError names it

        self._show(("status", namespace, workflow), WorkflowView(self.client, workflow, namespace=namespace))

    def _graph(self, workflow: str, namespace: str) -> None:
        from IPython.display import SVG, display

        latest = self.client.workflow_info(workflow, namespace).latest_execution
        svg = self.client.graph_svg(workflow, namespace, execution=latest.id if latest else None)
        display(SVG(svg))  # type: ignore[no-untyped-call]

    def _events(self, key: str | None, namespace: str | None) -> None:
        from aiflow_nb.widgets import EventFeed

        self._show(("events", key or "", namespace or ""), EventFeed(self.client, key=key, namespace=namespace))

    def _why(self, task_execution: int) -> None:
        from aiflow_nb.scheduler.why import line

        print(line(self.client.why(task_execution)))

    def _replay(
        self,
        workflow: str,
        namespace: str,
        since: str | None,
        until: str | None,
        outcomes: str,
        diff: bool,
        version: int | None,
    ) -> None:
        from datetime import datetime

        from IPython.display import HTML, display

        from aiflow_nb.scheduler.dryrun import parse_bound
        from aiflow_nb.widgets import replay_html

        now = datetime.now(UTC)
        start, end = parse_bound(since, "--since", now), parse_bound(until, "--until", now)
        if version is None and self.draft.cells(workflow, namespace):
            result = self.client.replay(self.draft.build(workflow, namespace), start, end, outcomes, diff)
        else:  # the submitted version
            result = self.client.replay(workflow, start, end, outcomes, diff, namespace=namespace, version=version)
        display(HTML(replay_html(result)))  # type: ignore[no-untyped-call]

    def _server(self) -> None:
        if self._client is not None:
            try:
                health = self._client.health()
                print(f"aiflow-nb: the service at {self._client.url} is running (version {health.get('version')})")
                return
            except errors.ServiceUnavailableError:
                self._client.close()
                self._client = None
        self._client, note = connect()
        print(note)

    def _show(self, key: tuple[str, ...], widget: Any) -> None:
        """Display a live widget; the one it replaces (same command re-run) stops updating."""
        from IPython.display import display

        old = self._widgets.pop(key, None)
        if old is not None:
            old.close()
        self._widgets[key] = widget
        display(widget)  # type: ignore[no-untyped-call]


_loaded: dict[int, AiflowMagics] = {}


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext aiflow_nb``: register the magics and connect (starting a service if none runs)."""
    magics = AiflowMagics(ipython)
    unload_ipython_extension(ipython)
    ipython.register_magics(magics)
    ipython.events.register("pre_run_cell", magics.pre_run_cell)
    ipython.events.register("post_run_cell", magics.post_run_cell)
    _loaded[id(ipython)] = magics
    try:
        magics._client, note = connect()
    except errors.AiflowError as exc:
        note = f"aiflow-nb: no service yet ({_one_line(exc)}); '%aiflow server' starts one"
    print(note)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    magics = _loaded.pop(id(ipython), None)
    if magics is None:
        return
    ipython.events.unregister("pre_run_cell", magics.pre_run_cell)
    ipython.events.unregister("post_run_cell", magics.post_run_cell)
    magics.close()


def draft(ipython: InteractiveShell | None = None) -> cells.Draft:
    """The draft of the kernel's loaded magics (``draft().build("wf")`` is what a submit sends)."""
    from IPython import get_ipython

    shell = ipython or get_ipython() or InteractiveShell.instance()
    magics = _loaded.get(id(shell))
    if magics is None:
        raise errors.AiflowError("the aiflow_nb extension is not loaded here: run %load_ext aiflow_nb")
    return magics.draft
