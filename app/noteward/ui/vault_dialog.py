"""First start (create or open a vault) and the unlock dialog."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from noteward.store.vault import DEFAULT_ADMIN, MIN_PASSPHRASE_LENGTH
from noteward.ui.services import Services, default_user
from noteward.ui.workers import Job

MIN_LENGTH = MIN_PASSPHRASE_LENGTH  # for new passphrases; existing ones unlock whatever their length


def passphrase_strength(passphrase: str) -> tuple[str, str]:
    """A rough strength estimate: (level, hint). Level is weak, fair or good."""
    if not passphrase:
        return "weak", f"Use at least {MIN_LENGTH} characters; four or more random words work well."
    pool = 0
    pool += 26 if any(c.islower() for c in passphrase) else 0
    pool += 26 if any(c.isupper() for c in passphrase) else 0
    pool += 10 if any(c.isdigit() for c in passphrase) else 0
    pool += 33 if any(not c.isalnum() for c in passphrase) else 0
    bits = len(passphrase) * math.log2(max(pool, 2))
    words = len(passphrase.split())
    if len(passphrase) < MIN_LENGTH:
        return "weak", f"Too short: use at least {MIN_LENGTH} characters."
    if bits >= 70 or words >= 4:
        return "good", "Strong. Write it down somewhere safe: a lost passphrase cannot be recovered."
    if bits >= 50:
        return "fair", "Fair. Adding another word or two makes it much stronger."
    return "weak", "Weak: make it longer, e.g. four or more random words."


class VaultDialog(QDialog):
    """Create a new vault (its first admin's name, passphrase twice, strength hint) or
    unlock an existing one as a user (default: whoever signed in last, else the vault's
    first admin)."""

    vault_did_unlock = Signal(str)

    def __init__(self, services: Services, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.path = Path(path)
        self.setWindowTitle("Noteward — unlock")
        self.setAccessibleName("Unlock vault")
        self.setMinimumWidth(520)
        self._job: Job | None = None

        title = QLabel("Noteward")
        title.setObjectName("PatientName")
        self.intro = QLabel()
        self.intro.setWordWrap(True)
        self.path_label = QLabel()
        self.path_label.setObjectName("Hint")
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.user = QLineEdit()
        self.user.setAccessibleName("User")
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Passphrase")
        self.repeat = QLineEdit()
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat.setAccessibleName("Repeat passphrase")
        self.strength = QLabel()
        self.strength.setWordWrap(True)
        self.strength.setAccessibleName("Passphrase strength")
        self.error = QLabel()
        self.error.setObjectName("ErrorText")
        self.error.setWordWrap(True)
        self.error.setAccessibleName("Error message")
        self.error.hide()

        form = QFormLayout()
        self.user_label = QLabel("&User:")
        self.user_label.setBuddy(self.user)
        form.addRow(self.user_label, self.user)
        form.addRow("&Passphrase:", self.passphrase)
        self.repeat_label = QLabel("&Repeat:")
        self.repeat_label.setBuddy(self.repeat)
        form.addRow(self.repeat_label, self.repeat)
        form.addRow("", self.strength)

        self.submit = QPushButton()
        self.submit.setDefault(True)
        self.submit.setProperty("primary", True)
        self.other = QPushButton("Open another vault…")
        self.other.setAccessibleName("Open another vault file")
        self.new = QPushButton("Create a new vault…")
        self.new.setAccessibleName("Create a new vault file")
        buttons = QHBoxLayout()
        buttons.addWidget(self.other)
        buttons.addWidget(self.new)
        buttons.addStretch(1)
        buttons.addWidget(self.submit)

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.intro)
        layout.addWidget(self.path_label)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addLayout(buttons)

        self.passphrase.textChanged.connect(self._update_strength)
        self.repeat.textChanged.connect(self._update_strength)
        self.submit.clicked.connect(self._submit)
        self.other.clicked.connect(self._choose_existing)
        self.new.clicked.connect(self._choose_new)
        self._set_path(self.path)

    # -- modes ---------------------------------------------------------------------------

    @property
    def creating(self) -> bool:
        return not self.path.exists()

    def _set_path(self, path: Path) -> None:
        self.path = Path(path)
        creating = self.creating
        self.path_label.setText(f"Vault file: {self.path}")
        self.user_label.setText("First &admin:" if creating else "&User:")
        self.user.setText(
            DEFAULT_ADMIN if creating else (self.services.last_user or default_user(self.path) or DEFAULT_ADMIN)
        )
        self.repeat.setVisible(creating)
        self.repeat_label.setVisible(creating)
        self.strength.setVisible(creating)
        if creating:
            self.intro.setText(
                "Welcome. Create an encrypted vault for your notes, or open one you already have. "
                "Choose a passphrase: it cannot be recovered if lost."
            )
            self.submit.setText("&Create vault")
            self.submit.setAccessibleName("Create vault")
        else:
            self.intro.setText("This vault is locked. Enter your user name and passphrase to unlock it.")
            self.submit.setText("&Unlock")
            self.submit.setAccessibleName("Unlock vault")
        self.error.hide()
        self._update_strength()
        self.passphrase.setFocus()

    def _choose_existing(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open vault", str(self.path.parent), "Noteward vaults (*.nwv);;All files (*)"
        )
        if path:
            self._set_path(Path(path))

    def _choose_new(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "New vault", str(self.path.parent / "vault.nwv"), "Noteward vaults (*.nwv)"
        )
        if path:
            self._set_path(Path(path))

    def _update_strength(self) -> None:
        if not self.creating:
            return
        level, hint = passphrase_strength(self.passphrase.text())
        self.strength.setObjectName({"weak": "StrengthWeak", "fair": "StrengthFair"}.get(level, "StrengthGood"))
        self.strength.setText(f"Strength: {level}. {hint}")
        self.strength.style().unpolish(self.strength)
        self.strength.style().polish(self.strength)

    # -- submitting ----------------------------------------------------------------------

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()
        layout = self.layout()
        if layout is not None:
            layout.activate()
        self.resize(self.width(), max(self.height(), self.sizeHint().height()))

    def _submit(self) -> None:
        passphrase = self.passphrase.text()
        user = self.user.text().strip()
        creating = self.creating
        if not user:
            self.show_error("Enter your user name.")
            return
        if creating:
            if len(passphrase) < MIN_LENGTH:
                self.show_error(f"The passphrase is too short: use at least {MIN_LENGTH} characters.")
                return
            if passphrase != self.repeat.text():
                self.show_error("The two passphrases differ. Type the same passphrase twice.")
                return
        elif not passphrase:
            self.show_error("Enter the vault's passphrase.")
            return
        self.error.hide()
        self._set_busy(True)
        self._job = self.services.open_vault(str(self.path), passphrase, create=creating, user=user)
        self._job.job_did_succeed.connect(self._did_unlock)
        self._job.job_did_fail.connect(self._did_fail)
        self._job.job_did_end.connect(lambda: self._set_busy(False))

    def _set_busy(self, busy: bool) -> None:
        for w in (self.user, self.passphrase, self.repeat, self.submit, self.other, self.new):
            w.setEnabled(not busy)
        if busy:
            self.submit.setText("Unlocking…" if not self.creating else "Creating…")
            return
        if not self.error.isVisible():
            typed = self.user.text()
            self._set_path(self.path)
            self.user.setText(typed)
        self.submit.setText("&Create vault" if self.creating else "&Unlock")
        # Focus can only go to an enabled field: after a failure it is given back here, with
        # what was typed selected so the next keystrokes replace it (End keeps it to fix a typo).
        self.passphrase.setFocus()
        self.passphrase.selectAll()

    def _did_unlock(self, result: dict) -> None:
        self.passphrase.clear()
        self.repeat.clear()
        self.vault_did_unlock.emit(str(self.path))
        self.accept()

    def _did_fail(self, message: str) -> None:
        if "has no user" in message:
            message = (
                f"This vault has no user {self.user.text().strip()!r}: check the name (an admin can "
                "list the users), then try again."
            )
        elif "wrong passphrase" in message.lower():
            message = (
                "Wrong passphrase: the vault was not unlocked. Check Caps Lock and the keyboard "
                "layout, then try again."
            )
        self.show_error(message)
