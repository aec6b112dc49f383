"""De-identification (HIPAA Safe Harbor): Presidio + spaCy with clinical rules.

Import ``Deidentifier`` from :mod:`noteward.deid.engine`; importing this package loads
nothing heavy.
"""

from noteward.deid.types import ENTITY_TYPES, SAFE_HARBOR, DeidResult, Entity

__all__ = ["ENTITY_TYPES", "SAFE_HARBOR", "DeidResult", "Entity", "Deidentifier"]


def __getattr__(name: str) -> object:
    if name == "Deidentifier":
        from noteward.deid.engine import Deidentifier

        return Deidentifier
    raise AttributeError(name)
