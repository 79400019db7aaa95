"""The ticker job: ``python -m aiflow_nb_example_ops.job STATE OUT TICKS INTERVAL FAIL_AT``.

It appends ``start <pid>`` then ``tick N`` lines to OUT, once per INTERVAL, TICKS times (0: until stopped).
Its stop command (``python -m aiflow_nb_example_ops.ctl stop STATE``) makes it write ``stopped`` and end.
At FAIL_AT (if not 0) it fails.  Its exit status goes to ``STATE/exit.json``: whoever watches it need
not be its parent.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def finish(state: Path, code: int, error: str | None) -> int:
    tmp = state / "exit.json.tmp"
    tmp.write_text(json.dumps({"code": code, "error": error}))
    os.replace(tmp, state / "exit.json")
    return code


def main(argv: list[str]) -> int:
    state, out = Path(argv[0]), Path(argv[1])
    ticks, interval, fail_at = int(argv[2]), float(argv[3]), int(argv[4])
    with out.open("a") as f:
        f.write(f"start {os.getpid()}\n")
    print(f"ticker job {os.getpid()} started, writing to {out}", flush=True)
    tick = 0
    while ticks == 0 or tick < ticks:
        if (state / "stop-request").exists():
            with out.open("a") as f:
                f.write("stopped\n")
            print("ticker job stopped on request", flush=True)
            return finish(state, 0, None)
        tick += 1
        if tick == fail_at:
            print(f"ticker job failing at tick {tick}", flush=True)
            return finish(state, 3, f"ticker failed at tick {tick}")
        with out.open("a") as f:
            f.write(f"tick {tick}\n")
        time.sleep(interval)
    return finish(state, 0, None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
