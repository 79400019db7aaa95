"""The aiflow-nb service: the engine behind a tornado REST + WebSocket API."""
