"""An example aiflow-nb operator (``ticker``): an external job that writes a tick per interval."""
