"""File > Import: files, folders, FHIR NDJSON or Bundles, with progress, counts and errors."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from noteward.ui.geometry import fit_to_screen
from noteward.ui.services import Services
from noteward.ui.workers import Job

IMPORT_FILTER = "Notes and FHIR (*.txt *.csv *.ndjson *.json *.jsonl);;All files (*)"


def report_counts(report: dict[str, Any]) -> tuple[int, int, dict[str, int]]:
    """(notes imported, notes skipped, imported per kind) from an import report."""
    counts = report.get("counts") or {}
    kinds = {k: int(v.get("imported", 0)) for k, v in counts.items() if isinstance(v, dict)}
    notes = counts.get("notes") or {}
    skipped = int(notes.get("skipped", 0)) + int(report.get("empty_notes_skipped", 0) or 0)
    return int(notes.get("imported", 0)), skipped, kinds


class ImportDialog(QDialog):
    """Choose what to import, run it on the vault thread, show progress, counts and errors."""

    import_did_finish = Signal(object)

    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.setWindowTitle("Import notes")
        self.setAccessibleName("Import notes")
        fit_to_screen(self, (720, 520))  # 1080x780 px at 150% was taller than a laptop screen
        self.job: Job | None = None
        self.report: dict[str, Any] | None = None
        self._started = 0.0
        self._summary_text = ""
        self._last_paint = 0.0

        hint = QLabel(
            "Add text files, CSV files, FHIR NDJSON files or Bundles, or whole folders. "
            "An import either commits whole or changes nothing."
        )
        hint.setWordWrap(True)
        hint.setObjectName("Hint")
        self.paths = QListWidget()
        self.paths.setAccessibleName("Files and folders to import")
        self.add_files = QPushButton("Add &files…")
        self.add_folder = QPushButton("Add f&older…")
        self.remove = QPushButton("&Remove")
        self.strict = QCheckBox("Stop at the first malformed record (strict)")
        row = QHBoxLayout()
        for b in (self.add_files, self.add_folder, self.remove):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.strict)

        self.progress = QProgressBar()
        self.progress.setAccessibleName("Import progress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.counts = QLabel("Nothing imported yet.")
        self.counts.setAccessibleName("Import counts")
        self.counts.setWordWrap(True)
        self.errors_title = QLabel("Problems")
        self.errors_title.setObjectName("PaneTitle")
        self.errors = QTableWidget(0, 3)
        self.errors.setHorizontalHeaderLabels(["File", "Line or resource", "Reason"])
        self.errors.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.errors.verticalHeader().setVisible(False)
        self.errors.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.errors.setAccessibleName("Import errors")

        self.start = QPushButton("&Import")
        self.start.setProperty("primary", True)
        self.start.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.start)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.paths, 1)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.counts)
        layout.addWidget(self.errors_title)
        layout.addWidget(self.errors, 2)
        layout.addLayout(buttons)

        self.add_files.clicked.connect(self._choose_files)
        self.add_folder.clicked.connect(self._choose_folder)
        self.remove.clicked.connect(lambda: [self.paths.takeItem(self.paths.row(i)) for i in self.paths.selectedItems()])
        self.start.clicked.connect(self.run_import)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)

    def add_paths(self, paths: list[str]) -> None:
        existing = {self.paths.item(i).text() for i in range(self.paths.count())}
        for p in paths:
            if p and p not in existing:
                self.paths.addItem(p)

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import files", "", IMPORT_FILTER)
        self.add_paths(files)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a folder")
        self.add_paths([folder] if folder else [])

    def clear(self) -> None:
        """Forget paths, counts and errors (used on lock)."""
        self.cancel()
        self.paths.clear()
        self.errors.setRowCount(0)
        self.counts.setText("Nothing imported yet.")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.report = None

    def run_import(self) -> Job | None:
        paths = [self.paths.item(i).text() for i in range(self.paths.count())]
        if not paths:
            self.counts.setText("Add at least one file or folder to import.")
            return None
        if self.job is not None:
            return self.job
        self.errors.setRowCount(0)
        self.report = None
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.counts.setText("Reading…")
        self._started = time.perf_counter()
        self._set_running(True)
        self.job = job = self.services.import_paths(paths, strict=self.strict.isChecked())
        job.job_did_progress.connect(self._did_progress)
        job.job_did_succeed.connect(self._did_succeed)
        job.job_did_fail.connect(self._did_fail)
        job.job_did_cancel.connect(self._did_cancel)
        job.job_did_end.connect(self._did_end)
        return job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            indexing = self.report is not None
            self.counts.setText(
                "Stopping indexing; what is indexed is kept." if indexing
                else "Cancelling… nothing from this import will be kept."
            )
            self.cancel_button.setEnabled(False)

    def _set_running(self, running: bool) -> None:
        for w in (self.start, self.add_files, self.add_folder, self.remove, self.strict):
            w.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _due(self, done: int, total: int) -> bool:
        """Repaint progress at most every 50 ms: a burst of queued reports costs nothing."""
        now = time.perf_counter()
        if done < total and now - self._last_paint < 0.05:
            return False
        self._last_paint = now
        return True

    def _did_progress(self, done: int, total: int) -> None:
        if not self._due(done, total):
            return
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"{done} of {total} (%p%)")
        self.counts.setText(f"Importing… {done} of {total} records read.")

    def _did_succeed(self, report: dict[str, Any]) -> None:
        self.report = report
        imported, skipped, kinds = report_counts(report)
        detail = ", ".join(f"{v} {k}" for k, v in kinds.items() if v and k != "notes")
        secs = time.perf_counter() - self._started
        self.counts.setText(
            f"Imported {imported} notes, skipped {skipped}"
            + (f"; also {detail}" if detail else "")
            + f". {len(report.get('errors') or [])} problems. ({secs:.1f} s)"
        )
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("Done")
        self.show_errors(report.get("errors") or [])
        self.import_did_finish.emit(report)
        if report.get("committed"):
            self._start_indexing()

    def _start_indexing(self) -> None:
        """Embed the new passages for semantic search (cancel keeps what is done)."""
        self._summary_text = self.counts.text()
        self.progress.setRange(0, 0)
        self.progress.setFormat("Indexing for semantic search…")
        self.job = job = self.services.index()
        self._set_running(True)
        job.job_did_progress.connect(self._index_progress)
        job.job_did_succeed.connect(self._index_done)
        job.job_did_fail.connect(lambda m: self.counts.setText(f"{self._summary_text} Semantic indexing failed: {m}"))
        job.job_did_cancel.connect(lambda: self.counts.setText(
            f"{self._summary_text} Semantic indexing paused; it continues after the next import."))
        job.job_did_end.connect(self._did_end)

    def _index_progress(self, done: int, total: int) -> None:
        if not self._due(done, total):
            return
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"Indexing for semantic search: {done} of {total}")

    def _index_done(self, report: dict[str, Any]) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("Done")
        self.counts.setText(f"{self._summary_text} {report.get('added', 0)} passages indexed for semantic search.")

    def show_errors(self, errors: list[Any]) -> None:
        self.errors.setRowCount(len(errors))
        for row, e in enumerate(errors):
            if not isinstance(e, dict):
                e = {"reason": str(e)}
            where = ", ".join(
                x for x in (f"line {e['line']}" if e.get("line") else "", e.get("resource") or "") if x
            )
            for col, val in enumerate((e.get("file", ""), "" if where is None else str(where), e.get("reason", e.get("message", "")))):
                cell = QTableWidgetItem(str(val))
                cell.setToolTip(str(val))
                self.errors.setItem(row, col, cell)
        self.errors.resizeColumnsToContents()
        self.errors.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.errors_title.setText(f"Problems ({len(errors)})" if errors else "Problems (none)")

    def _did_fail(self, message: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Failed")
        self.counts.setText(f"The import failed and nothing was changed: {message}")

    def _did_cancel(self) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Cancelled")
        self.counts.setText("Cancelled: nothing from this import was kept.")

    def _did_end(self) -> None:
        if self.sender() is not self.job:
            return  # the import ended and indexing has taken over
        self.job = None
        self._set_running(False)
