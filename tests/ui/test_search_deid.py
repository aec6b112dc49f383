"""Search (keyword + meaning) with the passage highlighted, and the de-identified view."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QUrl

from tests.ui.conftest import unlock
from tests.ui.test_flows import import_into, select_first_patient

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.fixture
def opened(qtbot, window, one_patient_dir):  # noqa: ANN001, ANN201
    unlock(qtbot, window)
    import_into(qtbot, window, [one_patient_dir])
    assert "indexed for semantic search" in window.import_dialog.counts.text()
    return window, select_first_patient(qtbot, window)


def run_search(qtbot, pane, query: str) -> list[dict]:  # noqa: ANN001
    pane.query.setText(query)
    pane.search()
    with qtbot.waitSignal(pane.job.job_did_end, timeout=60_000):
        pass
    return pane.hits


def test_search_highlights_the_matching_passage(qtbot, opened) -> None:  # noqa: ANN001
    window, record = opened
    pane = window.search
    hits = run_search(qtbot, pane, "ankle fracture")
    assert hits and pane.rendered.count("href='hit:") == len(hits)
    notes = {n.id: n for n in record.notes}
    top = hits[0]
    assert top["text"] == notes[top["note_id"]].text[top["start"]:top["end"]]
    assert top["keyword"] and top["marks"]
    # the result shows the passage with the matched words marked
    first_block = pane.rendered.split("</p>")[0]
    for a, b in top["marks"]:
        word = notes[top["note_id"]].text[a:b]
        assert f">{word}</b>" in first_block
    # activating it (its link) highlights exactly that passage in the note viewer
    pane.results.anchorClicked.emit(QUrl("hit:0"))
    span = window.viewer.highlighted_span()
    assert span is not None and (span.note_id, span.start, span.end) == (top["note_id"], top["start"], top["end"])

    # a question with no words in common still finds passages by meaning
    hits = run_search(qtbot, pane, "broken bone in the leg")
    assert any(h["semantic"] for h in hits)


def test_deidentified_view_replaces_the_patients_name(qtbot, opened) -> None:  # noqa: ANN001
    window, record = opened
    viewer = window.viewer
    note = viewer.note
    first_name = record.patient.name.split()[0]
    assert first_name in viewer.text.toPlainText()
    window.deid_action.trigger()
    qtbot.waitUntil(lambda: "[NAME]" in viewer.text.toPlainText(), timeout=120_000)
    assert first_name not in viewer.text.toPlainText()
    assert viewer.deid_banner.isVisible() and "De-identified view" in viewer.deid_banner.text()
    assert window.deid_action.isChecked()
    window.deid_action.trigger()
    assert viewer.text.toPlainText() == note.text.replace("\r\n", "\n")
    assert not viewer.deid_banner.isVisible()
