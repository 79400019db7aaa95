"""Compare two commits' single-event rates at 50 clients, run in turn.

    .venv/bin/python benchmarks/ab_http.py b205bab HEAD              # 4 blocks, ~8 min
    .venv/bin/python benchmarks/ab_http.py b205bab HEAD --blocks 6 --log-size 0

A whole ``bench_http.py`` run takes two minutes, and the test machine's
speed swings by half between neighbouring runs: two runs cannot show a
10 % change.  This runs the two commits in blocks, one after the other
(which goes first alternates), each block a fresh service of that commit
on a fresh home holding ``--log-size`` events, measured with that commit's
own ``bench_http.py`` helpers: three rounds each of the asyncio load
generator, 50 ``Client`` threads and 5 processes x 10 threads (medians
printed).  Each commit is checked out in a temporary clone, removed at the
end.  Not part of ``run_all.py``: it compares, it does not measure a target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_machine, print_table

REPO = Path(__file__).resolve().parent.parent

#: One block, run by the checkout's own interpreter path: prints the medians as JSON.
BLOCK = """
import json, os, signal, statistics, sys, tempfile
from pathlib import Path
sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks"))
import _load, bench_http
from aiflow_nb.server import control

def main():
    home = Path(tempfile.mkdtemp(prefix="aiflow-ab-")) / "home"
    if {log_size}:
        bench_http.fill_log(home, {log_size})
    server, _ = control.start(home)
    try:
        _load.post_events(server.url, server.token, 50, 50)  # warm-up
        load = [_load.post_events(server.url, server.token, 50, 100).rate for _ in range(3)]
        threads = [bench_http.threaded_clients(server, 50, 100)[0] for _ in range(3)]
        procs = [bench_http.process_clients(server, 5, 10, 100) for _ in range(3)]
    finally:
        os.kill(server.pid, signal.SIGTERM)
    print(json.dumps([statistics.median(load), statistics.median(threads), statistics.median(procs)]))

if __name__ == "__main__":
    main()
"""

KINDS = ("load generator", "50 threads", "5 procs x 10 threads")


def checkout(rev: str, folder: Path) -> Path:
    """A clone of this repository at ``rev`` in ``folder``; its commit's short hash names it."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(folder)], check=True)
    done = subprocess.run(["git", "-C", str(folder), "checkout", "-q", rev], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"ab_http.py: no commit {rev!r} in {REPO} ({done.stderr.strip().splitlines()[-1]})")
    return folder


def short(folder: Path) -> str:
    out = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()


def block(folder: Path, log_size: int) -> list[float]:
    """One block of ``folder``'s commit: the three medians."""
    script = folder / "ab_block.py"
    script.write_text(BLOCK.format(log_size=log_size))
    env = {**os.environ, "PYTHONPATH": str(folder)}
    done = subprocess.run([sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"a block of {folder.name} failed:\n{done.stderr[-2000:]}")
    medians: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", help="a commit (hash, tag, HEAD~1, ...)")
    parser.add_argument("new", help="another commit")
    parser.add_argument("--blocks", type=int, default=4, help="blocks of each commit (default 4)")
    parser.add_argument("--log-size", type=int, default=1_000_000, help="events in each home's log first")
    args = parser.parse_args(argv)
    print("aiflow-nb: two commits' single events at 50 clients, in turn")
    print_machine()
    with tempfile.TemporaryDirectory(prefix="aiflow-ab-http-") as tmp:
        folders = {name: checkout(rev, Path(tmp) / name) for name, rev in (("old", args.old), ("new", args.new))}
        labels = {name: f"{name} ({short(folder)})" for name, folder in folders.items()}
        results: dict[str, list[list[float]]] = {name: [] for name in folders}
        rows: list[list[str]] = []
        for b in range(args.blocks):
            order = ["old", "new"] if b % 2 == 0 else ["new", "old"]
            for name in order:
                medians = block(folders[name], args.log_size)
                results[name].append(medians)
                rows.append([time.strftime("%H:%M"), labels[name], *(f"{m:,.0f}" for m in medians)])
                print(f"  block {b + 1}, {labels[name]}: " + ", ".join(f"{m:,.0f}" for m in medians), flush=True)
    print()
    print_table(["time (UTC)", "commit", *KINDS], rows)
    print()
    summary = []
    for name in folders:
        per_kind = list(zip(*results[name], strict=True))
        summary.append(
            [labels[name]] + [f"{statistics.median(v):,.0f} ({min(v):,.0f} - {max(v):,.0f})" for v in per_kind]
        )
    print_table(["commit: median of the blocks (slowest - fastest)", *KINDS], summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
