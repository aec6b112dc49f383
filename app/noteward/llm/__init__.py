"""noteward.llm."""
