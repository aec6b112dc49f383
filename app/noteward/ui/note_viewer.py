"""The note viewer: one note's text, with a highlighted source span and a de-identified view."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from noteward.core.models import Note, Patient, SourceSpan
from noteward.ui.services import Services
from noteward.ui.text_positions import PositionMap
from noteward.ui.workers import Job

HIGHLIGHT = QColor("#ffe58a")
HIGHLIGHT_EDGE = QColor("#b88a00")


def note_title(note: Note) -> str:
    date = (note.date or "undated")[:10]
    parts = [date, note.type or "Note"]
    if note.author:
        parts.append(note.author)
    return " · ".join(parts)


class NoteViewer(QWidget):
    """Shows one note; highlights source spans given as code-point offsets into its text."""

    deid_did_toggle = Signal(bool)

    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.note: Note | None = None
        self.patient: Patient | None = None
        self.notes_by_id: dict[str, Note] = {}
        self._map: PositionMap | None = None
        self._span: tuple[int, int] | None = None
        self._sources: list[SourceSpan] = []
        self._source_index = 0
        self._deid_job: Job | None = None

        self.title = QLabel("No note selected")
        self.title.setObjectName("PaneTitle")
        self.title.setAccessibleName("Note title")
        self.title.setWordWrap(True)  # a long title wraps instead of widening the window
        self.deid_button = QPushButton("De-identified view")
        self.deid_button.setCheckable(True)
        self.deid_button.setToolTip("Show the note with personal identifiers replaced by tags (Ctrl+D)")
        self.deid_button.setAccessibleName("De-identified view")
        self.deid_button.toggled.connect(self.set_deidentified)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.deid_button)

        self.source_bar = QWidget()
        self.source_bar.setObjectName("SourceBar")
        self.source_label = QLabel()
        self.source_label.setAccessibleName("Source position")
        self.source_list = QComboBox()
        self.source_list.setAccessibleName("Sources of the selected sentence")
        self.source_list.setToolTip("All source passages of the selected sentence (F8 / Shift+F8 to step)")
        self.source_list.activated.connect(self._pick_source)
        # As wide as the bar allows, not as its longest entry: a long note type made the
        # window wider than a 1024 px screen. The tooltip and the note title show it whole.
        self.source_list.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source_list.setMinimumContentsLength(8)
        self.prev_button = QPushButton("◀ Previous")
        self.prev_button.setAccessibleName("Previous source")
        self.next_button = QPushButton("Next ▶")
        self.next_button.setAccessibleName("Next source")
        self.prev_button.clicked.connect(lambda: self.step_source(-1))
        self.next_button.clicked.connect(lambda: self.step_source(1))
        bar = QHBoxLayout(self.source_bar)
        bar.setContentsMargins(6, 2, 6, 2)
        bar.addWidget(self.source_label)
        bar.addWidget(self.source_list, 1)
        bar.addWidget(self.prev_button)
        bar.addWidget(self.next_button)
        self.source_bar.hide()

        self.deid_banner = QLabel(
            "De-identified view: identifiers are replaced by tags such as [NAME] and [DATE]."
        )
        self.deid_banner.setObjectName("DeidBanner")
        self.deid_banner.setWordWrap(True)
        self.deid_banner.hide()

        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setAccessibleName("Note text")
        self.text.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        font = QFont(self.text.font())
        font.setPointSizeF(max(font.pointSizeF(), 10.5))
        self.text.setFont(font)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.source_bar)
        layout.addWidget(self.deid_banner)
        layout.addWidget(self.text, 1)

    def set_text_points(self, points: float) -> None:
        """The note text's size (the window's zoom); a style sheet, as the theme sets it."""
        self.text.setStyleSheet(f"QPlainTextEdit {{ font-size: {points:.1f}pt; }}")

    # -- content -------------------------------------------------------------------------

    def set_patient(self, patient: Patient | None, notes: list[Note]) -> None:
        self.patient = patient
        self.notes_by_id = {n.id: n for n in notes}
        self.clear()

    def clear(self) -> None:
        """Forget the note and any highlight (used on lock and patient change)."""
        if self._deid_job is not None:
            self._deid_job.cancel()
            self._deid_job = None
        self.note = None
        self._map = None
        self._span = None
        self._sources = []
        self.text.setExtraSelections([])
        self.text.clear()
        self.title.setText("No note selected")
        self.source_bar.hide()
        self.deid_banner.hide()
        self.deid_button.blockSignals(True)
        self.deid_button.setChecked(False)
        self.deid_button.blockSignals(False)

    def forget_patient(self) -> None:
        self.patient = None
        self.notes_by_id = {}
        self.clear()

    def show_note(self, note: Note) -> None:
        """Show a note without a highlight."""
        self._sources = []
        self.source_bar.hide()
        self._load(note)

    def _load(self, note: Note) -> None:
        if self.deid_button.isChecked():
            self.deid_button.setChecked(False)  # offsets index the original text
        if self.note is None or self.note.id != note.id or self._map is None:
            self.note = note
            self._map = PositionMap(note.text)
            self.text.setPlainText(note.text)
            self.title.setText(note_title(note))
        self._span = None
        self.text.setExtraSelections([])

    def show_sources(self, sources: list[SourceSpan], index: int = 0) -> bool:
        """Show a sentence's sources: highlight the first and offer stepping through them."""
        usable = [s for s in sources if s.note_id in self.notes_by_id]
        self._sources = usable
        if not usable:
            self.source_bar.hide()
            return False
        self._source_index = max(0, min(index, len(usable) - 1))
        self.source_list.blockSignals(True)
        self.source_list.clear()
        for i, span in enumerate(usable):
            note = self.notes_by_id[span.note_id]
            self.source_list.addItem(f"{(note.date or 'undated')[:10]} {note.type or 'note'}")
            self.source_list.setItemData(
                i, f"{note_title(note)}, characters {span.start}–{span.end}", Qt.ItemDataRole.ToolTipRole
            )
        self.source_list.blockSignals(False)
        self._show_current_source()
        return True

    def _pick_source(self, index: int) -> None:
        if 0 <= index < len(self._sources):
            self._source_index = index
            self._show_current_source()

    def step_source(self, delta: int) -> None:
        if not self._sources:
            return
        self._source_index = (self._source_index + delta) % len(self._sources)
        self._show_current_source()

    def _show_current_source(self) -> None:
        span = self._sources[self._source_index]
        self.highlight(self.notes_by_id[span.note_id], span.start, span.end)
        n = len(self._sources)
        note = self.notes_by_id[span.note_id]
        self.source_label.setText(f"Source {self._source_index + 1} of {n}:")
        self.source_label.setToolTip(note_title(note))
        self.source_list.setCurrentIndex(self._source_index)
        self.prev_button.setEnabled(n > 1)
        self.next_button.setEnabled(n > 1)
        self.source_bar.show()

    def highlight(self, note: Note, start: int, end: int) -> None:
        """Show ``note``, highlight ``note.text[start:end]`` and scroll it into view."""
        self._load(note)
        assert self._map is not None
        start = max(0, min(start, len(note.text)))
        end = max(start, min(end, len(note.text)))
        a, b = self._map.to_doc(start), self._map.to_doc(end)
        cursor = QTextCursor(self.text.document())
        cursor.setPosition(a)
        cursor.setPosition(b, QTextCursor.MoveMode.KeepAnchor)
        sel = QTextEdit.ExtraSelection()
        fmt = QTextCharFormat()
        fmt.setBackground(HIGHLIGHT)
        fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
        fmt.setUnderlineColor(HIGHLIGHT_EDGE)
        fmt.setProperty(QTextFormat.Property.FullWidthSelection, False)
        sel.format = fmt
        sel.cursor = cursor
        self.text.setExtraSelections([sel])
        self._span = (start, end)
        # Scroll: put the span's end, then its start, in view so the whole span shows.
        view = QTextCursor(self.text.document())
        view.setPosition(b)
        self.text.setTextCursor(view)
        self.text.ensureCursorVisible()
        view.setPosition(a)
        self.text.setTextCursor(view)
        self.text.centerCursor()

    # -- what is highlighted (tests and accessibility read this) ----------------------------

    def highlighted_span(self) -> SourceSpan | None:
        """The highlighted range, read back from the document, as code-point offsets."""
        sels = self.text.extraSelections()
        if not sels or self.note is None or self._map is None:
            return None
        cur = sels[0].cursor
        return SourceSpan(
            self.note.id, self._map.to_offset(cur.selectionStart()), self._map.to_offset(cur.selectionEnd())
        )

    def highlighted_text(self) -> str:
        sels = self.text.extraSelections()
        return sels[0].cursor.selectedText().replace("\u2029", "\n") if sels else ""

    def is_span_visible(self) -> bool:
        sels = self.text.extraSelections()
        if not sels:
            return False
        rect = self.text.cursorRect(sels[0].cursor)
        return self.text.viewport().rect().intersects(rect)

    # -- de-identified view --------------------------------------------------------------

    def set_deidentified(self, on: bool) -> None:
        if self.deid_button.isChecked() != on:
            self.deid_button.setChecked(on)  # re-enters through toggled
            return
        if self._deid_job is not None:
            self._deid_job.cancel()
            self._deid_job = None
        if self.note is None:
            self.deid_banner.hide()
            return
        if not on:
            self.deid_banner.hide()
            self.text.setPlainText(self.note.text)
            self._span = None
            self.text.setExtraSelections([])
            self.deid_did_toggle.emit(False)
            return
        self.deid_banner.setText("De-identifying this note…")
        self.deid_banner.show()
        self._deid_job = job = self.services.deidentify(self.note.text, self.patient)
        note_id = self.note.id
        job.job_did_succeed.connect(lambda r, nid=note_id: self._show_deidentified(nid, r))
        job.job_did_fail.connect(self._deid_failed)

    def _show_deidentified(self, note_id: str, result: dict) -> None:
        if self.note is None or self.note.id != note_id or not self.deid_button.isChecked():
            return
        self.text.setExtraSelections([])
        self._span = None
        self.text.setPlainText(result["text"])
        n = len(result.get("entities", []))
        self.deid_banner.setText(
            f"De-identified view: {n} identifier{'s' if n != 1 else ''} replaced by tags such as "
            "[NAME] and [DATE]. Source highlights are shown on the original text."
        )
        self.deid_did_toggle.emit(True)

    def _deid_failed(self, message: str) -> None:
        self.deid_banner.setText(f"The de-identified view is not available: {message}")
        self.deid_button.blockSignals(True)
        self.deid_button.setChecked(False)
        self.deid_button.blockSignals(False)
