"""``send_event`` from any process; inside a running task it is scoped to the task's execution."""

from __future__ import annotations

import os
from typing import Any

from aiflow_nb.client.client import Client
from aiflow_nb.events.event import DEFAULT_NAMESPACE


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
