"""The cyclic garbage collector's settings for a process aiflow-nb owns: the service, ``aiflow-nb verify``.

The scheduler keeps every running execution in memory (a few records each)
and makes a few short-lived containers for each input it decides.  With the
interpreter's default thresholds a young collection runs every few dozen
inputs, and each full collection walks everything start-up made (modules,
caches) along with the running executions.  :func:`settle` is called once
start-up is done, only by the service's main and the ``verify`` command:
never by the engine itself, which also runs in a user's kernel, whose
settings are the user's.
"""

from __future__ import annotations

import gc

#: Container allocations between two young collections (the interpreter's default is 700).
YOUNG_THRESHOLD = 5_000
#: Young collections between two middle ones, and middle ones before a full one is considered (defaults).
OLDER_THRESHOLDS = (10, 10)


def settle() -> None:
    """Collect once, keep what start-up made out of the collector's sight, and collect the young less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
