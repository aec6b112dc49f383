"""Opaque, stable identifiers made by Noteward (never derived from PHI in a reversible way)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """A random opaque id such as ``pt_3f9a1c2b7d4e``; stable because it is stored."""
    return f"{prefix}_{secrets.token_hex(6)}"
