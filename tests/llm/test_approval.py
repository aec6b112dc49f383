"""Approving a summary through the summarizer's persistence functions, on a real vault file:
who approved it and when, the newer machine summary kept beside the approved one, and
unsupported sentences marked in the text offered for editing but never approved unedited.

No model is needed: the summaries are stored as the service stores them (``save_summary``).
"""

from __future__ import annotations

from typing import Any

import pytest

from noteward.core.models import Patient, SourceSpan, Summary, SummarySentence
from noteward.store import patients

UNSUPPORTED = "He was started on warfarin for a clot in the leg."


def _summary(patient_id: str) -> Summary:
    return Summary(
        patient=patient_id,
        sentences=[
            SummarySentence(
                "Asthma, on albuterol as needed.",
                "Problems",
                [SourceSpan("nt_1", 0, 20)],
                1.0,
                True,
            ),
            SummarySentence(UNSUPPORTED, "Medications", [], 0.1, False, origin="model"),
            SummarySentence(
                "Ibuprofen 100 mg as needed.", "Medications", [SourceSpan("nt_2", 3, 30)], 1.0, True
            ),
        ],
        covers={"note_ids": ["nt_1", "nt_2"], "date_range": ["2020-01-01", "2021-01-01"]},
        model={"id": "tiny", "sha256": "ab" * 32},
        prompt_version="grounded-v1",
    )


@pytest.fixture
def with_patient(vault: Any) -> Any:
    with vault.transaction():
        patients.add(vault, Patient("pt_a", "src-a", "A"), "2024-01-01T00:00:00+00:00")
    return vault


def test_the_offered_text_marks_unsupported_sentences_and_approval_drops_them_unedited() -> None:
    from noteward.core.models import UNSUPPORTED_MARK
    from noteward.llm.summarizer import approval_text, without_unsupported

    summary = _summary("pt_a")
    offered = approval_text(summary)
    marked = [ln for ln in offered.splitlines() if UNSUPPORTED in ln]
    assert marked == [f"- {UNSUPPORTED_MARK}{UNSUPPORTED}"]  # in the editor, marked
    assert "Asthma, on albuterol as needed." in offered
    # unedited, mark kept or mark deleted, it never enters the approved text
    for text in (offered, offered.replace(UNSUPPORTED_MARK, "")):
        kept, left_out = without_unsupported(text, summary.sentences)
        assert left_out == 1 and "warfarin" not in kept and UNSUPPORTED_MARK not in kept
        assert "Ibuprofen 100 mg as needed." in kept
    # edited, it is the clinician's own sentence: kept, and the mark never enters the record
    edited = offered.replace(UNSUPPORTED, "Warfarin started 2021 for a leg clot (checked).")
    kept, left_out = without_unsupported(edited, summary.sentences)
    assert left_out == 0 and "Warfarin started 2021 for a leg clot (checked)." in kept
    assert UNSUPPORTED_MARK.strip() not in kept


def test_save_approved_records_the_approver_and_the_newer_summary_is_kept_beside(
    with_patient: Any,
) -> None:
    from noteward.llm.summarizer import (
        approval_text,
        latest_summary,
        load_summary,
        save_approved,
        save_summary,
    )

    v = with_patient
    first = save_summary(v, _summary("pt_a"))
    v.conn.execute("UPDATE summaries SET created_at = '2000-01-01' WHERE id = ?", (first,))
    assert save_approved(v, first, approval_text(_summary("pt_a")), approver="dr_lee") == 1
    stored = load_summary(v, first)
    assert stored["approved_by"] == "dr_lee" and stored["approved_at"]
    assert "warfarin" not in stored["approved_text"]

    latest = latest_summary(v, "pt_a")
    assert latest is not None and latest["id"] == first and latest.get("earlier_approved") is None
    typed = Summary.from_stored(latest)
    assert (typed.approved_by, typed.approved_at) == ("dr_lee", stored["approved_at"])

    second = save_summary(v, _summary("pt_a"))  # a newer machine summary
    latest = latest_summary(v, "pt_a")
    assert latest is not None and latest["id"] == second and latest["approved_text"] is None
    assert latest["earlier_approved"]["id"] == first
    typed = Summary.from_stored(latest)
    assert typed.summary_id == second and typed.approved_text is None
    assert typed.earlier_approved is not None
    assert typed.earlier_approved.summary_id == first
    assert typed.earlier_approved.approved_by == "dr_lee"
    assert typed.earlier_approved.approved_text == stored["approved_text"]
    # both audited: generated twice, approved once (ids and counts only)
    actions = [r[0] for r in v.conn.execute("SELECT action FROM audit ORDER BY seq").fetchall()]
    assert actions.count("summary.create") == 2 and actions.count("summary.approve") == 1


def test_the_mark_is_never_saved_wherever_the_clinician_left_it() -> None:
    from noteward.core.models import UNSUPPORTED_MARK
    from noteward.llm.summarizer import without_unsupported

    summary = _summary("pt_a")
    kept, left_out = without_unsupported(
        f"- (checked) {UNSUPPORTED_MARK}{UNSUPPORTED}\n", summary.sentences
    )
    assert (kept, left_out) == (f"- (checked) {UNSUPPORTED}\n", 0)  # edited: kept, without the mark
