"""The de-identified view masks every identifier on screen and on the clipboard.

Real vault (the shared Synthea patient 63ee2253), real spaCy pipeline through the
client's nlp thread. The walk reads every visible widget's text the way a screen share
(or a screen reader) would: labels, buttons, tooltips, item models, text edits, the title.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from PySide6.QtCore import QAbstractItemModel, QModelIndex, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

from noteward.core.models import Conflict, SourceSpan, Summary, SummarySentence
from tests.ui.conftest import unlock
from tests.ui.test_flows import import_into, select_first_patient

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

ROLES = (
    Qt.ItemDataRole.DisplayRole,
    Qt.ItemDataRole.ToolTipRole,
    Qt.ItemDataRole.AccessibleTextRole,
)


def _columns(model: QAbstractItemModel, parent: QModelIndex) -> int:
    try:
        return model.columnCount(parent)
    except TypeError:  # a list model keeps columnCount private: one column
        return 1


def _model_texts(model: QAbstractItemModel, parent: QModelIndex | None = None) -> list[str]:
    parent = parent or QModelIndex()
    out: list[str] = []
    for row in range(model.rowCount(parent)):
        for col in range(_columns(model, parent)):
            idx = model.index(row, col, parent)
            for role in ROLES:
                v = idx.data(role)
                if isinstance(v, str):
                    out.append(v)
            if col == 0 and model.rowCount(idx) > 0:
                out += _model_texts(model, idx)
    for col in range(_columns(model, parent)):
        v = model.headerData(col, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole)
        if isinstance(v, str):
            out.append(v)
    return out


def visible_texts(win: QWidget) -> list[tuple[str, str]]:
    """(where, text) for every piece of text a visible widget of ``win`` shows."""
    out: list[tuple[str, str]] = [("window title", win.windowTitle())]
    for w in win.findChildren(QWidget):
        if not w.isVisibleTo(win):
            continue
        where = f"{type(w).__name__}:{w.objectName() or w.accessibleName()}"
        texts = [w.toolTip(), w.accessibleName(), w.accessibleDescription(), w.windowTitle()]
        if isinstance(w, QLabel | QAbstractButton | QLineEdit):
            texts.append(w.text())
        if isinstance(w, QPlainTextEdit | QTextEdit):
            texts.append(w.toPlainText())
        if isinstance(w, QComboBox):
            texts += _model_texts(w.model())
        if isinstance(w, QAbstractItemView) and w.model() is not None:
            texts += _model_texts(w.model())
        out += [(where, t) for t in texts if t]
    return out


def identifiers(record) -> list[str]:  # noqa: ANN001
    """The patient's identifiers from the store: name parts (with and without Synthea's
    digits), birth date in common formats, source id, address, phone, note authors."""
    p = record.patient
    found: set[str] = set()

    def name(full: str) -> None:
        for tok in re.split(r"[\s,]+", full or ""):
            for t in (tok, re.sub(r"\d+$", "", tok)):
                if len(t) >= 3:
                    found.add(t)

    name(p.name)
    if p.birth_date:
        b = date.fromisoformat(p.birth_date[:10])
        found |= {
            b.isoformat(),
            f"{b.month}/{b.day}/{b.year}",
            f"{b.month:02d}/{b.day:02d}/{b.year}",
            b.strftime("%d %B %Y"),
            b.strftime("%B %d, %Y"),
            f"{b.strftime('%B')} {b.day}, {b.year}",
        }
    if p.source_id:
        found.add(p.source_id)
        found.add(p.source_id.split("-")[0])  # the short form the UI might show
    blob = repr(p.details)
    for phone in re.findall(r"\d{3}-\d{3}-\d{4}", blob):
        found.add(phone)
    for m in re.finditer(r"'(line|city|postalCode)': (\[?'[^']+')", blob):
        found.add(m.group(2).strip("['"))
    for n in record.notes:
        if n.author:
            name(n.author.replace("Dr.", ""))
    return sorted(found)


def leaks(win: QWidget, record) -> list[str]:  # noqa: ANN001
    ids = identifiers(record)
    out = []
    for where, text in visible_texts(win):
        for ident in ids:
            if re.search(rf"(?<!\w){re.escape(ident)}(?!\w)", text, re.IGNORECASE):
                out.append(f"{ident!r} in {where}")
    return sorted(set(out))


def summary_for(record) -> Summary:  # noqa: ANN001
    """A summary of this patient whose sentences quote the patient's own identifiers,
    the way the extractive sentences and conflicts of a real summary do."""
    p = record.patient
    note = max(record.notes, key=lambda n: n.date or "")
    other = min(record.notes, key=lambda n: n.date or "")
    line = next(ln.strip() for ln in note.text.splitlines() if p.name.split()[0] in ln)
    return Summary(
        patient=p.id,
        sentences=[
            SummarySentence(
                text=line, section="Problems", sources=[SourceSpan(note.id, 0, len(line))],
                support=0.9, supported=True, date=(note.date or "")[:10], origin="extract",
                conflicts=[Conflict(text=f"{p.name} (born {p.birth_date}) seen by {other.author}.",
                                    date=(other.date or "")[:10])],
            ),
            SummarySentence(
                text=f"{p.name} lives at {p.details and 'home'}.", section="Other", support=0.2,
                supported=False, date=(other.date or "")[:10], origin="model",
            ),
        ],
        covers={"note_ids": [n.id for n in record.notes],
                "date_range": [(other.date or "")[:10], (note.date or "")[:10]]},
        summary_id="test-summary",
    )


@pytest.fixture
def opened(qtbot, window, one_patient_dir):  # noqa: ANN001, ANN201
    unlock(qtbot, window)
    import_into(qtbot, window, [one_patient_dir])
    record = select_first_patient(qtbot, window)
    window.summary.hide_unsupported.setChecked(False)  # every sentence on screen
    window.summary.set_patient(record.patient.id, summary_for(record))
    qtbot.waitUntil(lambda: window.summary.settled and bool(window.summary.views), timeout=10_000)
    window.search.query.setText(record.patient.name.split()[0])
    window.search.search()
    with qtbot.waitSignal(window.search.job.job_did_end, timeout=60_000):
        pass
    assert window.search.hits
    window.search.query.clear()  # what the user typed is not the app's to mask
    return window, record


def settled(window) -> bool:  # noqa: ANN001
    """Every masking job of the view has reported back."""
    done = getattr(window, "deid_settled", None)
    return done() if done is not None else "[NAME]" in window.viewer.text.toPlainText()


def deid_on(qtbot, window) -> None:  # noqa: ANN001
    window.deid_action.trigger()
    qtbot.waitUntil(lambda: settled(window), timeout=180_000)


def test_without_the_view_the_walk_finds_identifiers(opened) -> None:  # noqa: ANN001
    """The walk and identifier list are not blind: the plain view shows name and authors."""
    window, record = opened
    found = leaks(window, record)
    assert any("PatientName" in f or "Patient name" in f for f in found), found
    assert any("Notes timeline" in f for f in found), found


def test_deidentified_view_masks_every_visible_identifier(qtbot, opened) -> None:  # noqa: ANN001
    window, record = opened
    deid_on(qtbot, window)
    assert window.viewer.deid_button.isChecked()
    assert leaks(window, record) == []
    # dates: generalised to the year (the view keeps bare years, as the engine's default may)
    rows = _model_texts(window.timeline.model())
    assert any(re.fullmatch(r"\d{4}", r) for r in rows)
    assert not any(re.search(r"\d{4}-\d{2}-\d{2}", r) for r in rows)
    # browsing another note keeps the view on and masks that note too
    oldest = min(record.notes, key=lambda n: n.date or "")
    window.timeline.select_note(oldest.id)
    window.viewer.show_note(oldest)
    qtbot.waitUntil(lambda: settled(window), timeout=60_000)
    assert window.deid_action.isChecked()
    assert leaks(window, record) == []
    # a summary source is still highlighted, on the de-identified text
    window.show_sentence_sources(window.summary.sentences[0])
    qtbot.waitUntil(lambda: settled(window), timeout=60_000)
    assert window.viewer.highlighted_text()
    assert leaks(window, record) == []
    # and off again: the record comes back as it is
    window.deid_action.trigger()
    assert record.patient.name in window.header.name.text()
    assert not window.viewer.deid_button.isChecked()


def test_viewer_button_turns_on_the_whole_view_with_a_source_shown(qtbot, opened) -> None:  # noqa: ANN001
    window, record = opened
    window.show_sentence_sources(window.summary.sentences[0])
    assert window.viewer.highlighted_text()
    window.viewer.deid_button.click()  # the viewer's own button drives the window-wide view
    assert window.deid_action.isChecked()
    qtbot.waitUntil(lambda: settled(window), timeout=60_000)
    assert leaks(window, record) == []
    assert window.viewer.highlighted_text()  # the source, on the masked text


def test_clipboard_gets_the_masked_text(qtbot, opened) -> None:  # noqa: ANN001
    window, record = opened
    deid_on(qtbot, window)
    clipboard = QGuiApplication.clipboard()
    ids = identifiers(record)

    def copied() -> str:
        return clipboard.text()

    window.viewer.text.selectAll()
    window.viewer.text.copy()
    assert "[NAME]" in copied()
    window.header.copy_action.trigger()
    assert copied() and not [i for i in ids if i.lower() in copied().lower()]
    view = window.summary.views[0]
    view.setFocus()
    view.copy()
    assert copied() and not [i for i in ids if i.lower() in copied().lower()]
    window.search.results.selectAll()
    window.search.results.copy()
    assert copied() and not [i for i in ids if i.lower() in copied().lower()]
    window.viewer.text.selectAll()
    window.viewer.text.copy()
    assert not [i for i in ids if i.lower() in copied().lower()]


def test_the_view_neither_filters_by_hidden_names_nor_edits_unmasked_text(qtbot, opened, monkeypatch) -> None:  # noqa: ANN001
    """With the view on, typing a patient's name must not narrow the list (that would say who
    is in the vault), and the Edit-and-approve dialog, which shows the machine text as
    written, is not offered until the view is turned off."""
    window, record = opened
    deid_on(qtbot, window)
    plist = window.patient_list
    shown = plist.proxy.rowCount()
    plist.filter.setText(record.patient.name.split()[-1])
    assert plist.proxy.rowCount() == 0, "a hidden name still matched"
    plist.filter.setText("Patient 1")
    assert plist.proxy.rowCount() >= 1
    plist.filter.clear()
    assert plist.proxy.rowCount() == shown
    assert not window.summary.approve_button.isEnabled()
    from noteward.ui import summary_pane

    opened_dialogs: list[object] = []
    # the real dialog is modal: record that it would open instead of blocking the test
    monkeypatch.setattr(summary_pane.ApproveDialog, "exec", lambda self: opened_dialogs.append(self) or 0)
    window.summary.edit_and_approve()  # a shortcut or a stale click does nothing either
    assert opened_dialogs == []
