"""The ``notebook`` kind's work: papermill runs the task's notebook (on a warm kernel when one is lent),
saving the executed notebook with the tokens redacted."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiflow_nb.executors.redaction import redact_text, task_secrets
from aiflow_nb.executors.run_folder import run_home, task_environment
from aiflow_nb.executors.runners import TaskFailed

if TYPE_CHECKING:
    from aiflow_nb.executors.warm_kernel import WarmKernel


def notebook_kernel(task: dict[str, Any]) -> str | None:
    """The kernel a notebook task runs on: its own, else the notebook's, else python3."""
    kernel = task.get("kernel_name")
    if kernel is None and not task["notebook"].get("metadata", {}).get("kernelspec"):
        kernel = "python3"
    if kernel is None:
        name = task["notebook"]["metadata"]["kernelspec"].get("name")
        return str(name) if name else None
    return str(kernel)


def notebook_language(task: dict[str, Any]) -> str | None:
    """The language papermill writes the parameters in, when the notebook does not say it: its kernel's.

    None when the notebook names it (papermill reads it there) or the kernel is not installed (papermill
    then says which kernel is missing).
    """
    metadata = task["notebook"].get("metadata", {})
    if (metadata.get("language_info") or {}).get("name") or (metadata.get("kernelspec") or {}).get("language"):
        return None
    kernel = notebook_kernel(task)
    if not kernel:
        return None
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return str(KernelSpecManager().get_kernel_spec(kernel).language) or None
    except NoSuchKernel:
        return None


def run_notebook(request: dict[str, Any], run_dir: Path, kernel: WarmKernel | None = None) -> None:
    """papermill runs the notebook; on ``kernel`` (a started :class:`WarmKernel`) if given."""
    import logging

    import nbformat
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from aiflow_nb.executors.warm_kernel import ENGINE, KernelSetupError

    task = request["task"]
    cwd = task.get("cwd")
    cwd = cwd if cwd and os.path.isdir(cwd) else str(run_dir)
    warm: dict[str, Any] = {}
    if kernel is not None:
        # Started before this run existed: give it the run's environment and folder, first,
        # so that the kernel does it while papermill prepares the notebook.
        env = {**task_environment(request), "AIFLOW_NB_RUN_DIR": str(run_dir)}
        kernel.set_up(f"import os as _o; _o.environ.update({env!r}); _o.chdir({cwd!r}); del _o")
        warm = {"engine_name": ENGINE, "warm_kernel": kernel}
    # papermill logs each cell's output (log_output=True): keep it in log.txt.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    # The injected aiflow_* parameters are expected not to be declared.
    logging.getLogger("papermill").addFilter(
        lambda r: not r.getMessage().startswith("Passed unknown parameter: aiflow_")
    )
    source = run_dir / "input.ipynb"
    nbformat.write(nbformat.from_dict(task["notebook"]), source)
    parameters = {
        **task.get("parameters", {}),
        "aiflow_event": request.get("event"),
        "aiflow_execution_id": request["execution_id"],
        "aiflow_task_execution_id": request["task_execution_id"],
        "aiflow_seq": request["seq"],
    }
    try:
        papermill.execute_notebook(
            str(source),
            redacting_path(run_dir / "output.ipynb"),
            parameters=parameters,
            kernel_name=notebook_kernel(task),
            language=notebook_language(task),
            cwd=cwd,
            log_output=True,
            progress_bar=False,
            # A graceful kernel shutdown can stall for seconds under parallel load.
            shutdown_kernel="immediate",
            **warm,
        )
    except PapermillExecutionError as exc:
        where = f"cell {exc.exec_count}" if exc.exec_count else "a cell"
        index = source_cell_index(task["notebook"], exc.cell_index)
        raise TaskFailed(f"{where} (index {index}) raised {exc.ename}: {exc.evalue}") from None
    except KernelSetupError as exc:
        raise TaskFailed(str(exc)) from None
    except DeadKernelError:
        raise TaskFailed("the notebook's kernel died (the task's code ended or killed its kernel process)") from None


#: Papermill saves an output path with this prefix through :class:`RedactingHandler`.
REDACTING_SCHEME = "aiflow-nb-redacted://"


class RedactingHandler:
    """A papermill I/O handler: each save of the executed notebook goes to a local file with the tokens
    redacted (papermill saves while the notebook runs, so a streaming task's is never complete)."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets

    @staticmethod
    def local(path: str) -> str:
        return path[len(REDACTING_SCHEME) :]

    def read(self, path: str) -> str:
        return Path(self.local(path)).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        return os.listdir(self.local(path))

    def write(self, buf: str, path: str) -> None:
        text = redact_text(buf.replace(REDACTING_SCHEME, ""), self.secrets)  # the path in papermill's metadata
        Path(self.local(path)).write_text(text, encoding="utf-8")

    def pretty_path(self, path: str) -> str:
        return self.local(path)


def redacting_path(path: Path) -> str:
    """``path`` as papermill's output path, saved through a :class:`RedactingHandler` of this run's secrets."""
    from papermill.iorw import papermill_io

    papermill_io.register(REDACTING_SCHEME, RedactingHandler(task_secrets(os.environ, run_home(path.parent))))
    return REDACTING_SCHEME + str(path)


def source_cell_index(notebook: dict[str, Any], index: int) -> int:
    """Where papermill's failing cell ``index`` is in the task's own notebook.

    papermill counts the parameters cell it injected (after the cell tagged
    "parameters", else first), which the user's notebook does not have.
    """
    tags = [cell.get("metadata", {}).get("tags", []) for cell in notebook.get("cells", [])]
    if any("injected-parameters" in t for t in tags):  # replaced in place
        return index
    injected_at = next((i + 1 for i, t in enumerate(tags) if "parameters" in t), 0)
    return index - 1 if index > injected_at else index
