"""noteward.deid."""
