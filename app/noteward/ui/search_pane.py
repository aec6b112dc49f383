"""Search the patient's notes (semantic and keyword, fused); results show the passage."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from noteward.core.models import Patient
from noteward.ui.services import Services, masked_offset, year_only
from noteward.ui.workers import Job


def marked_html(passage: str, marks: list[tuple[int, int]]) -> str:
    """HTML for a passage with the matched ranges (offsets into the passage) in bold on
    yellow; everything escaped, so note text is never interpreted as markup."""
    out, last = [], 0
    for a, b in sorted(marks):
        a, b = max(a, last), min(b, len(passage))
        if a >= b:
            continue
        out.append(html.escape(passage[last:a]))
        out.append(f"<b style='background:#ffe58a'>{html.escape(passage[a:b])}</b>")
        last = b
    out.append(html.escape(passage[last:]))
    return "".join(out).replace("\n", " ").replace("\r", "")


class SearchPane(QWidget):
    """Query box and results; activating a result shows its passage highlighted in the note."""

    hit_did_activate = Signal(object)

    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.patient_id: str | None = None
        self.job: Job | None = None
        self.hits: list[dict[str, Any]] = []
        self.notes_by_id: dict[str, Any] = {}
        self.rendered = ""
        # The de-identified view: whose identifiers to mask (None: off), the masked hits
        # (text and offset map from Services.mask_texts) and the job computing them.
        self._deid_patient: Patient | None = None
        self._masked: list[dict[str, Any]] | None = None
        self._mask_job: Job | None = None
        self.query = QLineEdit()
        self.query.setPlaceholderText("Search this patient's notes (words or a question)")
        self.query.setAccessibleName("Search notes")
        self.query.setClearButtonEnabled(True)
        self.go = QPushButton("Search")
        self.go.setAccessibleName("Run search")
        row = QHBoxLayout()
        row.addWidget(self.query, 1)
        row.addWidget(self.go)
        self.status = QLabel("Semantic and keyword search over the selected patient's notes.")
        self.status.setObjectName("Hint")
        self.status.setWordWrap(True)
        self.results = QTextBrowser()
        self.results.setAccessibleName("Search results")
        self.results.setOpenLinks(False)
        self.results.setOpenExternalLinks(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)
        self.query.returnPressed.connect(self.search)
        self.go.clicked.connect(self.search)
        self.results.anchorClicked.connect(self._anchor)

    def set_text_points(self, points: float) -> None:
        """The size of the result passages (the window's zoom)."""
        self.results.setStyleSheet(f"QTextBrowser {{ font-size: {points:.1f}pt; }}")

    def set_patient(self, patient_id: str | None, notes: list[Any] | None = None) -> None:
        self.patient_id = patient_id
        self.notes_by_id = {n.id: n for n in notes or []}
        self.clear()

    def clear(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.job = None
        self._cancel_mask()
        self.hits = []
        self.results.clear()
        self.rendered = ""
        self.query.clear()
        self.status.setText("Semantic and keyword search over the selected patient's notes.")

    def search(self) -> None:
        text = self.query.text().strip()
        if not text:
            self.status.setText("Type some words to search for.")
            return
        if self.patient_id is None:
            self.status.setText("Select a patient first.")
            return
        if self.job is not None:
            self.job.cancel()
        self.status.setText("Searching…")
        self.job = job = self.services.search(text, self.patient_id, 10)
        job.job_did_succeed.connect(lambda hits, q=text, j=job: self._show(j, q, hits))
        job.job_did_fail.connect(lambda m: self.status.setText(f"Search failed: {m}"))

    def _show(self, job: Job, query: str, hits: list[dict[str, Any]]) -> None:
        if job is not self.job:
            return
        self.job = None
        self.hits = hits
        self._cancel_mask()  # masks of the previous results
        self._render()

    def _render(self) -> None:
        """Show ``self.hits``; in the de-identified view only once their masked text is in."""
        hits = self.hits
        masked = self._masked
        if self._deid_patient is not None and masked is None:
            self.results.clear()
            self.rendered = ""
            if hits:
                self._request_masks()
                self.status.setText("De-identifying the results…")
            return
        blocks = []
        for i, h in enumerate(hits):
            how = " and ".join(w for w, on in (("keyword", h["keyword"]), ("meaning", h["semantic"])) if on)
            note = self.notes_by_id.get(h["note_id"])
            where = ""
            if note is not None:
                date = year_only(note.date, "") if masked is not None else (note.date or "")[:10]
                where = f"{date} {note.type or ''}".strip()
            marks = [(a - h["start"], b - h["start"]) for a, b in h["marks"]] or [(0, len(h["text"]))]
            text = h["text"]
            if masked is not None:
                spans, text = masked[i]["spans"], masked[i]["text"]
                marks = [(masked_offset(spans, a), masked_offset(spans, b)) for a, b in marks]
            passage = marked_html(text, marks)
            blocks.append(
                f"<p style='margin:0 0 10px 0'><a href='hit:{i}' style='color:#2f6f7e'>"
                f"{html.escape(where or 'Note')}</a>"
                f" <span style='color:#52625c'>· {html.escape(h.get('section') or 'note')}"
                f" · matched by {how} · score {h['score']:.3f}</span><br>{passage}</p>"
            )
        self.rendered = "".join(blocks)
        self.results.setHtml(self.rendered)
        self.status.setText(
            f"{len(hits)} passages found. Select a date to see the passage in its note." if hits else "Nothing found."
        )

    # -- the de-identified view --------------------------------------------------------------

    @property
    def deid_pending(self) -> bool:
        return self._mask_job is not None

    def set_deidentified(self, patient: Patient | None) -> None:
        """Show result passages masked for ``patient``, dates as years (None: as they are)."""
        self._cancel_mask()
        self._deid_patient = patient
        if self.hits:
            self._render()

    def _cancel_mask(self) -> None:
        if self._mask_job is not None:
            self._mask_job.cancel()
            self._mask_job = None
        self._masked = None

    def _request_masks(self) -> None:
        if self._mask_job is not None:
            return
        self._mask_job = job = self.services.mask_texts([h["text"] for h in self.hits], self._deid_patient)
        job.job_did_succeed.connect(lambda r, j=job: self._did_mask(j, r))
        job.job_did_fail.connect(lambda m, j=job: self._mask_failed(j, m))

    def _did_mask(self, job: Job, masked: list[dict[str, Any]]) -> None:
        if job is not self._mask_job:
            return
        self._mask_job = None
        self._masked = masked
        self._render()

    def _mask_failed(self, job: Job, message: str) -> None:
        if job is self._mask_job:
            self._mask_job = None
            self.status.setText(f"The results could not be de-identified: {message}")

    def _anchor(self, url: QUrl) -> None:
        text = url.toString()
        if text.startswith("hit:"):
            self.activate(int(text[4:]))

    def activate(self, row: int) -> None:
        """Show hit ``row`` in the note viewer (its passage highlighted)."""
        if 0 <= row < len(self.hits):
            self.hit_did_activate.emit(self.hits[row])
