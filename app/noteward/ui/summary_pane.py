"""The summary pane: streamed, sectioned, checkable summary sentences."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QKeyEvent, QKeySequence, QMouseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from noteward.core.models import SUMMARY_SECTIONS, Patient, Summary, SummarySentence
from noteward.ui.flow_layout import FlowLayout
from noteward.ui.geometry import fit_to_screen
from noteward.ui.services import Services, year_only
from noteward.ui.workers import Job

SECTIONS = SUMMARY_SECTIONS  # the order sections are shown in


def sentence_from_json(d: dict[str, Any]) -> SummarySentence:
    return SummarySentence.from_json(d)


def as_summary(result: Summary | Mapping[str, Any]) -> Summary:
    """The typed summary, from a ``Summary`` or the dict a service or saved row gives."""
    return result if isinstance(result, Summary) else Summary.from_json(result)


def covers_text(covers: Any, deidentified: bool = False) -> str:
    """'Covers 15 notes, 2015-03-02 to 2023-01-10.' from a summary's covers record."""
    if not covers:
        return ""
    if isinstance(covers, dict):
        ids = covers.get("note_ids") or covers.get("notes") or []
        n = len(ids) if isinstance(ids, list) else int(ids or 0)
        rng = covers.get("date_range") or [covers.get("from") or covers.get("start"), covers.get("to") or covers.get("end")]
        lo, hi = (rng + [None, None])[:2] if isinstance(rng, list) else (None, None)
        out = f"Covers {n} note{'s' if n != 1 else ''}"
        if lo or hi:
            if deidentified:
                out += f", {year_only(lo, '?')} to {year_only(hi, '?')}"
            else:
                out += f", {str(lo or '?')[:10]} to {str(hi or '?')[:10]}"
        return out + "."
    return ""


class SentenceView(QLabel):
    """One summary sentence: click (or Enter) to see its source; hover for its support."""

    sentence_did_activate = Signal(object)

    def __init__(self, sentence: SummarySentence, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sentence = sentence
        self.setObjectName("Sentence")
        self.setWordWrap(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setProperty("supported", sentence.supported)
        self.setProperty("selected", False)
        self.render(None)

    def render(self, masked: dict[str, str] | None) -> None:
        """Show the sentence; with ``masked`` (original -> de-identified text) as the
        de-identified view shows it: masked texts, dates as years."""
        sentence = self.sentence

        def text(t: str) -> str:
            return t if masked is None else masked.get(t, "[de-identifying…]")

        def when(d: str | None, missing: str = "") -> str:
            return (d or missing) if masked is None else year_only(d, missing)

        n = len(sentence.sources)
        prefix = "" if sentence.supported else "⚠ Unsupported — "
        if sentence.conflicts:
            prefix += "⚠ Conflict — "
        dated = f"{when(sentence.date)} · " if sentence.date else ""
        self.setText(prefix + dated + text(sentence.text))
        state = "supported" if sentence.supported else "NOT supported by its sources; check it"
        origin = {"model": "Written by the model", "extract": "Copied from a note",
                  "fact": "From the structured record"}.get(sentence.origin or "", "")
        conflicts = "".join(
            f"\nDisagrees with ({when(c.date, 'undated')}): {text(c.text)}" for c in sentence.conflicts
        )
        self.setToolTip(
            (f"{origin}, {when(sentence.date)}.\n" if origin and sentence.date else f"{origin}.\n" if origin else "")
            + f"Support score {sentence.support:.2f} ({state}).\n"
            + (f"{n} source span{'s' if n != 1 else ''}: click to show" if n else "No source span found.")
            + conflicts
        )
        self.setAccessibleName(prefix + text(sentence.text))
        self.setAccessibleDescription(
            f"{sentence.section}; {'supported' if sentence.supported else 'unsupported'}; "
            f"support score {sentence.support:.2f}; {n} source{'s' if n != 1 else ''}. Press Enter to show."
        )

    def set_selected(self, selected: bool) -> None:
        self.setProperty("selected", selected)
        self.style().unpolish(self)
        self.style().polish(self)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.setFocus()
            self.sentence_did_activate.emit(self.sentence)
        super().mousePressEvent(event)

    def copy(self) -> None:
        """Ctrl+C: the sentence as shown (masked in the de-identified view)."""
        QGuiApplication.clipboard().setText(self.text())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.sentence_did_activate.emit(self.sentence)
            return
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy()
            return
        super().keyPressEvent(event)


class ApproveDialog(QDialog):
    """Edit the summary text and approve it; the original is kept unchanged beside it."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit and approve summary")
        fit_to_screen(self, (640, 480))
        hint = QLabel(
            "Correct the machine-generated summary, then approve it. The approved text is stored "
            "beside the original; the original is not changed. Sentences not supported by their "
            "sources are left out: write one back in your own words if you have checked it."
        )
        hint.setWordWrap(True)
        self.editor = QPlainTextEdit(text)
        self.editor.setAccessibleName("Summary text to approve")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.approve = buttons.addButton("&Approve", QDialogButtonBox.ButtonRole.AcceptRole)
        self.approve.setAccessibleName("Approve summary")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.editor, 1)
        layout.addWidget(buttons)


class SummaryPane(QWidget):
    """Summarize a patient: sentences stream in under their sections; click one for its source."""

    sentence_did_activate = Signal(object)
    summary_did_finish = Signal(object)  # the finished Summary

    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.patient_id: str | None = None
        self.summary: Summary | None = None
        self.sentences: list[SummarySentence] = []
        self.views: list[SentenceView] = []
        # Widgets handed to deleteLater(), kept referenced until the next clear (long after
        # Qt has deleted them): their Python wrappers must not be released (by the garbage
        # collector, on whatever thread runs it) while Qt is destroying the C++ objects,
        # which crashed PySide in BindingManager::releaseWrapper.
        self._retired: list[QWidget] = []
        self.job: Job | None = None
        self.tokens = 0
        self._started = 0.0
        self.first_sentence_ms: float | None = None
        self._approve_job: Job | None = None
        self._last_status = 0.0
        # Streamed sentences are laid out a few per event-loop turn so a burst of them
        # never holds the GUI thread for long.
        self._pending: list[SummarySentence] = []
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)
        self._flush_timer.timeout.connect(self._flush_pending)
        # The de-identified view: the patient whose identifiers are masked (None: off) and
        # the masked text of each sentence and conflict, filled by Services.mask_texts.
        self._deid_patient: Patient | None = None
        self._masked: dict[str, str] | None = None
        self._mask_jobs: list[Job] = []

        title = QLabel("Summary")
        title.setObjectName("PaneTitle")
        self.summarize_button = QPushButton("&Summarize")
        self.summarize_button.setProperty("primary", True)
        self.summarize_button.setToolTip("Summarize this patient's notes (Ctrl+Shift+S)")
        self.summarize_button.setAccessibleName("Summarize patient")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel summary")
        self.cancel_button.setToolTip("Stop the summary now (Esc)")
        self.cancel_button.setEnabled(False)
        self.approve_button = QPushButton("&Edit and approve…")
        self.approve_button.setAccessibleName("Edit and approve summary")
        self.approve_button.setEnabled(False)
        self.hide_unsupported = QCheckBox("&Hide unsupported")
        self.hide_unsupported.setAccessibleName("Hide unsupported sentences")
        self.hide_unsupported.setChecked(True)  # shown on one click, marked
        self.show_unsupported_button = QPushButton()
        self.show_unsupported_button.setAccessibleName("Show or hide unsupported sentences")
        self.show_unsupported_button.hide()
        # One wrapping row: in a narrow pane (1024x700, 150% scaling) the buttons move onto
        # further lines instead of being cut off.
        actions = FlowLayout(spacing=6)
        for w in (title, self.summarize_button, self.cancel_button, self.hide_unsupported,
                  self.show_unsupported_button, self.approve_button):
            actions.addWidget(w)

        self.machine_label = QLabel()
        self.machine_label.setObjectName("MachineLabel")
        self.machine_label.setWordWrap(True)
        self.machine_label.setAccessibleName("Machine-generated summary notice")
        self.machine_label.hide()
        self.out_of_date = QLabel("Out of date: newer notes exist than this summary covers. Summarize again.")
        self.out_of_date.setObjectName("OutOfDate")
        self.out_of_date.setWordWrap(True)
        self.out_of_date.setAccessibleName("Out-of-date marker")
        self.out_of_date.hide()
        self.status = QLabel("Select a patient, then Summarize.")
        self.status.setObjectName("Status")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Summary status")
        self.approved_label = QLabel()
        self.approved_label.setObjectName("Hint")
        self.approved_label.setWordWrap(True)
        self.approved_label.hide()

        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(2, 2, 2, 2)
        # The notices scroll with the sentences: in a short pane (1024x700, 150% scaling)
        # fixed ones were squeezed and cut off. The machine-generated label stays fixed above.
        for notice in (self.out_of_date, self.approved_label, self.status):
            self.body_layout.addWidget(notice)
        self.body_layout.addStretch(1)
        self.section_labels: dict[str, QLabel] = {}
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.body)
        scroll.setAccessibleName("Summary sentences")
        self.scroll = scroll  # type: ignore[assignment,method-assign]  # shadows QWidget.scroll()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(actions)
        layout.addWidget(self.machine_label)
        layout.addWidget(scroll, 1)

        self.summarize_button.clicked.connect(self.summarize)
        self.cancel_button.clicked.connect(self.cancel)
        self.hide_unsupported.toggled.connect(self._apply_visibility)
        self.show_unsupported_button.clicked.connect(self.hide_unsupported.toggle)
        self.approve_button.clicked.connect(self.edit_and_approve)
        self.set_patient(None)

    # -- the de-identified view --------------------------------------------------------------

    @property
    def deid_pending(self) -> bool:
        return bool(self._mask_jobs) or (self._masked is not None and bool(self._pending))

    def set_deidentified(self, patient: Patient | None) -> None:
        """Mask the sentences, conflicts and dates shown for ``patient`` (None: show them as they are)."""
        if patient is not None and self._deid_patient is not None and patient.id == self._deid_patient.id:
            return
        for job in self._mask_jobs:
            job.cancel()
        self._mask_jobs = []
        self._deid_patient = patient
        self._masked = None if patient is None else {}
        self._update_approve_button()
        for v in self.views:
            v.render(self._masked)
        self._request_masks(self.views)
        if self.summary is not None:
            self._label_machine(self.summary)

    def _request_masks(self, views: list[SentenceView]) -> None:
        if self._masked is None:
            return
        texts = sorted({t for v in views for t in [v.sentence.text, *(c.text for c in v.sentence.conflicts)]}
                       - set(self._masked))
        if not texts:
            return
        job = self.services.mask_texts(texts, self._deid_patient)
        self._mask_jobs.append(job)
        job.job_did_succeed.connect(lambda r, j=job, t=texts: self._did_mask(j, t, r))
        job.job_did_end.connect(lambda j=job: self._mask_jobs.remove(j) if j in self._mask_jobs else None)

    def _did_mask(self, job: Job, texts: list[str], results: list[dict[str, Any]]) -> None:
        if job not in self._mask_jobs or self._masked is None:
            return
        self._masked.update({t: r["text"] for t, r in zip(texts, results, strict=True)})
        for v in self.views:
            v.render(self._masked)

    def set_text_points(self, points: float) -> None:
        """The size of the sentences and their headings (the window's zoom)."""
        self.body.setStyleSheet(f"QLabel {{ font-size: {points:.1f}pt; }}")

    # -- state ---------------------------------------------------------------------------

    def set_show_unsupported(self, show: bool) -> None:
        self.hide_unsupported.setChecked(not show)

    def set_patient(
        self, patient_id: str | None, latest: Summary | Mapping[str, Any] | None = None
    ) -> None:
        """Switch patient: cancel any running summary and show the latest saved one."""
        self.cancel()
        self.patient_id = patient_id
        self._clear_sentences()
        self.summary = None
        self.machine_label.hide()
        self.out_of_date.hide()
        self.approved_label.hide()
        self.approve_button.setEnabled(False)
        self.summarize_button.setEnabled(patient_id is not None)
        self.status.setText("Select a patient, then Summarize." if patient_id is None else "No summary yet.")
        if latest:
            self._show_result(latest, saved=True)

    def clear(self) -> None:
        """Forget everything shown (used on lock)."""
        self.set_patient(None)

    def _clear_sentences(self) -> None:
        self._pending = []
        self._flush_timer.stop()
        self._retired = [*self.views, *self.section_labels.values()]
        for w in self._retired:
            w.hide()
            w.deleteLater()
        self.views = []
        self.sentences = []
        self.section_labels = {}
        self._update_unsupported_button()

    # -- summarizing ---------------------------------------------------------------------

    def summarize(self) -> None:
        if self.patient_id is None or self.job is not None:
            return
        self._clear_sentences()
        self.summary = None
        self.out_of_date.hide()
        self.approved_label.hide()
        self.approve_button.setEnabled(False)
        self.tokens = 0
        self.first_sentence_ms = None
        self._started = time.perf_counter()
        self.machine_label.setText(
            "Machine-generated summary, being written — check each sentence against its sources."
        )
        self.machine_label.show()
        self.status.setText("Loading the model and reading the notes…")
        self.summarize_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.job = job = self.services.summarize(self.patient_id)
        job.job_did_stream.connect(self._did_stream)
        job.job_did_succeed.connect(self._did_succeed)
        job.job_did_fail.connect(self._did_fail)
        job.job_did_cancel.connect(self._did_cancel)
        job.job_did_end.connect(self._did_end)

    def cancel(self) -> None:
        """Stop the running summary now: the model thread sees the event on its next token."""
        if self.job is not None:
            self.job.cancel()
            self.status.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def _did_stream(self, item: Any) -> None:
        if self.sender() is not self.job:
            return
        if isinstance(item, str):
            self.tokens += 1
            now = time.perf_counter()
            if not self.sentences and now - self._last_status > 0.1:  # repaint at most 10/s
                self._last_status = now
                self.status.setText(f"Writing… ({self.tokens} tokens)")
            return
        if isinstance(item, dict):
            item = sentence_from_json(item)
        self._pending.append(item)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    PER_TURN = 3

    @property
    def settled(self) -> bool:
        """True when every received sentence is on screen."""
        return not self._pending

    def _flush_pending(self) -> None:
        batch, self._pending = self._pending[: self.PER_TURN], self._pending[self.PER_TURN :]
        if batch:
            self.body.setUpdatesEnabled(False)
            for s in batch:
                self._add_sentence(s)
            self._request_masks(self.views[-len(batch):])
            self.body.setUpdatesEnabled(True)
            if self.first_sentence_ms is None:
                self.first_sentence_ms = (time.perf_counter() - self._started) * 1000
            if self.job is not None and not self.job.finished:
                self.status.setText(f"Writing… {len(self.sentences)} sentences so far.")
        if self._pending:
            self._flush_timer.start()

    def _did_succeed(self, result: Summary) -> None:
        self._show_result(result, saved=False)
        self.summary_did_finish.emit(result)

    def _did_fail(self, message: str) -> None:
        self.status.setText(f"The summary failed: {message}")

    def _did_cancel(self) -> None:
        self.status.setText(f"Cancelled. {len(self.sentences) + len(self._pending)} sentences were written before the stop.")
        self.machine_label.setText("Machine-generated summary, incomplete (cancelled).")

    def _did_end(self) -> None:
        self.job = None
        self.cancel_button.setEnabled(False)
        self.summarize_button.setEnabled(self.patient_id is not None)

    # -- showing -------------------------------------------------------------------------

    def _show_result(self, result: Summary | Mapping[str, Any], *, saved: bool) -> None:
        summary = self.summary = as_summary(result)
        sentences = list(summary.sentences)
        shown = sorted(json.dumps(s.to_json(), sort_keys=True) for s in self.sentences + self._pending)
        final = sorted(json.dumps(s.to_json(), sort_keys=True) for s in sentences)
        if shown != final:  # rebuild only when the final summary differs from what streamed in
            self._clear_sentences()
            self._pending = list(sentences)
            self._flush_timer.start()
        self._label_machine(summary)
        self.out_of_date.setVisible(summary.out_of_date)
        if summary.approved_text:
            self.approved_label.setText("A clinician approved an edited version of this summary.")
            self.approved_label.show()
        unsupported = sum(1 for s in sentences if not s.supported)
        when = "Saved summary" if saved else "Done"
        self.status.setText(
            f"{when}: {len(sentences)} sentences, {unsupported} unsupported."
            + ("" if sentences else " The model produced no usable sentence.")
        )
        self._update_approve_button()

    def _label_machine(self, summary: Summary) -> None:
        label = "Machine-generated summary — check each sentence against its sources before relying on it."
        cov = covers_text(summary.covers, self._masked is not None)
        if cov:
            label += " " + cov
        if summary.model.get("id"):
            label += f" Model: {summary.model['id']}."
        self.machine_label.setText(label)
        self.machine_label.show()

    def _add_sentence(self, s: SummarySentence) -> None:
        section = s.section if s.section in SECTIONS else "Other"
        if section not in self.section_labels:
            heading = QLabel(section)
            heading.setObjectName("SectionHeading")
            heading.setAccessibleName(f"Section {section}")
            # keep sections in the canonical order, whatever order sentences arrive in
            order = [sec for sec in SECTIONS if sec in self.section_labels or sec == section]
            idx = order.index(section)
            after = order[idx + 1] if idx + 1 < len(order) else None
            pos = self.body_layout.indexOf(self.section_labels[after]) if after else self.body_layout.count() - 1
            self.body_layout.insertWidget(pos, heading)
            self.section_labels[section] = heading
        view = SentenceView(s)
        if self._masked is not None:
            view.render(self._masked)
        view.sentence_did_activate.connect(self._activate)
        # insert after the last widget of this section
        heading = self.section_labels[section]
        pos = self.body_layout.indexOf(heading) + 1
        while pos < self.body_layout.count() - 1:
            item = self.body_layout.itemAt(pos)
            w = item.widget() if item is not None else None
            if not isinstance(w, SentenceView):
                break
            pos += 1
        self.body_layout.insertWidget(pos, view)
        self.views.append(view)
        self.sentences.append(s)
        view.setVisible(s.supported or not self.hide_unsupported.isChecked())
        if not s.supported:
            self._update_unsupported_button()

    def _apply_visibility(self) -> None:
        hide = self.hide_unsupported.isChecked()
        for v in self.views:
            v.setVisible(v.sentence.supported or not hide)
        self._update_unsupported_button()

    def _update_unsupported_button(self) -> None:
        """'Show N unsupported' while they are hidden, 'Hide N unsupported' once shown."""
        n = sum(1 for s in self.sentences if not s.supported)
        verb = "Show" if self.hide_unsupported.isChecked() else "Hide"
        self.show_unsupported_button.setText(f"{verb} {n} unsupported")
        self.show_unsupported_button.setVisible(n > 0)

    def _activate(self, sentence: SummarySentence) -> None:
        for v in self.views:
            v.set_selected(v.sentence is sentence)
        self.sentence_did_activate.emit(sentence)

    # -- approving -----------------------------------------------------------------------

    def _summary_id(self) -> str | None:
        if not self.summary:
            return None
        return self.summary.summary_id

    def summary_text(self) -> str:
        """The summary as plain text, by section (what the clinician edits). Unsupported
        sentences are left out: approving never saves one the clinician did not write."""
        if self.summary and self.summary.approved_text:
            return str(self.summary.approved_text)
        lines: list[str] = []
        for section in SECTIONS:
            items = [
                s for s in self.sentences
                if s.supported and (s.section if s.section in SECTIONS else "Other") == section
            ]
            if items:
                lines.append(section)
                lines.extend(f"- {s.text}" for s in items)
                lines.append("")
        return "\n".join(lines).strip() + "\n"

    def _update_approve_button(self) -> None:
        # The editor shows the machine text as written: not while the screen is de-identified.
        masked = self._deid_patient is not None
        self.approve_button.setEnabled(bool(self._summary_id()) and not masked)
        self.approve_button.setToolTip(
            "Turn off the de-identified view to edit and approve" if masked else ""
        )

    def edit_and_approve(self) -> None:
        summary_id = self._summary_id()
        if not summary_id or self._deid_patient is not None:
            return
        dialog = ApproveDialog(self.summary_text(), self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.approve(summary_id, dialog.editor.toPlainText())

    def approve(self, summary_id: str, text: str) -> Job:
        self._approve_job = job = self.services.save_approved(summary_id, text)
        job.job_did_succeed.connect(self._did_approve)  # the text as stored
        job.job_did_fail.connect(lambda m: self.status.setText(f"Approving failed: {m}"))
        return job

    def _did_approve(self, text: str) -> None:
        if self.summary is not None:
            self.summary.approved_text = text
        self.approved_label.setText("Approved: your edited version is stored beside the original.")
        self.approved_label.show()
