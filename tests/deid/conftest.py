"""De-identification fixtures: one real spaCy/Presidio engine per test session."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def deid() -> Any:
    from noteward.deid.engine import Deidentifier

    d = Deidentifier()
    d.warm()
    return d


def spans(deid: Any, text: str, patient: Any = None) -> list[tuple[str, str, float]]:
    return [(e.type, e.text, e.score) for e in deid.analyze(text, patient=patient)]


def covering(deid: Any, text: str, needle: str, patient: Any = None, point: str = "default") -> list[Any]:
    """Entities overlapping the first occurrence of ``needle`` in ``text``."""
    start = text.index(needle)
    end = start + len(needle)
    return [e for e in deid.analyze(text, patient=patient, point=point) if e.start < end and start < e.end]


def types_around(deid: Any, text: str, needle: str, point: str = "default") -> list[str]:
    """Types of the entities that cover all of the first occurrence of ``needle``."""
    start = text.index(needle)
    end = start + len(needle)
    return [e.type for e in deid.analyze(text, point=point) if e.start <= start and end <= e.end]
