"""Event keys the engine itself sends.  Users may write rules on them.

Every status change is an event, so the log is the whole history:

- ``aiflow.task.status`` -- a task execution changed status.  Namespace: the
  workflow's; sender: ``<execution_id>/<task>/<seq>``; context:
  ``{"execution_id": N}`` (so it only affects its own execution); value:
  ``{"workflow", "execution_id", "task", "seq", "task_execution_id",
  "status", "error"}``.
- ``aiflow.execution.status`` -- a workflow execution changed status; value
  ``{"workflow", "execution_id", "version", "status"}``.
- ``aiflow.task.failed``, ``aiflow.task.stopped``, ``aiflow.task.timeout`` --
  a run ended FAILED (retries used up) or STOPPED, or passed its timeout
  (it may still be retried).  Not scoped: rules and triggers of any workflow
  see them.  Namespace: the workflow's; sender: ``<workflow>/<task>``; value:
  as for ``aiflow.task.status`` (``status`` is ``TIMEOUT`` for a timeout).
- ``aiflow.schedule.tick`` -- a cron or interval schedule is due; value
  ``{"workflow", "task", "scheduled_time"}`` (task is null for a workflow
  schedule).
- ``aiflow.workflow.submitted``, ``.paused``, ``.resumed``, ``.deleted`` -- a
  workflow changed (a new version, or a deleted one submitted again; an
  unchanged resubmit sends nothing).  Namespace: the workflow's; sender: its
  name; value ``{"workflow", "version"}``.  Views of the workflow list
  (the JupyterLab panel) refresh on them.
- ``aiflow.input`` -- an input the scheduler took besides the log's events,
  recorded so that the state is a fold of the log: a command (submit,
  pause, resume, delete, start or stop an execution, a task action), a
  run handed to its executor, a run's outcome, or the clock (timeouts,
  retries and schedules due).  Sender ``aiflow.scheduler``; value
  ``{"kind", "now", "at", ...}``: ``now`` the time it was decided at,
  ``at`` the offset the scheduler had read to, then the input's fields.
"""

TASK_STATUS = "aiflow.task.status"
EXECUTION_STATUS = "aiflow.execution.status"
TASK_FAILED = "aiflow.task.failed"
TASK_STOPPED = "aiflow.task.stopped"
TASK_TIMEOUT = "aiflow.task.timeout"
SCHEDULE_TICK = "aiflow.schedule.tick"
WORKFLOW_SUBMITTED = "aiflow.workflow.submitted"
WORKFLOW_PAUSED = "aiflow.workflow.paused"
WORKFLOW_RESUMED = "aiflow.workflow.resumed"
WORKFLOW_DELETED = "aiflow.workflow.deleted"
INPUT = "aiflow.input"

RESERVED_PREFIX = "aiflow."
