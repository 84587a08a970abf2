"""The Flask ingest API phones call (create_app lands with the ingest API issue)."""
