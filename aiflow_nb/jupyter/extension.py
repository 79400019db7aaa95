"""Register the aiflow-nb handlers on a Jupyter server."""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from aiflow_nb.jupyter import author, proxy, service, stream

PREFIX = "aiflow"


def load(serverapp: Any) -> None:
    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], PREFIX)
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "service"), service.ServiceHandler),
            (url_path_join(base, "author/notebook"), author.NotebookHandler),
            (url_path_join(base, "author/submit"), author.SubmitHandler),
            (url_path_join(base, "author/run"), author.RunHandler),
            (url_path_join(base, "author/edit"), author.EditHandler),
            (url_path_join(base, "api/v1/stream"), stream.StreamProxyHandler),
            (url_path_join(base, "api/v1/(.*)"), proxy.ProxyHandler),
            # Anything else under /aiflow is outside the service's API: refuse it.
            (url_path_join(base, "(.*)"), proxy.OutsideHandler),
        ],
    )
    serverapp.log.info("aiflow-nb: proxying %s/api/v1 to the service", base)
