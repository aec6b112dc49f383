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

from noteward.ui.services import Services
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
        blocks = []
        for i, h in enumerate(hits):
            how = " and ".join(w for w, on in (("keyword", h["keyword"]), ("meaning", h["semantic"])) if on)
            note = self.notes_by_id.get(h["note_id"])
            where = f"{(note.date or '')[:10]} {note.type or ''}".strip() if note else ""
            marks = [(a - h["start"], b - h["start"]) for a, b in h["marks"]]
            passage = marked_html(h["text"], marks if marks else [(0, len(h["text"]))])
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

    def _anchor(self, url: QUrl) -> None:
        text = url.toString()
        if text.startswith("hit:"):
            self.activate(int(text[4:]))

    def activate(self, row: int) -> None:
        """Show hit ``row`` in the note viewer (its passage highlighted)."""
        if 0 <= row < len(self.hits):
            self.hit_did_activate.emit(self.hits[row])
