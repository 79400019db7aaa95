"""Operator tasks written wrong: ``mypy --strict`` rejects each marked line (tests/operators/test_typing.py)."""

from aiflow_nb import Task
from aiflow_nb.operators.spark import SparkSubmitTask

Task("a", operator=3)  # error: operator is a name
Task("b", operator="spark", params=["app"])  # error: params is a mapping
SparkSubmitTask("c", app=1)  # error: app is a path
SparkSubmitTask("d")  # error: app is required
Task("e", operator="spark", parameters={"app": "x.py"})  # error: no such argument
