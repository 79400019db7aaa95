"""The Jupyter server extension: the /aiflow proxy and the service endpoint."""
