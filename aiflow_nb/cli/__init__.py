"""The ``aiflow-nb`` command line.

Every command but ``server`` goes through the service.  A user mistake
exits non-zero with one line on stderr; ``-o json`` prints JSON for scripts.
One module per command group (``workflows``, ``runs``, ``events``,
``server``), the parser that binds them, and ``main`` that runs one.
"""

from aiflow_nb.cli.main import main
from aiflow_nb.cli.parser import build_parser

__all__ = ["build_parser", "main"]
