"""Noteward: on-premise clinical assistant."""

__version__ = "0.1.0"
