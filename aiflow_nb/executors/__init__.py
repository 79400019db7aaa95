"""Executors: where task executions run.

Kept import-light: the task runner (``python -m aiflow_nb.executors.runner``)
imports this package first, and every millisecond here delays every task.
"""
