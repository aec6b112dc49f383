"""noteward.core."""
