"""noteward.store."""
