"""Kernels and runners forked from a process that has imported what they import.

A fork server (:mod:`.server`) is a process that imported ipykernel and
IPython (a kernel server) or the task runner and papermill (a runner server),
holds no threads, and forks a child on request over a Unix socket in the
home (:mod:`.channel`); it keeps one child forked ahead, waiting for the
next request.  The child (:mod:`.child`) becomes a new process:
its own session, environment, working folder and output, then an ipykernel
kernel on its own connection file or a task runner.  :mod:`.servers` starts,
finds and restarts the servers; :mod:`.provisioner` is the jupyter_client
kernel provisioner that forks kernels (``aiflow-nb-fork``), so papermill,
nbclient and Jupyter can use it from a kernel spec.
"""
