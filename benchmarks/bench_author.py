"""The "Add to workflow" dialog's requests: a notebook's parameters read, and a draft submitted.

    .venv/bin/python benchmarks/bench_author.py              # a notebook of 200 cells, 20 requests each
    .venv/bin/python benchmarks/bench_author.py --quick      # 5 requests each

Issue 32's targets: the dialog has the parameters of a 200-cell notebook within
300 ms; a submit is in the panel within 200 ms of the service's answer.  This
times, against a real ``jupyter server`` with aiflow-nb's extension and a real
service on loopback, ``GET /aiflow/author/notebook`` (read the file, parse it,
papermill's parameter inspection) and ``POST /aiflow/author/submit`` (the
model's checks, the spec sent to the service, its answer), each a new version.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the Jupyter harness lives with the tests

import httpx  # noqa: E402
import nbformat  # noqa: E402
from _common import print_machine, print_table, record, verdict  # noqa: E402

from aiflow_nb.notebooks import code_notebook  # noqa: E402
from tests.conftest import RunningService, kill_runs  # noqa: E402
from tests.jupyter.servers import JupyterProcess  # noqa: E402

CELLS = 200


def big_notebook(cells: int) -> str:
    sources = [f"x{i} = {i}\nprint('cell {i}', x{i} * alpha)\n# " + "text " * 40 for i in range(cells - 1)]
    return str(nbformat.writes(code_notebook(*sources, parameters="alpha = 0.5\nday = '2026-01-01'\nn: int = 3")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="requests of each kind (default 20)")
    parser.add_argument("--quick", action="store_true", help="5 requests of each kind")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 5
    print("aiflow-nb benchmark: the Add to workflow dialog's requests")
    print_machine()
    with tempfile.TemporaryDirectory(prefix="aiflow-bench-author-") as tmp:
        root = Path(tmp)
        jupyter = JupyterProcess(root, root / "aiflow_home").start()
        service = RunningService(root / "aiflow_home").start()
        try:
            (root / "notebooks" / "big.ipynb").write_text(big_notebook(CELLS))
            headers = {"Authorization": f"token {jupyter.token}"}
            with httpx.Client(base_url=jupyter.url, headers=headers, timeout=60, trust_env=False) as http:
                reads, submits = [], []
                for i in range(args.repeat + 1):
                    began = time.perf_counter()
                    answer = http.get("/aiflow/author/notebook", params={"path": "big.ipynb"})
                    took = time.perf_counter() - began
                    assert answer.status_code == 200 and len(answer.json()["parameters"]) == 3, answer.text
                    if i:  # the first warms Jupyter's imports
                        reads.append(took)
                for i in range(args.repeat + 1):
                    draft = {"path": "big.ipynb", "workflow": f"big{i}", "task": "t"}
                    began = time.perf_counter()
                    answer = http.post("/aiflow/author/submit", json={**draft, "parameters": {"alpha": str(i)}})
                    took = time.perf_counter() - began
                    assert answer.status_code == 200, answer.text
                    if i:
                        submits.append(took)
        finally:
            service.stop()
            jupyter.stop()
            kill_runs(root / "aiflow_home")
    read, submit = statistics.median(reads) * 1000, statistics.median(submits) * 1000
    print_table(
        ["request", "median", "max", "target"],
        [
            [f"parameters of a {CELLS}-cell notebook", f"{read:.0f} ms", f"{max(reads) * 1000:.0f} ms", "≤ 300 ms"],
            ["submit a draft (a new workflow)", f"{submit:.0f} ms", f"{max(submits) * 1000:.0f} ms", "-"],
        ],
    )
    print(f"parameters read: {verdict(read, 300, higher_is_better=False)}")
    record(f"dialog: parameters of a {CELLS}-cell notebook", read, "ms", "≤ 300 ms")
    record("dialog: submit a draft", submit, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
