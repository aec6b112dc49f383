"""Idle detection for auto-lock, and remembering what the app put on the clipboard."""

from __future__ import annotations

import hashlib

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtGui import QClipboard, QGuiApplication

ACTIVITY = {
    QEvent.Type.KeyPress,
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseMove,
    QEvent.Type.Wheel,
    QEvent.Type.TouchBegin,
}


class IdleWatcher(QObject):
    """Emits ``idle_did_expire`` after ``minutes`` without keyboard or mouse input."""

    idle_did_expire = Signal()

    def __init__(self, minutes: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.idle_did_expire)
        self.set_minutes(minutes)
        self._installed = False

    def set_minutes(self, minutes: float) -> None:
        self.timer.setInterval(max(1, int(minutes * 60_000)))
        if self.timer.isActive():
            self.timer.start()

    def start(self) -> None:
        app = QGuiApplication.instance()
        if app is not None and not self._installed:
            app.installEventFilter(self)
            self._installed = True
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        app = QGuiApplication.instance()
        if app is not None and self._installed:
            app.removeEventFilter(self)
            self._installed = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() in ACTIVITY and self.timer.isActive():
            self.timer.start()  # restart the countdown
        return False


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ClipboardGuard(QObject):
    """Knows whether the clipboard holds text this app put there, and clears only that."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ours: str | None = None  # a digest, never the text itself
        self.clipboard: QClipboard = QGuiApplication.clipboard()
        self.clipboard.dataChanged.connect(self._changed)

    def _changed(self) -> None:
        app = QGuiApplication.instance()
        # Text copied while one of our windows has focus came from the app.
        if self.clipboard.ownsClipboard() or (app is not None and QGuiApplication.focusWindow() is not None):
            self._ours = _digest(self.clipboard.text())

    def remember(self, text: str) -> None:
        """Record text the app itself put on the clipboard (e.g. a Copy action)."""
        self._ours = _digest(text)

    def clear_if_ours(self) -> bool:
        """Clear the clipboard if what it holds came from the app; True if cleared."""
        text = self.clipboard.text()
        ours = self.clipboard.ownsClipboard() or (self._ours is not None and _digest(text) == self._ours)
        self._ours = None
        if ours and text:
            self.clipboard.clear()
            return True
        return False
