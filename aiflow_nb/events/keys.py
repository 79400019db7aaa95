"""Event keys the engine itself sends.  Users may write rules on them.

Every status change is an event, so the log is the whole history:

- ``aiflow.task.status`` -- a task execution changed status.  Namespace: the
  workflow's; sender: ``<execution_id>/<task>/<seq>``; context:
  ``{"execution_id": N}`` (so it only affects its own execution); value:
  ``{"workflow", "execution_id", "task", "seq", "task_execution_id",
  "status", "error"}``.
- ``aiflow.execution.status`` -- a workflow execution changed status; value
  ``{"workflow", "execution_id", "version", "status"}``.
- ``aiflow.schedule.tick`` -- a cron or interval schedule is due; value
  ``{"workflow", "task", "scheduled_time"}`` (task is null for a workflow
  schedule).
"""

TASK_STATUS = "aiflow.task.status"
EXECUTION_STATUS = "aiflow.execution.status"
SCHEDULE_TICK = "aiflow.schedule.tick"

RESERVED_PREFIX = "aiflow."
