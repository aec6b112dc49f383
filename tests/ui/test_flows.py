"""The desktop client's real flows, offscreen: create, unlock, import, browse, lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractItemView, QLabel, QLineEdit, QPlainTextEdit, QWidget

from tests.conftest import PASSPHRASE
from tests.ui.conftest import unlock

pytestmark = pytest.mark.shared_data


def import_into(qtbot, win, paths: list[Path]) -> dict:  # noqa: ANN001
    dialog = win.open_import()
    dialog.add_paths([str(p) for p in paths])
    with qtbot.waitSignal(dialog.import_did_finish, timeout=60_000) as blocker:
        dialog.start.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=180_000)  # import, then indexing
    return blocker.args[0]


def select_first_patient(qtbot, win):  # noqa: ANN001, ANN201
    qtbot.waitUntil(lambda: win.patient_list.proxy.rowCount() > 0, timeout=10_000)
    with qtbot.waitSignal(win.record_did_load, timeout=20_000) as blocker:
        win.patient_list.view.setCurrentIndex(win.patient_list.proxy.index(0, 0))
    return blocker.args[0]


def test_create_import_select_browse(qtbot, window, one_patient_dir) -> None:  # noqa: ANN001
    dialog = window.request_unlock()
    assert dialog.creating and dialog.repeat.isVisible()
    unlock(qtbot, window)
    assert not window.locked and window.patient_list.model.rowCount() == 0

    report = import_into(qtbot, window, [one_patient_dir])
    assert report["committed"] and report["counts"]["notes"]["imported"] == 15
    assert "Imported 15 notes" in window.import_dialog.counts.text()
    assert window.import_dialog.progress.value() == window.import_dialog.progress.maximum()

    qtbot.waitUntil(lambda: window.patient_list.model.rowCount() == 1, timeout=10_000)
    record = select_first_patient(qtbot, window)
    assert len(record.notes) == 15
    assert window.header.name.text() == record.patient.name
    facts = window.header.facts.text()
    assert "Age" in facts and ("Male" in facts or "Female" in facts)
    assert window.timeline.topLevelItemCount() == 15
    # the viewer shows the newest note; picking another note in the timeline shows that one
    item = window.timeline.topLevelItem(14)
    window.timeline.setCurrentItem(item)
    shown = window.viewer.note
    assert shown is not None and shown.id == item.data(0, Qt.ItemDataRole.UserRole)
    assert window.viewer.text.toPlainText() == shown.text.replace("\r\n", "\n")

    # search the patient list by name and by id
    pl = window.patient_list
    pl.filter.setText(record.patient.name.split()[0].lower())
    assert pl.proxy.rowCount() == 1
    pl.filter.setText(record.patient.id)
    assert pl.proxy.rowCount() == 1
    pl.filter.setText("no such patient zz")
    assert pl.proxy.rowCount() == 0


def test_wrong_passphrase_then_right_one(qtbot, window, vault_path) -> None:  # noqa: ANN001
    from noteward.store.vault import Vault

    Vault.create(vault_path, PASSPHRASE).close()
    dialog = window.request_unlock()
    assert not dialog.creating and not dialog.repeat.isVisible()
    dialog.passphrase.setText("not the passphrase")
    dialog.submit.click()
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=20_000)
    assert "Wrong passphrase" in dialog.error.text()
    assert dialog.isVisible() and window.locked
    qtbot.waitUntil(lambda: dialog.submit.isEnabled(), timeout=5_000)
    # what was typed stays, selected, so the next keystrokes replace it (test_layout)
    assert dialog.passphrase.selectedText() == "not the passphrase"
    # the failed attempt is counted beside the vault and audited at the next unlock
    assert Path(str(vault_path) + ".failed-unlocks").read_text() == "1"
    unlock(qtbot, window)
    assert not window.locked and not dialog.isVisible()
    assert not Path(str(vault_path) + ".failed-unlocks").exists()


def test_import_error_list(qtbot, window, tmp_path) -> None:  # noqa: ANN001
    src = tmp_path / "in"
    src.mkdir()
    (src / "visit.txt").write_text("Patient seen for cough. Plan: rest and fluids.\n", encoding="utf-8")
    good = {"resourceType": "Patient", "id": "p-ui-1", "name": [{"family": "Test", "given": ["Ada"]}]}
    (src / "Patient.000.ndjson").write_text(
        json.dumps(good) + "\n{not json at all\n" + json.dumps({"resourceType": "Patient"}) + "\n",
        encoding="utf-8",
    )
    (src / "data.xyz").write_text("?", encoding="utf-8")
    unlock(qtbot, window)
    report = import_into(qtbot, window, [src])
    errors = report["errors"]
    assert len(errors) >= 2
    table = window.import_dialog.errors
    assert table.rowCount() == len(errors)
    cells = [[table.item(r, c).text() for c in range(3)] for r in range(table.rowCount())]
    files = {row[0] for row in cells}
    assert "Patient.000.ndjson" in files and "data.xyz" in files
    bad_json = next(row for row in cells if row[0] == "Patient.000.ndjson" and "line 2" in row[1])
    assert bad_json[2]  # a reason is shown
    assert window.import_dialog.errors_title.text() == f"Problems ({len(errors)})"


def _visible_texts(win) -> str:  # noqa: ANN001
    """Every piece of text any widget of the app currently holds."""
    parts: list[str] = []
    for w in win.findChildren(QWidget):
        if isinstance(w, QLabel):
            parts.append(w.text())
        elif isinstance(w, QLineEdit):
            parts.append(w.text())
        elif isinstance(w, QPlainTextEdit):
            parts.append(w.toPlainText())
        elif isinstance(w, QAbstractItemView) and w.model() is not None:
            m = w.model()
            cols = 1 if isinstance(m, QAbstractListModel) else m.columnCount(QModelIndex())
            for r in range(m.rowCount(QModelIndex())):
                for c in range(cols):
                    parts.append(str(m.index(r, c).data() or ""))
        parts.append(w.toolTip())
    return "\n".join(parts)


def test_lock_clears_widgets_clipboard_and_closes_vault(qtbot, window, one_patient_dir) -> None:  # noqa: ANN001
    unlock(qtbot, window)
    import_into(qtbot, window, [one_patient_dir])
    record = select_first_patient(qtbot, window)
    note = window.viewer.note
    assert note is not None and record.patient.name in _visible_texts(window)
    # the clinician copies part of a note
    window.viewer.text.setFocus()
    window.viewer.text.selectAll()
    window.viewer.text.copy()
    window.clipboard.remember(QGuiApplication.clipboard().text())  # offscreen has no focus window
    assert QGuiApplication.clipboard().text()

    with qtbot.waitSignal(window.vault_did_lock, timeout=5_000):
        window.lock_action.trigger()
    texts = _visible_texts(window)
    assert record.patient.name not in texts
    assert record.patient.id not in texts
    for n in record.notes:
        assert n.text[:60] not in texts
    assert QGuiApplication.clipboard().text() == ""
    assert window.vault_dialog is not None and window.vault_dialog.isVisible()
    qtbot.waitUntil(lambda: "vault" not in window.services.vault_thread._state, timeout=5_000)
    qtbot.waitUntil(lambda: "reader" not in window.services.model_thread._state, timeout=5_000)
    assert "searcher" not in window.services.vault_thread._state
    assert "service" not in window.services.model_thread._state

    # unlocking again brings the patients back
    unlock(qtbot, window)
    assert window.patient_list.model.rowCount() == 1


def test_clipboard_from_elsewhere_is_left_alone(qtbot, window) -> None:  # noqa: ANN001
    unlock(qtbot, window)
    QGuiApplication.clipboard().setText("text from another program")
    window.clipboard._ours = None  # offscreen: pretend the copy did not come from us
    window.lock()
    assert QGuiApplication.clipboard().text() == "text from another program"
    QGuiApplication.clipboard().clear()


def test_idle_timeout_locks(qtbot, window) -> None:  # noqa: ANN001
    unlock(qtbot, window)
    window.idle.set_minutes(0.002)  # 120 ms
    with qtbot.waitSignal(window.vault_did_lock, timeout=5_000):
        pass
    assert window.locked


def test_import_cancel_changes_nothing(qtbot, window, one_patient_dir) -> None:  # noqa: ANN001
    unlock(qtbot, window)
    dialog = window.open_import()
    dialog.add_paths([str(one_patient_dir)])
    job = dialog.run_import()
    job.cancel()  # before it starts reading: the worker sees the event and stops
    with qtbot.waitSignal(job.job_did_end, timeout=30_000):
        pass
    assert job.outcome == "cancelled"
    assert "Cancelled" in dialog.counts.text()
    with qtbot.waitSignal(window.patients_did_load, timeout=5_000) as blocker:
        window.refresh_patients()
    assert blocker.args[0] == []


def test_settings_apply_to_the_running_app(qtbot, window) -> None:  # noqa: ANN001
    from noteward.settings import load_settings

    unlock(qtbot, window)
    dialog = window.open_settings()
    dialog.autolock.setValue(3)
    dialog.show_unsupported.setChecked(False)
    dialog.threads.setValue(1)
    dialog.accept()
    assert window.idle.timer.interval() == 3 * 60_000
    assert window.summary.hide_unsupported.isChecked()
    assert window.services.settings.threads == 1
    saved = load_settings()
    assert (saved.autolock_minutes, saved.show_unsupported, saved.threads) == (3, False, 1)
