"""noteward.training."""
