"""The Jupyter side of aiflow-nb: a server extension and the JupyterLab sidebar it serves.

The server extension proxies ``/aiflow/api/v1/...`` (HTTP and WebSocket) to the
service of the home (``AIFLOW_NB_HOME`` or ``~/.aiflow_nb``) with the token of
its ``server.json``, so the browser only ever authenticates to Jupyter.
"""

from __future__ import annotations

from typing import Any

from aiflow_nb.jupyter.extension import load


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "aiflow_nb.jupyter"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "aiflow-nb"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    load(serverapp)
