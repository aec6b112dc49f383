"""The desktop client's entry point: ``noteward.ui.app.main(vault=None) -> int``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import QApplication

from noteward.settings import PolicyError, default_vault_path, load_settings, validate_policy
from noteward.settings import resources_dir as settings_resources_dir
from noteward.ui.main_window import MainWindow
from noteward.ui.services import Services

log = logging.getLogger(__name__)


def resources_dir() -> Path:
    """resources/ui (see noteward.settings.resources_dir)."""
    return settings_resources_dir() / "ui"


def apply_theme(app: QApplication) -> None:
    """The calm light theme: Fusion style, a readable base font, our stylesheet."""
    app.setStyle("Fusion")
    font = QFont(app.font())
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    qss = resources_dir() / "noteward.qss"
    try:
        app.setStyleSheet(qss.read_text(encoding="utf-8"))
    except OSError:
        log.warning("stylesheet not found; using the plain style")
    icon = resources_dir() / "noteward.svg"
    if icon.exists():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))


def ensure_app() -> QApplication:
    """The QApplication (created once), themed."""
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setApplicationName("Noteward")
        QGuiApplication.setDesktopFileName("noteward")
        app = QApplication(sys.argv[:1])
        apply_theme(app)
    assert isinstance(app, QApplication)
    return app


def build_window(vault: str | None = None) -> tuple[MainWindow, Services]:
    """Build services (in one place) and the main window that receives them."""
    settings = load_settings()
    path = Path(vault).expanduser() if vault else Path(settings.vault or default_vault_path())
    services = Services(settings)
    window = MainWindow(services, settings, path)
    return window, services


def policy_problem() -> str | None:
    """Check the site policy; on a problem say so on stderr (and in a message box when a
    QApplication is already running) and return the message, else None."""
    try:
        validate_policy()
    except PolicyError as exc:
        message = str(exc)
        print(f"noteward: {message}", file=sys.stderr)
        if QApplication.instance() is not None:
            from PySide6.QtWidgets import QMessageBox

            QMessageBox.critical(None, "Noteward: site policy", message)
        return message
    return None


def main(vault: str | None = None) -> int:
    """Open the app on ``vault`` (or the configured one); returns the exit code.

    Core files are turned off first (a crash dump could hold decrypted notes), and without a
    display or the X libraries Qt needs it says so and returns 2 instead of letting Qt abort.
    A broken site policy stops it with exit 2 before any window (see ``policy_problem``).
    """
    import resource

    from noteward.ui.display import gui_problem

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    problem = gui_problem()
    if problem:
        print(f"noteward: {problem}", file=sys.stderr)
        return 2
    problem = policy_problem()
    if problem:
        return 2
    app = ensure_app()
    window, services = build_window(vault)
    window.show()
    window.request_unlock()
    services.warm_up()
    try:
        return int(app.exec())
    finally:
        services.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
