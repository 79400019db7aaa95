"""The client of the aiflow-nb service: the one way in for every other process.

- :mod:`~aiflow_nb.client.discovery`: where the service is (arguments, environment, ``server.json``);
- :mod:`~aiflow_nb.client.http`: calls over one keep-alive ``httpx.Client``, retried across restarts;
- :mod:`~aiflow_nb.client.bodies`: what is sent (JSON, batches of events as NDJSON);
- :mod:`~aiflow_nb.client.stream`: following the event log with long polls;
- :mod:`~aiflow_nb.client.client`: :class:`Client`, the engine's API over HTTP;
- :mod:`~aiflow_nb.client.scope`: :func:`send_event` from any process, scoped inside a task.
"""

from __future__ import annotations

from aiflow_nb.client.bodies import CHUNK_EVENTS, ndjson_chunks
from aiflow_nb.client.client import Client
from aiflow_nb.client.scope import send_event, task_scope

__all__ = ["CHUNK_EVENTS", "Client", "ndjson_chunks", "send_event", "task_scope"]
