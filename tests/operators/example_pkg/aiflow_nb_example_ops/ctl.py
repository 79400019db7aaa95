"""The ticker's own stop command: ``python -m aiflow_nb_example_ops.ctl stop STATE``."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "stop":
        print("usage: python -m aiflow_nb_example_ops.ctl stop STATE", file=sys.stderr)
        return 2
    (Path(argv[1]) / "stop-request").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
