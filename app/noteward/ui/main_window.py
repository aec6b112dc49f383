"""The main window: wires panes to services. It holds no business logic of its own."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QMainWindow,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from noteward.core.models import SummarySentence
from noteward.settings import Settings, save_settings
from noteward.ui.about_dialog import AboutDialog
from noteward.ui.autolock import ClipboardGuard, IdleWatcher
from noteward.ui.geometry import fit_to_screen
from noteward.ui.import_dialog import ImportDialog
from noteward.ui.note_viewer import NoteViewer
from noteward.ui.patients import NotesTimeline, PatientHeader, PatientList
from noteward.ui.search_pane import SearchPane
from noteward.ui.services import PatientRecord, Services
from noteward.ui.settings_dialog import SettingsDialog
from noteward.ui.summary_pane import SummaryPane
from noteward.ui.vault_dialog import VaultDialog
from noteward.ui.workers import Job

log = logging.getLogger(__name__)

TEXT_POINTS = 10.5  # the theme's text size (resources/ui/noteward.qss) at 100%
ZOOM_STEP_PERCENT = 10
ZOOM_MIN_PERCENT = 50
ZOOM_MAX_PERCENT = 300
PREFERRED_SIZE = (1360, 860)


class MainWindow(QMainWindow):
    """Patients on the left, the record in the middle, summary and search on the right."""

    vault_did_lock = Signal()
    vault_did_unlock = Signal()
    record_did_load = Signal(object)
    patients_did_load = Signal(object)

    def __init__(self, services: Services, settings: Settings, vault_path: Path) -> None:
        super().__init__()
        self.services = services
        self.settings = settings
        self.vault_path = Path(vault_path)
        self.locked = True
        self.record: PatientRecord | None = None
        self.vault_dialog: VaultDialog | None = None
        self._record_job: Job | None = None
        self.setWindowTitle("Noteward")

        self.patient_list = PatientList()
        self.header = PatientHeader()
        self.timeline = NotesTimeline()
        self.viewer = NoteViewer(services)
        self.summary = SummaryPane(services)
        self.summary.set_show_unsupported(settings.show_unsupported)
        self.search = SearchPane(services)
        self.import_dialog = ImportDialog(services, self)

        middle = QSplitter(Qt.Orientation.Vertical)
        middle.addWidget(self.timeline)
        middle.addWidget(self.viewer)
        middle.setStretchFactor(0, 1)
        middle.setStretchFactor(1, 3)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.header)
        notes_title = QLabel("Notes")
        notes_title.setObjectName("PaneTitle")
        cl.addWidget(notes_title)
        cl.addWidget(middle, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.summary, "Su&mmary")
        self.tabs.addTab(self.search, "Sea&rch")
        self.tabs.setAccessibleName("Summary and search")
        self.tabs.setMinimumWidth(260)
        self.timeline.setMinimumHeight(90)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.patient_list)
        split.addWidget(centre)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 5)
        split.setStretchFactor(2, 4)
        split.setSizes([270, 620, 470])
        split.setChildrenCollapsible(False)
        wrap = QWidget()
        wl = QVBoxLayout(wrap)
        wl.setContentsMargins(8, 6, 8, 6)
        wl.addWidget(split)
        self.setCentralWidget(wrap)

        self._build_actions()
        self.signed_in = QLabel("")
        self.signed_in.setAccessibleName("Signed in user")
        self.statusBar().addPermanentWidget(self.signed_in)
        self.statusBar().showMessage("Locked.")

        self.idle = IdleWatcher(settings.autolock_minutes, self)
        self.idle.idle_did_expire.connect(self.lock)
        self.clipboard = ClipboardGuard(self)

        self.patient_list.patient_did_select.connect(self.load_patient)
        self.timeline.note_did_select.connect(self.viewer.show_note)
        self.summary.sentence_did_activate.connect(self.show_sentence_sources)
        self.search.hit_did_activate.connect(self.show_search_hit)
        self.import_dialog.import_did_finish.connect(self._import_did_finish)
        self.viewer.deid_did_toggle.connect(self.deid_action.setChecked)
        self.deid_action.toggled.connect(self.set_deidentified)
        self._set_locked_ui(True)
        self.apply_text_zoom(settings.text_zoom_percent)
        # the preferred size or less: within the screen, frame included (at 150% on a
        # 1366x768 laptop that is 910x512 logical pixels)
        fit_to_screen(self, PREFERRED_SIZE, centre=True)

    # -- actions and shortcuts -----------------------------------------------------------

    def _action(self, text: str, shortcut: Any, slot: Any | None, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.setToolTip(f"{text.replace('&', '').rstrip('…')} ({QKeySequence(shortcut).toString()})" if shortcut else text)
        if tip:
            act.setStatusTip(tip)
        if slot is not None:
            act.triggered.connect(slot)
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        self.import_action = self._action("&Import…", "Ctrl+I", self.open_import, "Import notes or FHIR files")
        self.lock_action = self._action("&Lock", "Ctrl+L", self.lock, "Lock the vault now")
        self.settings_action = self._action("&Settings…", "Ctrl+,", self.open_settings)
        self.quit_action = self._action("&Quit", "Ctrl+Q", self.close)
        self.about_action = self._action("&About Noteward", None, self.open_about,
                                         "Version and licence notices")
        self.summarize_action = self._action("&Summarize", "Ctrl+Shift+S", self.summary.summarize)
        self.cancel_action = self._action("&Cancel summary", "Esc", self.summary.cancel)
        self.cancel_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.find_patient_action = self._action("Find &patient", "Ctrl+F", self._focus_patient_filter)
        self.search_notes_action = self._action("Search &notes", "Ctrl+Shift+F", self._focus_search)
        self.deid_action = self._action(
            "&De-identified view", "Ctrl+D", None,
            "Mask names, dates, ids and authors everywhere on screen, so the screen can be shared",
        )
        self.deid_action.setCheckable(True)
        self.hide_unsupported_action = self._action(
            "&Hide unsupported sentences", "Ctrl+U", lambda: self.summary.hide_unsupported.toggle()
        )
        self.zoom_in_action = self._action("Zoom &in", QKeySequence.StandardKey.ZoomIn, lambda: self.zoom(+1))
        self.zoom_in_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.ZoomIn), QKeySequence("Ctrl+=")])
        self.zoom_out_action = self._action("Zoom &out", QKeySequence.StandardKey.ZoomOut, lambda: self.zoom(-1))
        self.zoom_reset_action = self._action("&Actual size", "Ctrl+0", lambda: self.zoom(0))
        self.next_source_action = self._action("Next source", "F8", lambda: self.viewer.step_source(1))
        self.prev_source_action = self._action("Previous source", "Shift+F8", lambda: self.viewer.step_source(-1))

        file_menu = self.menuBar().addMenu("&File")
        for a in (self.import_action, self.settings_action, self.lock_action, self.quit_action):
            file_menu.addAction(a)
        view_menu = self.menuBar().addMenu("&View")
        for a in (self.find_patient_action, self.search_notes_action, self.deid_action,
                  self.hide_unsupported_action, self.next_source_action, self.prev_source_action):
            view_menu.addAction(a)
        view_menu.addSeparator()
        for a in (self.zoom_in_action, self.zoom_out_action, self.zoom_reset_action):
            view_menu.addAction(a)
        summary_menu = self.menuBar().addMenu("&Summary")
        summary_menu.addAction(self.summarize_action)
        summary_menu.addAction(self.cancel_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.about_action)

        bar = QToolBar("Main")
        bar.setObjectName("MainToolbar")
        bar.setMovable(False)
        bar.setAccessibleName("Main toolbar")
        for a in (self.import_action, self.summarize_action, self.deid_action, self.settings_action):
            bar.addAction(a)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        bar.addAction(self.lock_action)
        self.addToolBar(bar)

    def _focus_patient_filter(self) -> None:
        self.patient_list.filter.setFocus()
        self.patient_list.filter.selectAll()

    def _focus_search(self) -> None:
        self.tabs.setCurrentWidget(self.search)
        self.search.query.setFocus()

    # -- text size -------------------------------------------------------------------------

    def zoom(self, step: int) -> None:
        """Ctrl+Plus / Ctrl+Minus / Ctrl+0: note and summary text size, kept in the settings."""
        pct = 100 if step == 0 else self.settings.text_zoom_percent + step * ZOOM_STEP_PERCENT
        pct = max(ZOOM_MIN_PERCENT, min(ZOOM_MAX_PERCENT, pct))
        self.apply_text_zoom(pct)
        if pct != self.settings.text_zoom_percent:
            self.settings = self.settings.model_copy(update={"text_zoom_percent": pct})
            save_settings(self.settings)
        self.statusBar().showMessage(f"Text size {pct}%.", 2000)

    def apply_text_zoom(self, percent: int) -> None:
        points = TEXT_POINTS * percent / 100
        self.viewer.set_text_points(points)
        self.summary.set_text_points(points)
        self.search.set_text_points(points)

    # -- the de-identified view -------------------------------------------------------------

    @property
    def deidentified(self) -> bool:
        return self.deid_action.isChecked()

    def set_deidentified(self, on: bool) -> None:
        """Mask every identifier the window shows (Ctrl+D): patient list and header, the
        timeline's dates and authors, the note, summary sentences and search results.
        Free text is masked on the nlp thread; dates become years (see services.year_only)."""
        if self.deid_action.isChecked() != on:
            self.deid_action.setChecked(on)  # re-enters through toggled
            return
        patient = self.record.patient if self.record is not None else None
        self.patient_list.set_deidentified(on)
        self.header.set_deidentified(on)
        self.timeline.set_deidentified(on)
        self.viewer.set_deidentified(on)
        self.summary.set_deidentified(patient if on else None)
        self.search.set_deidentified(patient if on else None)
        self.statusBar().showMessage("De-identified view on." if on else "De-identified view off.", 3000)

    def deid_settled(self) -> bool:
        """True when nothing is waiting to be masked (tests and screenshots wait on this)."""
        return not (self.viewer.deid_pending or self.summary.deid_pending or self.search.deid_pending)

    # -- locking -------------------------------------------------------------------------

    def _set_locked_ui(self, locked: bool) -> None:
        self.locked = locked
        for a in (self.import_action, self.lock_action, self.summarize_action, self.deid_action,
                  self.find_patient_action, self.search_notes_action):
            a.setEnabled(not locked)
        central = self.centralWidget()
        if central is not None:
            central.setEnabled(not locked)

    def request_unlock(self) -> VaultDialog:
        """Show the create/unlock dialog (window-modal; the event loop keeps running)."""
        if self.vault_dialog is not None:
            return self.vault_dialog
        dialog = VaultDialog(self.services, self.vault_path, self)
        dialog.vault_did_unlock.connect(self._did_unlock)
        dialog.rejected.connect(self._unlock_rejected)
        dialog.finished.connect(lambda _r: setattr(self, "vault_dialog", None))
        self.vault_dialog = dialog
        dialog.open()
        return dialog

    def _unlock_rejected(self) -> None:
        if self.locked:
            self.close()

    def _did_unlock(self, path: str) -> None:
        self.vault_path = Path(path)
        self._set_locked_ui(False)
        self.statusBar().showMessage(f"Unlocked {self.vault_path.name}.")
        who = self.services.signed_in
        self.signed_in.setText(f"Signed in: {who[0]} ({who[1]})" if who else "")
        self.idle.start()
        self.refresh_patients()
        self.vault_did_unlock.emit()

    def lock(self) -> None:
        """Close the vault, clear patient text from every widget and from the clipboard."""
        if self.locked:
            return
        self.idle.stop()
        self.services.lock()
        self._clear_patient_widgets()
        self.patient_list.clear()
        self.import_dialog.clear()
        self.import_dialog.hide()
        for child in self.findChildren(QDialog):
            if child is not self.import_dialog and child.isVisible():
                child.reject()
        self.clipboard.clear_if_ours()
        self._set_locked_ui(True)
        self.signed_in.setText("")
        self.statusBar().showMessage("Locked. Unlock to continue.")
        self.vault_did_lock.emit()
        self.request_unlock()

    def _clear_patient_widgets(self) -> None:
        if self._record_job is not None:
            self._record_job.cancel()
            self._record_job = None
        self.record = None
        self.header.set_patient(None)
        self.timeline.clear_all()
        self.viewer.forget_patient()
        self.summary.clear()
        self.search.set_patient(None)
        self.summary.set_deidentified(None)  # drop the patient held for masking
        self.search.set_deidentified(None)

    # -- patients ------------------------------------------------------------------------

    def refresh_patients(self) -> Job:
        job = self.services.patients()
        job.job_did_succeed.connect(self._show_patients)
        job.job_did_fail.connect(lambda m: self.statusBar().showMessage(f"Could not list patients: {m}"))
        return job

    def _show_patients(self, patients: list[Any]) -> None:
        if self.locked:
            return
        self.patient_list.set_patients(patients)
        self.statusBar().showMessage(f"{len(patients)} patients.")
        self.patients_did_load.emit(patients)

    def load_patient(self, patient_id: str) -> Job:
        if self._record_job is not None:
            self._record_job.cancel()
        self._record_job = job = self.services.patient_record(patient_id)
        job.job_did_succeed.connect(lambda rec, j=job: self._show_record(j, rec))
        job.job_did_fail.connect(lambda m: self.statusBar().showMessage(f"Could not open the patient: {m}"))
        return job

    def _show_record(self, job: Job, record: PatientRecord) -> None:
        if job is not self._record_job or self.locked:
            return
        self._record_job = None
        self.record = record
        self.header.set_patient(record.patient)
        self.timeline.set_notes(record.notes)
        self.viewer.set_patient(record.patient, record.notes)
        if record.notes:
            newest = max(record.notes, key=lambda n: (n.date or "", n.id))
            self.viewer.show_note(newest)
            self.timeline.select_note(newest.id)
        if self.summary.patient_id != record.patient.id or self.summary.job is None:
            self.summary.set_patient(record.patient.id, record.latest_summary)
        self.search.set_patient(record.patient.id, record.notes)
        if self.deidentified:
            self.summary.set_deidentified(record.patient)
            self.search.set_deidentified(record.patient)
        self.record_did_load.emit(record)

    # -- summary and search --------------------------------------------------------------

    def show_sentence_sources(self, sentence: SummarySentence) -> None:
        if not self.viewer.show_sources(sentence.sources):
            self.statusBar().showMessage("This sentence has no source span to show.")
            return
        span = sentence.sources[0]
        self.timeline.select_note(span.note_id)

    def show_search_hit(self, hit: dict[str, Any]) -> None:
        note = self.viewer.notes_by_id.get(hit["note_id"])
        if note is None:
            return
        self.viewer.show_sources([])
        self.viewer.highlight(note, hit["start"], hit["end"])
        self.timeline.select_note(note.id)

    # -- import and settings -------------------------------------------------------------

    def open_import(self) -> ImportDialog:
        self.import_dialog.show()
        self.import_dialog.raise_()
        return self.import_dialog

    def _import_did_finish(self, report: dict[str, Any]) -> None:
        self.refresh_patients()
        if self.record is not None:
            self.load_patient(self.record.patient.id)

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.settings, self)
        dialog.accepted.connect(lambda: self.apply_settings(dialog.result_settings()))
        dialog.open()
        return dialog

    def open_about(self) -> AboutDialog:
        dialog = AboutDialog(self)
        dialog.open()
        return dialog

    def apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        save_settings(settings)
        self.services.settings_did_change(settings)
        self.idle.set_minutes(settings.autolock_minutes)
        self.summary.set_show_unsupported(settings.show_unsupported)
        if settings.vault and self.locked:
            self.vault_path = Path(settings.vault)

    # -- closing -------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.idle.stop()
        if not self.locked:
            self.services.lock()
            self._clear_patient_widgets()
            self.clipboard.clear_if_ours()
            self.locked = True
        super().closeEvent(event)
