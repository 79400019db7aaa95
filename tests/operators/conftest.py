"""The operator tests need the example operator package (``make setup`` installs it)."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not any(ep.name == "ticker" for ep in entry_points(group="aiflow_nb.operators")):
        raise pytest.UsageError(
            "tests/operators needs the example operator: pip install -e tests/operators/example_pkg (make setup does)"
        )
