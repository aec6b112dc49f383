"""Summaries in the app, on the real model: stream, click a sentence, see its exact source."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from noteward.core.models import SUMMARY_SECTIONS, UNSUPPORTED_MARK, Summary, SummarySentence
from tests.ui.conftest import SMALL_PATIENT, unlock
from tests.ui.test_flows import import_into, select_first_patient

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.fixture
def summarized(qtbot, window, one_patient_dir):  # noqa: ANN001, ANN201
    unlock(qtbot, window)
    import_into(qtbot, window, [one_patient_dir])
    record = select_first_patient(qtbot, window)
    pane = window.summary
    streamed: list[object] = []
    with qtbot.waitSignal(pane.summary_did_finish, timeout=180_000) as blocker:
        pane.summarize_button.click()
        assert pane.cancel_button.isEnabled() and not pane.summarize_button.isEnabled()
        pane.job.job_did_stream.connect(streamed.append)
    qtbot.waitUntil(lambda: pane.job is None and pane.settled, timeout=10_000)
    return window, record, blocker.args[0], streamed


def test_summary_streams_and_each_sentence_shows_its_exact_source(qtbot, summarized) -> None:  # noqa: ANN001
    window, record, result, streamed = summarized
    pane, viewer = window.summary, window.viewer
    assert result.sentences, "the summary has no sentences"
    assert any(not isinstance(x, str) for x in streamed), "no sentence was streamed before the end"
    assert len(pane.views) == len(result.sentences)
    label = pane.machine_label.text()
    assert "Machine-generated" in label and "Covers 15 notes" in label
    assert not pane.out_of_date.isVisible()
    # sentences sit under their section headings, in the canonical order
    headings = [pane.body_layout.itemAt(i).widget() for i in range(pane.body_layout.count() - 1)]
    order = [w.text() for w in headings if w.objectName() == "SectionHeading"]
    assert order and order == sorted(order, key=list(SUMMARY_SECTIONS).index)

    with_sources = [v for v in pane.views if v.sentence.sources]
    assert with_sources, "no sentence has a source span"
    notes = {n.id: n for n in record.notes}
    for view in with_sources:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton)
        first = view.sentence.sources[0]
        assert viewer.highlighted_span() == first
        note = notes[first.note_id]
        assert viewer.highlighted_text() == note.text[first.start:first.end].replace("\r\n", "\n")
        assert viewer.note is not None and viewer.note.id == first.note_id
        cur = window.timeline.currentItem()
        assert cur is not None and cur.data(0, Qt.ItemDataRole.UserRole) == first.note_id
        assert viewer.is_span_visible()
        assert f"{view.sentence.support:.2f}" in view.toolTip()
        assert view.property("selected") is True
        # step through every source and back to the first
        n = len(view.sentence.sources)
        assert viewer.source_label.text().startswith(f"Source 1 of {n}")
        assert viewer.source_list.count() == n and viewer.source_list.currentIndex() == 0
        viewer.source_list.activated.emit(n - 1)  # pick the last one from the list
        assert viewer.highlighted_span() == view.sentence.sources[n - 1]
        viewer.source_list.activated.emit(0)
        for i in range(1, n):
            viewer.next_button.click()
            assert viewer.highlighted_span() == view.sentence.sources[i]
        if n > 1:
            viewer.next_button.click()
            assert viewer.highlighted_span() == first

    # the keyboard does what a click does
    view = with_sources[0]
    window.viewer.show_sources([])
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert viewer.highlighted_span() == view.sentence.sources[0]

    # unsupported sentences are marked and can be hidden
    for view in pane.views:
        marked = view.text().startswith("⚠ Unsupported")
        assert marked == (not view.sentence.supported)
        assert view.property("supported") == view.sentence.supported
    pane.hide_unsupported.setChecked(True)
    assert all(v.isVisibleTo(pane) == v.sentence.supported for v in pane.views)
    pane.hide_unsupported.setChecked(False)
    assert all(v.isVisibleTo(pane) for v in pane.views)


def test_the_pane_gets_the_typed_summary_fresh_and_saved(qtbot, summarized) -> None:  # noqa: ANN001
    window, record, result, streamed = summarized
    assert isinstance(result, Summary) and result.summary_id
    assert window.summary.summary is result  # no round trip through a dict
    assert all(isinstance(x, (str, SummarySentence)) for x in streamed)
    # the saved summary comes back typed with the patient's record
    job = window.services.patient_record(record.patient.id)
    with qtbot.waitSignal(job.job_did_succeed, timeout=20_000) as blocker:
        pass
    saved = blocker.args[0].latest_summary
    assert isinstance(saved, Summary) and saved.summary_id == result.summary_id
    assert [s.text for s in saved.sentences] == [s.text for s in result.sentences]
    assert [s.date for s in saved.sentences] == [s.date for s in result.sentences]


def test_approve_is_stored_beside_the_original_and_new_notes_mark_it_out_of_date(
    qtbot, summarized, tmp_path: Path, one_patient_dir: Path  # noqa: ANN001
) -> None:
    window, record, result, _ = summarized
    pane = window.summary
    summary_id = result.summary_id
    assert summary_id and pane.approve_button.isEnabled()
    text = pane.summary_text().replace("- ", "- (checked) ", 1)
    with qtbot.waitSignal(pane.approve(summary_id, text).job_did_succeed, timeout=10_000):
        pass
    # the approved text is what the pane shows now, with who approved it (the signed-in
    # user: the vault's first admin, "admin") and when; the machine sentences are one click away
    assert pane.approved_box.isVisible() and pane.approved_label.isVisible()
    assert pane.approved_label.text().startswith("Approved by admin, ")
    approved = pane.summary.approved_text
    assert approved and pane.approved_view.text() == approved and "(checked)" in approved
    assert UNSUPPORTED_MARK not in approved
    assert not any(v.isVisible() for v in pane.views)
    pane.machine_text_button.click()
    assert any(v.isVisible() for v in pane.views)

    # a newer note for the same patient arrives
    line = next(
        ln for ln in (one_patient_dir / "DocumentReference.000.ndjson").read_text().splitlines()
        if SMALL_PATIENT in ln
    )
    doc = json.loads(line)
    doc["id"] = "ui-test-new-note"
    doc["date"] = "2030-01-01T10:00:00Z"
    doc["content"][0]["attachment"]["data"] = base64.b64encode(
        b"2030-01-01\n\n# Plan\nFollow up in clinic in two weeks.\n"
    ).decode()
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "DocumentReference.000.ndjson").write_text(json.dumps(doc) + "\n", encoding="utf-8")
    with qtbot.waitSignal(window.record_did_load, timeout=20_000) as blocker:
        import_into(qtbot, window, [newer])
    latest = blocker.args[0].latest_summary
    assert latest.summary_id == summary_id
    assert latest.approved_text == approved and latest.approved_by == "admin"
    assert [s.text for s in latest.sentences] == [s.text for s in result.sentences]
    assert latest.out_of_date is True
    assert pane.out_of_date.isVisible()


def test_cancel_stops_the_summary(qtbot, window, one_patient_dir) -> None:  # noqa: ANN001
    unlock(qtbot, window)
    import_into(qtbot, window, [one_patient_dir])
    select_first_patient(qtbot, window)
    pane = window.summary
    pane.summarize_button.click()
    job = pane.job
    first = []
    job.job_did_stream.connect(lambda item: first.append(item) or pane.cancel())
    with qtbot.waitSignal(job.job_did_end, timeout=120_000):
        pass
    assert job.outcome == "cancelled"
    assert first and "Cancelled" in pane.status.text()
    qtbot.waitUntil(lambda: pane.settled, timeout=5_000)
    assert pane.views
    assert "incomplete" in pane.machine_label.text()
    assert pane.summarize_button.isEnabled() and not pane.cancel_button.isEnabled()
