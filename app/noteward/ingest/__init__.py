"""noteward.ingest."""
