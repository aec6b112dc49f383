"""noteward.ui."""
