"""noteward.retrieval."""
