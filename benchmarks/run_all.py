"""Run every benchmark, one after another, then print their headline figures in one table.

    .venv/bin/python benchmarks/run_all.py           # full runs (~25 min)
    .venv/bin/python benchmarks/run_all.py --quick   # each benchmark's --quick

Each benchmark prints its own tables as it goes; the summary at the end
holds the figures each one passed to ``_common.record``.  The soak
(``bench_soak.py``, 30 minutes) skips itself in a full run and lasts one
minute with ``--quick``; run it alone: ``bench_soak.py --minutes 30``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import SUMMARY_ENV, print_machine, print_table

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    args = parser.parse_args(argv)
    failed = []
    with tempfile.TemporaryDirectory(prefix="aiflow-bench-all-") as tmp:
        summary = Path(tmp) / "summary.jsonl"
        env = {**os.environ, SUMMARY_ENV: str(summary)}
        for script in sorted(HERE.glob("bench_*.py")):
            print(f"\n===== {script.name} =====", flush=True)
            command = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
            if subprocess.run(command, env=env).returncode != 0:
                failed.append(script.name)
        lines = [json.loads(line) for line in summary.read_text().splitlines()] if summary.exists() else []
    print("\n===== summary =====")
    print_machine()
    print_table(
        ["benchmark", "case", "value", "target"],
        [[r["benchmark"], r["case"], f"{r['value']:,.1f} {r['unit']}", r["target"]] for r in lines],
    )
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
