"""The summary pane: streamed, sectioned, checkable summary sentences."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QGuiApplication, QKeyEvent, QKeySequence, QMouseEvent, QTextFormat
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from noteward.core.models import (
    SUMMARY_SECTIONS,
    UNSUPPORTED_MARK,
    Patient,
    Summary,
    SummarySentence,
)
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


def approval_heading(summary: Summary, deidentified: bool = False) -> str:
    """'Approved by NAME, 2026-12-07 14:05 CET' (the time in this computer's zone; the year
    only in the de-identified view), or 'approver not recorded' for an approval saved before
    Noteward recorded approvers."""
    who = f"Approved by {summary.approved_by}" if summary.approved_by else "Approved (approver not recorded)"
    when = ""
    if summary.approved_at:
        if deidentified:
            when = year_only(summary.approved_at, "")
        else:
            try:
                when = datetime.fromisoformat(summary.approved_at).astimezone().strftime("%Y-%m-%d %H:%M %Z")
            except ValueError:
                when = summary.approved_at
    return f"{who}, {when}" if when else who


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
    """Edit the summary text and approve it; the original is kept unchanged beside it.
    Unsupported sentences stay in the editor, prefixed with ``UNSUPPORTED_MARK`` and
    highlighted, so the clinician sees what nothing in the notes backs."""

    UNSUPPORTED_BACKGROUND = QColor("#fde2c4")

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit and approve summary")
        fit_to_screen(self, (640, 480))
        hint = QLabel(
            "Correct the machine-generated summary, then approve it. The approved text is stored "
            "beside the original, with your name and the time; the original is not changed. "
            f"Sentences not supported by their sources are marked “{UNSUPPORTED_MARK.strip()}” "
            "and highlighted: they are left out when you approve unless you rewrite them after "
            "checking the notes. The mark itself is never saved."
        )
        hint.setWordWrap(True)
        self.editor = QPlainTextEdit(text)
        self.editor.setAccessibleName("Summary text to approve")
        self.editor.textChanged.connect(self._mark_unsupported)
        self._mark_unsupported()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.approve = buttons.addButton("&Approve", QDialogButtonBox.ButtonRole.AcceptRole)
        self.approve.setAccessibleName("Approve summary")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.editor, 1)
        layout.addWidget(buttons)

    def unsupported_lines(self) -> list[str]:
        """The editor's lines that still carry the unsupported mark (highlighted)."""
        return [
            sel.cursor.block().text() for sel in self.editor.extraSelections()
        ]

    def _mark_unsupported(self) -> None:
        selections = []
        block = self.editor.document().firstBlock()
        while block.isValid():
            if UNSUPPORTED_MARK.strip() in block.text():
                sel = QTextEdit.ExtraSelection()
                sel.format.setBackground(self.UNSUPPORTED_BACKGROUND)
                sel.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
                sel.cursor = self.editor.textCursor()
                sel.cursor.setPosition(block.position())
                selections.append(sel)
            block = block.next()
        self.editor.setExtraSelections(selections)


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
        # The patient's approved summary shown above the machine sentences: the shown summary
        # itself once approved, or an earlier one that a newer, unapproved summary follows.
        self._approved: Summary | None = None

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
        # The approved summary: its text, who approved it and when, and the machine text it
        # was made from one click away.
        self.approved_box = QFrame()
        self.approved_box.setObjectName("ApprovedSummary")
        self.approved_box.setAccessibleName("Approved summary")
        self.approved_label = QLabel()
        self.approved_label.setObjectName("ApprovedBy")
        self.approved_label.setWordWrap(True)
        self.approved_label.setAccessibleName("Approver and time")
        self.approved_view = QLabel()
        self.approved_view.setObjectName("ApprovedText")
        self.approved_view.setTextFormat(Qt.TextFormat.PlainText)
        self.approved_view.setWordWrap(True)
        self.approved_view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.approved_view.setAccessibleName("Approved summary text")
        self.machine_text_button = QPushButton("Show &machine text")
        self.machine_text_button.setCheckable(True)
        self.machine_text_button.setAccessibleName("Show or hide the machine-generated text")
        self.machine_text_button.setToolTip("The machine-generated summary this approved text was made from")
        # the machine text of an approved summary that a newer one follows (plain text)
        self.approved_machine_text = QLabel()
        self.approved_machine_text.setObjectName("Hint")
        self.approved_machine_text.setTextFormat(Qt.TextFormat.PlainText)
        self.approved_machine_text.setWordWrap(True)
        self.approved_machine_text.setAccessibleName("Machine text of the approved summary")
        self.approved_machine_text.hide()
        box = QVBoxLayout(self.approved_box)
        box.setContentsMargins(6, 6, 6, 6)
        for w in (self.approved_label, self.approved_view, self.machine_text_button, self.approved_machine_text):
            box.addWidget(w)
        self.approved_box.hide()
        self.newer_label = QLabel(
            "Newer machine summary below — NOT approved. It was written after the approved "
            "summary above, which stays as it is: check each sentence, then Edit and approve "
            "to make it the approved one."
        )
        self.newer_label.setObjectName("NotApproved")
        self.newer_label.setWordWrap(True)
        self.newer_label.setAccessibleName("Newer summary not approved")
        self.newer_label.hide()

        self.body = QWidget()
        outer = QVBoxLayout(self.body)
        outer.setContentsMargins(2, 2, 2, 2)
        # The notices scroll with the sentences: in a short pane (1024x700, 150% scaling)
        # fixed ones were squeezed and cut off. The machine-generated label stays fixed above.
        for notice in (self.out_of_date, self.approved_box, self.newer_label, self.status):
            outer.addWidget(notice)
        # The machine sentences under their section headings (hidden behind "Show machine
        # text" while the approved text of this same summary is shown).
        self.machine_box = QWidget()
        self.machine_box.setAccessibleName("Machine-generated sentences")
        self.body_layout = QVBoxLayout(self.machine_box)
        self.body_layout.setContentsMargins(0, 0, 0, 0)
        self.body_layout.addStretch(1)
        outer.addWidget(self.machine_box)
        outer.addStretch(1)
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
        self.machine_text_button.toggled.connect(self._show_machine_text)
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
        self._render_approval()
        if self.summary is not None:
            self._label_machine(self.summary)

    def _request_masks(self, views: list[SentenceView]) -> None:
        if self._masked is None:
            return
        texts = sorted(({t for v in views for t in [v.sentence.text, *(c.text for c in v.sentence.conflicts)]}
                        | set(self._approval_texts())) - set(self._masked))
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
        self._render_approval()

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
        self._approved = None
        self._set_machine_text_shown(False)
        self.machine_label.hide()
        self.out_of_date.hide()
        self._render_approval()
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
        # the approved summary (if any) stays on screen above the new machine text
        self.summary = None
        self.out_of_date.hide()
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
        self._render_approval()

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
        if summary.approved_text is not None:
            self._approved = summary
        elif summary.earlier_approved is not None:
            self._approved = summary.earlier_approved
        # else: a fresh summary follows the approved one already shown (kept, not replaced)
        self._set_machine_text_shown(False)
        self._render_approval()
        self._label_machine(summary)
        self.out_of_date.setVisible(summary.out_of_date)
        unsupported = sum(1 for s in sentences if not s.supported)
        when = "Saved summary" if saved else "Done"
        self.status.setText(
            f"{when}: {len(sentences)} sentences, {unsupported} unsupported."
            + ("" if sentences else " The model produced no usable sentence.")
        )
        self._update_approve_button()

    def _label_machine(self, summary: Summary) -> None:
        if self._shows_own_approval():
            label = (
                "Approved summary (below), edited by a clinician from a machine-generated one; "
                "the machine text is one click away."
            )
        else:
            label = "Machine-generated summary — check each sentence against its sources before relying on it."
        cov = covers_text(summary.covers, self._masked is not None)
        if cov:
            label += " " + cov
        if summary.model.get("id"):
            label += f" Model: {summary.model['id']}."
        self.machine_label.setText(label)
        self.machine_label.show()

    # -- the approved summary ------------------------------------------------------------

    def _shows_own_approval(self) -> bool:
        """True when the approved text shown is that of the summary whose sentences are shown."""
        a, s = self._approved, self.summary
        return a is not None and s is not None and (a is s or (a.summary_id is not None and a.summary_id == s.summary_id))

    @staticmethod
    def _machine_text(summary: Summary) -> str:
        """An approved summary's machine text, unsupported sentences marked as in the list."""
        return summary.as_text("⚠ Unsupported — ")

    def _approval_texts(self) -> list[str]:
        """The texts the approval box shows (masked in the de-identified view)."""
        a = self._approved
        if a is None:
            return []
        return [str(a.approved_text or ""), self._machine_text(a)]

    def _shown(self, text: str) -> str:
        return text if self._masked is None else self._masked.get(text, "[de-identifying…]")

    def _set_machine_text_shown(self, shown: bool) -> None:
        self.machine_text_button.blockSignals(True)
        self.machine_text_button.setChecked(shown)
        self.machine_text_button.blockSignals(False)

    def _show_machine_text(self, _shown: bool) -> None:
        self._render_approval()

    def _render_approval(self) -> None:
        """Show the approved summary (approver, time, text) above the machine sentences: the
        sentences of the same summary one click away; a newer summary's marked not approved."""
        a = self._approved
        if a is None:
            self.approved_box.hide()
            self.newer_label.hide()
            self.machine_box.show()
            return
        self.approved_label.setText(approval_heading(a, self._masked is not None))
        self.approved_view.setText(self._shown(str(a.approved_text or "")))
        shown = self.machine_text_button.isChecked()
        self.machine_text_button.setText("Hide &machine text" if shown else "Show &machine text")
        if self._shows_own_approval():
            self.newer_label.hide()
            self.approved_machine_text.hide()
            self.machine_box.setVisible(shown)
        else:
            self.approved_machine_text.setText(self._shown(self._machine_text(a)))
            self.approved_machine_text.setVisible(shown)
            self.newer_label.setVisible(self.summary is not None or self.job is not None or bool(self.views))
            self.machine_box.show()
        self.approved_box.show()

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
        """The text the clinician edits: the approved text once approved, else every sentence
        by section with the unsupported ones marked (``UNSUPPORTED_MARK``; approving never
        saves one the clinician did not edit)."""
        if self.summary is None:
            return ""
        if self.summary.approved_text is not None:
            return str(self.summary.approved_text)
        return self.summary.approval_text()

    def _update_approve_button(self) -> None:
        # The editor shows the machine text as written: not while the screen is de-identified.
        masked = self._deid_patient is not None
        self.approve_button.setEnabled(bool(self._summary_id()) and not masked)
        self.approve_button.setToolTip(
            "Turn off the de-identified view to edit and approve" if masked else ""
        )

    def approval_dialog(self) -> ApproveDialog:
        """The editor offered by Edit and approve (not yet shown)."""
        return ApproveDialog(self.summary_text(), self)

    def edit_and_approve(self) -> None:
        summary_id = self._summary_id()
        if not summary_id or self._deid_patient is not None:
            return
        dialog = self.approval_dialog()
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.approve(summary_id, dialog.editor.toPlainText())

    def approve(self, summary_id: str, text: str) -> Job:
        self._approve_job = job = self.services.save_approved(summary_id, text)
        job.job_did_succeed.connect(self._did_approve)  # the summary as stored, typed
        job.job_did_fail.connect(lambda m: self.status.setText(f"Approving failed: {m}"))
        return job

    def _did_approve(self, stored: Summary) -> None:
        summary = self.summary
        if summary is None or summary.summary_id != stored.summary_id:
            return  # another patient or summary is shown now
        summary.approved_text = stored.approved_text
        summary.approved_by = stored.approved_by
        summary.approved_at = stored.approved_at
        summary.earlier_approved = None
        self._approved = summary
        self._set_machine_text_shown(False)
        self._render_approval()
        self._label_machine(summary)
        self._request_masks([])
        self.status.setText("Approved: your edited version is stored beside the original, with your name and the time.")
