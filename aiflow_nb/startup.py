"""Start-up of the processes aiflow-nb owns: the task runner, the service, the CLI."""

from __future__ import annotations

import sys

#: Optional imports that cost seconds and that nothing in these processes needs.
#: jsonschema (imported by nbformat, so by papermill) imports ``rfc3987_syntax``
#: when it is installed (JupyterLab brings it) to check "iri" formats, and that
#: compiles a grammar at import, which takes longer than the rest of a short
#: papermill run.  nbformat's schema uses no such format.
SLOW_OPTIONAL_IMPORTS = ("rfc3987_syntax",)


def skip_slow_optional_imports() -> None:
    """Make the imports above fail fast (as if not installed) unless already done."""
    for name in SLOW_OPTIONAL_IMPORTS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None means "not importable"
