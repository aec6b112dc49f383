"""Patient list (search by name or id), patient header and the notes timeline."""

from __future__ import annotations

from datetime import date

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from noteward.core.models import Note, Patient
from noteward.ui.services import MASKED_NAME, year_only

ID_ROLE = Qt.ItemDataRole.UserRole + 1
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 2


def age_years(birth: str | None, until: str | None = None, today: date | None = None) -> int | None:
    """Whole years from an ISO birth date to ``until`` (an ISO date, e.g. death) or today."""
    if not birth:
        return None
    try:
        b = date.fromisoformat(birth[:10])
        end = date.fromisoformat(until[:10]) if until else (today or date.today())
    except ValueError:
        return None
    return end.year - b.year - ((end.month, end.day) < (b.month, b.day))


class PatientList(QWidget):
    """Filterable list of the vault's patients."""

    patient_did_select = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Search patients by name or id")
        self.filter.setAccessibleName("Search patients")
        self.filter.setClearButtonEnabled(True)
        self.model = QStandardItemModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterRole(SEARCH_ROLE)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.view = QListView()
        self.view.setModel(self.proxy)
        self.view.setAccessibleName("Patients")
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setUniformItemSizes(True)
        self.view.setObjectName("PatientListView")
        self.view.setMinimumWidth(150)  # narrow windows (1024 px, 150% scaling); names elide
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.count = QLabel()
        self.count.setObjectName("Hint")
        title = QLabel("Patients")
        title.setObjectName("PaneTitle")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.filter)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.count)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.filter.textChanged.connect(self._update_count)
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.patients: list[Patient] = []
        self.deidentified = False
        self._update_count()

    def set_deidentified(self, on: bool) -> None:
        """The de-identified view: rows show "Patient N" instead of the name and id."""
        if on != self.deidentified:
            self.deidentified = on
            self.set_patients(self.patients)

    def set_patients(self, patients: list[Patient]) -> None:
        current = self.current_id()
        self.patients = list(patients)
        self.model.clear()
        for i, p in enumerate(patients, 1):
            if self.deidentified:
                item = QStandardItem(f"Patient {i}\n{p.note_count} notes")
                item.setToolTip("De-identified view: names and ids are hidden")
                item.setAccessibleText(f"Patient {i}, {p.note_count} notes")
            else:
                item = QStandardItem(f"{p.name or '(no name)'}\n{p.note_count} notes · {p.id}")
                item.setToolTip(f"Noteward id {p.id}")
                item.setAccessibleText(f"{p.name}, {p.note_count} notes")
            item.setData(p.id, ID_ROLE)
            # the filter matches only what is shown: a hidden name must not narrow the list
            search = f"Patient {i}" if self.deidentified else " ".join(
                x for x in (p.name, p.id, p.source_id or "") if x
            )
            item.setData(search, SEARCH_ROLE)
            self.model.appendRow(item)
        self._update_count()
        if current:
            self.select(current, emit=False)

    def clear(self) -> None:
        self.patients = []
        self.model.clear()
        self.filter.clear()
        self._update_count()

    def current_id(self) -> str | None:
        idx = self.view.currentIndex()
        return idx.data(ID_ROLE) if idx.isValid() else None

    def select(self, patient_id: str, emit: bool = True) -> bool:
        for row in range(self.proxy.rowCount()):
            idx = self.proxy.index(row, 0)
            if idx.data(ID_ROLE) == patient_id:
                if not emit:
                    self.view.selectionModel().blockSignals(True)
                self.view.setCurrentIndex(idx)
                if not emit:
                    self.view.selectionModel().blockSignals(False)
                return True
        return False

    def _current_changed(self, current, _previous) -> None:  # noqa: ANN001 - Qt indexes
        if current.isValid():
            self.patient_did_select.emit(current.data(ID_ROLE))

    def _update_count(self) -> None:
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        self.count.setText(f"{shown} of {total} patients" if shown != total else f"{total} patients")


class PatientHeader(QWidget):
    """Name, age, sex, and deceased with date where recorded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PatientHeader")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.name = QLabel("No patient selected")
        self.name.setObjectName("PatientName")
        self.name.setAccessibleName("Patient name")
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.name.setWordWrap(True)  # a long name wraps instead of widening the window
        self.facts = QLabel()
        self.facts.setObjectName("PatientFacts")
        self.facts.setAccessibleName("Patient details")
        self.facts.setWordWrap(True)
        self.deceased = QLabel()
        self.deceased.setObjectName("Deceased")
        self.deceased.setAccessibleName("Deceased")
        self.deceased.hide()
        row = QHBoxLayout()
        row.addWidget(self.facts, 1)  # the row's width, so the facts wrap only when narrow
        row.addWidget(self.deceased)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.name)
        layout.addLayout(row)
        self.patient: Patient | None = None
        self.deidentified = False
        self.copy_action = QAction("&Copy patient details", self)
        self.copy_action.triggered.connect(self.copy)
        self.addAction(self.copy_action)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

    def set_deidentified(self, on: bool) -> None:
        """The de-identified view: no name, birth year instead of the date, ages over 89 as 90+."""
        self.deidentified = on
        self.set_patient(self.patient)

    def copy(self) -> None:
        """Put the header as shown (masked in the de-identified view) on the clipboard."""
        shown = [w.text() for w in (self.name, self.facts, self.deceased) if w.text() and not w.isHidden()]
        QGuiApplication.clipboard().setText("\n".join(shown))

    def set_patient(self, p: Patient | None) -> None:
        self.patient = p
        if p is not None and self.deidentified:
            self._show_masked(p)
            return
        if p is None:
            self.name.setText("No patient selected")
            self.facts.clear()
            self.deceased.hide()
            self.deceased.clear()
            return
        self.name.setText(p.name or "(no name)")
        age = age_years(p.birth_date, p.deceased_date if p.deceased else None)
        parts = []
        if age is not None:
            parts.append(f"{'Age at death' if p.deceased and p.deceased_date else 'Age'} {age}")
        if p.birth_date:
            parts.append(f"born {p.birth_date[:10]}")
        parts.append({"male": "Male", "female": "Female"}.get((p.sex or "").lower(), p.sex or "Sex not recorded"))
        parts.append(f"{p.note_count} notes")
        self.facts.setText(" · ".join(parts))
        if p.deceased:
            self.deceased.setText(f"Deceased {p.deceased_date[:10]}" if p.deceased_date else "Deceased")
            self.deceased.show()
        else:
            self.deceased.hide()

    def _show_masked(self, p: Patient) -> None:
        self.name.setText(f"Patient {MASKED_NAME}")
        age = age_years(p.birth_date, p.deceased_date if p.deceased else None)
        parts = []
        if age is not None:
            label = "Age at death" if p.deceased and p.deceased_date else "Age"
            parts.append(f"{label} {'90+' if age > 89 else age}")
        if p.birth_date and (age is None or age <= 89):
            parts.append(f"born {year_only(p.birth_date)}")
        parts.append({"male": "Male", "female": "Female"}.get((p.sex or "").lower(), p.sex or "Sex not recorded"))
        parts.append(f"{p.note_count} notes")
        self.facts.setText(" · ".join(parts))
        if p.deceased:
            self.deceased.setText(f"Deceased {year_only(p.deceased_date)}" if p.deceased_date else "Deceased")
            self.deceased.show()
        else:
            self.deceased.hide()


class NotesTimeline(QTreeWidget):
    """The patient's notes, newest first: date, type, author."""

    note_did_select = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(3)
        self.setHeaderLabels(["Date", "Type", "Author"])
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(False)
        self.setAccessibleName("Notes timeline")
        self.notes: dict[str, Note] = {}
        self.deidentified = False
        self.currentItemChanged.connect(self._changed)

    def set_deidentified(self, on: bool) -> None:
        """The de-identified view: years instead of dates, no author names (order kept)."""
        if on == self.deidentified:
            return
        self.deidentified = on
        current = self.currentItem()
        note_id = current.data(0, Qt.ItemDataRole.UserRole) if current is not None else None
        self.set_notes(list(self.notes.values()))
        if note_id:
            self.select_note(note_id)

    def row_texts(self, n: Note) -> list[str]:
        if self.deidentified:
            return [year_only(n.date), n.type or "Note", MASKED_NAME if n.author else ""]
        return [(n.date or "undated")[:10], n.type or "Note", n.author or ""]

    def set_notes(self, notes: list[Note]) -> None:
        self.blockSignals(True)
        self.clear()
        self.notes = {n.id: n for n in notes}
        items = []
        for n in sorted(notes, key=lambda n: (n.date or "", n.id), reverse=True):
            it = QTreeWidgetItem(self.row_texts(n))
            it.setData(0, Qt.ItemDataRole.UserRole, n.id)
            items.append(it)
        self.addTopLevelItems(items)
        for c in range(3):
            self.resizeColumnToContents(c)
        self.blockSignals(False)

    def clear_all(self) -> None:
        self.blockSignals(True)
        self.clear()
        self.notes = {}
        self.blockSignals(False)

    def select_note(self, note_id: str) -> None:
        for i in range(self.topLevelItemCount()):
            it = self.topLevelItem(i)
            if it is not None and it.data(0, Qt.ItemDataRole.UserRole) == note_id:
                self.blockSignals(True)
                self.setCurrentItem(it)
                self.scrollToItem(it)
                self.blockSignals(False)
                return

    def _changed(self, current: QTreeWidgetItem | None, _prev: QTreeWidgetItem | None) -> None:
        if current is not None:
            self.note_did_select.emit(self.notes[current.data(0, Qt.ItemDataRole.UserRole)])
