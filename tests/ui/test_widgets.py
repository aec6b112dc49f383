"""Smaller pieces: offset mapping, strength hints, settings with IT-locked keys, workers."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pytest
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from noteward.core.errors import NotewardError
from noteward.ui.patients import age_years
from noteward.ui.text_positions import PositionMap
from noteward.ui.vault_dialog import passphrase_strength

TEXTS = [
    ("plain", "Plan: metformin 500 mg twice daily."),
    ("crlf", "Line one\r\nLine two\r\n\r\nafter blank"),
    ("lone cr", "a\rb\rc"),
    ("astral", "pain 😀 score 7/10 𝔘 done"),
    ("line separator", "one\u2028two\u2029three"),
    ("tabs and nbsp", "BP\t120/80\u00a0mmHg"),
]


@pytest.mark.parametrize(("name", "text"), TEXTS, ids=[t[0] for t in TEXTS])
def test_position_map_round_trips_against_a_real_document(qtbot, name: str, text: str) -> None:  # noqa: ANN001
    """Every (start, end) span maps to the same text in a QTextDocument and back."""
    from PySide6.QtGui import QTextCursor

    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    edit.setPlainText(text)
    pm = PositionMap(text)
    assert pm.doc_length == edit.document().characterCount() - 1
    cuts = [i for i in range(len(text) + 1) if not (0 < i < len(text) and text[i - 1] == "\r" and text[i] == "\n")]
    for a in cuts:
        for b in cuts:
            if b < a:
                continue
            cur = QTextCursor(edit.document())
            cur.setPosition(pm.to_doc(a))
            cur.setPosition(pm.to_doc(b), QTextCursor.MoveMode.KeepAnchor)
            shown = cur.selectedText().replace("\u2029", "\n").replace("\u2028", "\n")
            expected = text[a:b].replace("\r\n", "\n")
            for sep in ("\r", "\u2028", "\u2029"):
                expected = expected.replace(sep, "\n")
            assert shown == expected, (a, b)
            assert (pm.to_offset(cur.selectionStart()), pm.to_offset(cur.selectionEnd())) == (a, b)


@pytest.mark.parametrize(
    ("passphrase", "level"),
    [
        ("", "weak"),
        ("short1!", "weak"),
        ("abcdefghij", "weak"),
        ("Abcdefghijkl", "fair"),  # 12 characters: the minimum for a new passphrase
        ("correct horse battery staple", "good"),
        ("Tr0ub4dor&3-x9!Qz", "good"),
    ],
)
def test_passphrase_strength(passphrase: str, level: str) -> None:
    assert passphrase_strength(passphrase)[0] == level


@pytest.mark.parametrize(
    ("birth", "until", "expected"),
    [
        ("2011-03-23", None, 15),  # on 2026-11-26
        ("2011-11-27", None, 14),
        ("1940-05-01", "2001-04-30", 60),
        (None, None, None),
        ("not a date", None, None),
    ],
)
def test_age(birth, until, expected) -> None:  # noqa: ANN001
    assert age_years(birth, until, today=date(2026, 11, 26)) == expected


def test_settings_dialog_disables_it_locked_keys(qtbot, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from noteward.settings import load_settings, policy_file
    from noteward.ui.settings_dialog import LOCKED_TIP, SettingsDialog

    policy_file().write_text(json.dumps({"autolock_minutes": 5, "vault": str(tmp_path / "it.nwv")}))
    settings = load_settings()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert not dialog.autolock.isEnabled() and dialog.autolock.value() == 5
    assert not dialog.vault.isEnabled() and not dialog.browse.isEnabled()
    assert dialog.autolock.toolTip() == LOCKED_TIP
    assert dialog.threads.isEnabled() and dialog.model.isEnabled()
    assert dialog.locked_note.isVisibleTo(dialog)
    # the model list comes from the manifest
    ids = [dialog.model.itemData(i) for i in range(dialog.model.count())]
    assert "" in ids and "smollm2-135m-instruct-q4_1" in ids
    dialog.autolock.setEnabled(True)
    dialog.autolock.setValue(30)  # even if forced, a locked key keeps the policy value
    dialog.threads.setValue(2)
    dialog.show_unsupported.setChecked(False)
    out = dialog.result_settings()
    assert out.autolock_minutes == 5 and out.threads == 2 and out.show_unsupported is False
    assert str(out.vault) == str(tmp_path / "it.nwv")


def test_worker_reports_progress_result_error_and_cancel(qtbot) -> None:  # noqa: ANN001
    from noteward.ui.workers import OwnerThread

    thread = OwnerThread("test-owner")
    try:
        seen: list[tuple[int, int]] = []
        gui = threading.get_ident()
        ran_on: list[int] = []

        def work(ctx, n: int) -> int:  # noqa: ANN001
            ran_on.append(threading.get_ident())
            ctx.state["count"] = ctx.state.get("count", 0) + 1
            for i in range(n):
                ctx.progress(i + 1, n)
            return n * 2

        job = thread.submit("ok", work, 3)
        slot_threads: list[int] = []
        job.job_did_progress.connect(lambda d, t: (seen.append((d, t)), slot_threads.append(threading.get_ident())))
        with qtbot.waitSignal(job.job_did_succeed, timeout=5000) as blocker:
            pass
        assert blocker.args == [6] and seen == [(1, 3), (2, 3), (3, 3)]
        assert ran_on[0] != gui and set(slot_threads) == {gui}

        def fails(ctx) -> None:  # noqa: ANN001
            raise NotewardError("a clear message")

        job = thread.submit("fail", fails)
        with qtbot.waitSignal(job.job_did_fail, timeout=5000) as blocker:
            pass
        assert blocker.args == ["a clear message"]

        started = threading.Event()

        def long(ctx) -> None:  # noqa: ANN001
            started.set()
            while True:
                ctx.check()
                ctx.cancel.wait(0.01)

        job = thread.submit("long", long)
        qtbot.waitUntil(started.is_set, timeout=5000)
        with qtbot.waitSignal(job.job_did_cancel, timeout=5000):
            job.cancel()
        qtbot.waitUntil(lambda: job.finished, timeout=5000)
        assert job.outcome == "cancelled"
        # state is kept between jobs on the same owner thread
        job = thread.submit("again", work, 1)
        with qtbot.waitSignal(job.job_did_succeed, timeout=5000):
            pass
        assert len(set(ran_on)) == 1
    finally:
        thread.stop()


_DELETE_TWICE = """
import os, weakref
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QApplication
app = QApplication([])
from noteward.ui.workers import OwnerThread

class Owner:  # stands in for Services/MainWindow: owns the thread, referenced by a slot
    def __init__(self):
        self.thread = OwnerThread("owner")

for i in range(5):
    owner = Owner()
    job = owner.thread.submit("x", lambda ctx: 1)
    job.job_did_succeed.connect(lambda _r, owner=owner: None)  # a widget's lambda, say
    while not job.finished:
        QCoreApplication.processEvents()
    owner.thread.stop()
    gone = weakref.ref(owner)
    del owner, job  # now only the Job's connection keeps the owner, and its thread, alive
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert gone() is None, "the Job was not deleted"
print("survived")
"""


def test_deleting_a_job_never_deletes_it_twice() -> None:
    """A Job's connection can hold the last reference to whatever owns the OwnerThread that
    ran it (the window, through a lambda). Deleting the Job then drops that thread; were the
    Job the thread's child, it would be destroyed a second time inside its own destructor:
    the segfault CI hit in test_summary's teardown. Run in a child process, so a regression
    fails this test instead of killing the run."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, "-c", _DELETE_TWICE], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0 and "survived" in out.stdout, (out.returncode, out.stderr[-2000:])
    assert "deleted directly" not in out.stderr


def test_lock_during_unlock_still_closes_the_handed_over_reader(
    qtbot, services, vault_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    """Locking right as the unlock finishes cancels the model thread's adopt-reader job before
    it starts; the second vault connection it carries must be closed all the same."""
    from noteward.ui import services as services_mod
    from tests.conftest import PASSPHRASE

    handed: list[object] = []
    original = services_mod._adopt_reader

    def adopt(ctx, reader) -> None:  # noqa: ANN001
        handed.append(reader)
        original(ctx, reader)

    monkeypatch.setattr(services_mod, "_adopt_reader", adopt)
    job = services.open_vault(str(vault_path), PASSPHRASE, create=True)
    locks: list[object] = []
    job.job_did_succeed.connect(lambda _r: locks.extend(services.lock()))  # after the hand-over
    with qtbot.waitSignal(job.job_did_end, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: len(locks) >= 2 and all(j.finished for j in locks), timeout=10_000)
    assert len(handed) == 1, "the adopt-reader job never ran: its connection was left open"
    assert handed[0]._conn is None  # type: ignore[attr-defined]
    assert "reader" not in services.model_thread._state
    assert "vault" not in services.vault_thread._state


@pytest.mark.parametrize(
    ("patient", "facts", "deceased"),
    [
        (dict(birth_date="1950-06-01", sex="female"), "born 1950-06-01 · Female · 3 notes", None),
        (dict(birth_date="1930-01-15", sex="male", deceased=True, deceased_date="2001-03-02T10:00:00"),
         "Age at death 71 · born 1930-01-15 · Male · 3 notes", "Deceased 2001-03-02"),
        (dict(deceased=True), "Sex not recorded · 3 notes", "Deceased"),
    ],
)
def test_patient_header(qtbot, patient, facts, deceased) -> None:  # noqa: ANN001
    from noteward.core.models import Patient
    from noteward.ui.patients import PatientHeader

    header = PatientHeader()
    qtbot.addWidget(header)
    p = Patient(id="pt_1", source_id=None, name="Test Person", note_count=3, **patient)
    header.set_patient(p)
    assert header.facts.text().endswith(facts)
    assert ("Age" in header.facts.text()) == bool(p.birth_date)
    assert header.name.text() == "Test Person"
    assert header.deceased.isVisibleTo(header) == (deceased is not None)
    if deceased:
        assert header.deceased.text() == deceased
    header.set_patient(None)
    assert header.name.text() == "No patient selected" and header.facts.text() == ""


def test_controls_have_accessible_names_and_shortcuts(qtbot, window) -> None:  # noqa: ANN001
    """Every control a screen reader lands on has a name; the main actions have keys."""
    from PySide6.QtWidgets import (
        QAbstractButton,
        QAbstractItemView,
        QAbstractSpinBox,
        QComboBox,
        QDialog,
        QHeaderView,
        QLineEdit,
        QMainWindow,
        QPlainTextEdit,
        QTabBar,
        QTextBrowser,
        QToolBar,
    )

    kinds = (QAbstractButton, QLineEdit, QComboBox, QAbstractSpinBox, QAbstractItemView, QPlainTextEdit, QTextBrowser)
    unnamed = []
    for root in (window, window.import_dialog, window.request_unlock()):
        for w in root.findChildren(QWidget):
            if not isinstance(w, kinds) or isinstance(w, QHeaderView) or w.objectName().startswith("qt_"):
                continue
            # parts Qt builds inside a control (clear buttons, popups, scroll arrows) are
            # named through the control that owns them
            owner = w.parent()
            while owner is not None and not isinstance(owner, (QLineEdit, QComboBox, QAbstractSpinBox, QTabBar, QToolBar)):
                owner = owner.parent() if not isinstance(owner, QMainWindow | QDialog) else None
            if owner is not None or w.window() is not root and not isinstance(w.window(), QMainWindow | QDialog):
                continue
            name = w.accessibleName() or (w.text() if isinstance(w, QAbstractButton) else "")
            if not name.replace("&", "").strip():
                unnamed.append(f"{type(w).__name__} in {type(w.parent()).__name__}")
    assert not unnamed, unnamed
    for action in (window.import_action, window.lock_action, window.settings_action, window.summarize_action,
                   window.cancel_action, window.find_patient_action, window.search_notes_action, window.deid_action,
                   window.next_source_action, window.prev_source_action, window.quit_action):
        assert not action.shortcut().isEmpty(), action.text()
    keys = [a.shortcut().toString() for a in window.actions() if not a.shortcut().isEmpty()]
    assert len(keys) == len(set(keys)), "two actions share a shortcut"


def test_signals_do_not_leak_references_to_true(qtbot) -> None:  # noqa: ANN001
    """PySide6 6.12.0 dropped a reference to True on every emit until CPython aborted
    ("bool_dealloc"); the pinned release must not, or a long session would crash."""
    import sys

    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal(int)

    probe = Probe()
    probe.ping.connect(lambda _n: None)
    before = sys.getrefcount(True)
    for i in range(5000):
        probe.ping.emit(i)
    assert sys.getrefcount(True) >= before - 10, "emit() leaks references to True"
