"""Property-based test of the summary entry point (issue 13, campaign).

The summarizer with the real default GGUF model, on arbitrary short note text: it never
crashes or hangs (pytest-timeout is the hang guard), refuses blank text with a clear
error, and every sentence's sources index the input text. Each example runs the model,
so this test takes an eighth of the profile's examples (at least 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noteward.core.errors import NotewardError
from noteward.core.models import SECTIONS


@pytest.fixture(scope="module")
def default_summarizer() -> Iterator[Any]:
    """The settings' (else the manifest's) default model, small generation budget."""
    from noteward.llm.summarizer import SummaryService

    svc = SummaryService(model_id=None, threads=2, max_new_tokens=32, prompt_token_cap=384)
    yield svc
    svc.close()


_LINES = [
    "HPI: 54 y/o with cough for 3 days.", "Medications: lisinopril 10 mg daily.", "Allergies: penicillin (rash).",
    "Assessment: community-acquired pneumonia.", "Plan: start amoxicillin 500 mg three times daily for 7 days.",
    "Denies chest pain.", "BP 128/84, HR 92, T 38.1 C.", "Follow up in 2 weeks.", "\n", "\n\n", "- ", ": ",
]
_note = st.one_of(
    st.text(min_size=1, max_size=200),
    st.lists(st.one_of(st.sampled_from(_LINES), st.text(max_size=30)), min_size=1, max_size=10).map(" ".join),
).filter(lambda t: t.strip())


@pytest.mark.slow
@pytest.mark.timeout(600)
@settings(max_examples=max(3, settings.default.max_examples // 8))
@given(text=_note)
def test_summary_of_any_short_note(default_summarizer, text):
    result = default_summarizer.summarize_text(text)
    assert result.model["id"] == default_summarizer.model_info["id"]
    for s in result.sentences:
        assert s.section in SECTIONS
        assert isinstance(s.supported, bool)
        for src in s.sources:
            assert src.note_id == "input"
            assert 0 <= src.start <= src.end <= len(text)


@pytest.mark.slow
@pytest.mark.timeout(120)
@given(text=st.text(alphabet=" \t\n\r\u00a0\u2028\u3000", max_size=20))
def test_blank_note_is_refused_clearly(default_summarizer, text):
    with pytest.raises(NotewardError, match="empty"):
        default_summarizer.summarize_text(text)
