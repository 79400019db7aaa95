"""The crash matrix: 30 seeded SIGKILLs of a loaded service, then nothing lost, nothing doubled.

See tests/server/crash_matrix.py for the load and the checks.  Replay a
failure with ``AIFLOW_NB_CRASH_SEED=<seed> pytest tests/server/test_crash_matrix.py``;
``benchmarks/bench_crash_matrix.py`` runs more crashes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb.faults import ENV, POINTS
from tests.server import crash_matrix
from tests.server.crash_matrix import Service

#: Three rounds of every crash point.
CRASHES = 3 * len(POINTS)
SEED = int(os.environ.get("AIFLOW_NB_CRASH_SEED", "20261128"))


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def test_the_plan_covers_every_point_and_replays_from_its_seed() -> None:
    first = crash_matrix.plan(SEED, CRASHES)
    assert first == crash_matrix.plan(SEED, CRASHES)
    assert first != crash_matrix.plan(SEED + 1, CRASHES)
    assert Counter(crash.point for crash in first) == dict.fromkeys(POINTS, 3)
    assert {crash.hit for crash in first} <= {1, 2, 3, 4}


@pytest.mark.timeout(900)
def test_a_service_killed_at_30_seeded_points_loses_nothing_and_runs_nothing_twice(
    home: Path, tmp_path: Path, services: list[Service]
) -> None:
    outcome = crash_matrix.run(home, tmp_path, SEED, CRASHES, services)
    # Every crash came from its armed point (checked as each service died), under real load.
    assert len(outcome.to_crash) == CRASHES
    assert len(outcome.load.acked) > 100, outcome.label
    assert len(outcome.load.versions) > 10, outcome.label


@pytest.mark.parametrize("value", ["nowhere:1", "launch.after:0", "launch.after:x"])
def test_a_bad_fault_setting_is_refused_by_name(home: Path, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import aiflow_nb.faults"],
        env={**os.environ, ENV: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{ENV}={value!r}" in result.stderr
