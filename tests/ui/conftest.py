"""UI test fixtures: offscreen Qt, no leaked threads or timers, one shared Synthea patient."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("PySide6")

from PySide6.QtCore import QThread, QTimer  # noqa: E402

from tests.conftest import PASSPHRASE, require_shared  # noqa: E402

SMALL_PATIENT = "63ee2253"  # the shared Synthea patient with the fewest notes (15)


@pytest.fixture(scope="session")
def qapp_cls():  # noqa: ANN201 - pytest-qt hook
    from PySide6.QtWidgets import QApplication

    return QApplication


@pytest.fixture(scope="session", autouse=True)
def _theme(qapp):  # noqa: ANN001
    from noteward.ui.app import apply_theme

    apply_theme(qapp)


@pytest.fixture(autouse=True)
def no_leaked_qthreads(monkeypatch: pytest.MonkeyPatch, qtbot) -> Iterator[None]:  # noqa: ANN001
    """Fail a test that leaves a QThread running (napari's _dangling_qthreads)."""
    started: list[QThread] = []
    original = QThread.start

    def start(self: QThread, *args: object) -> None:
        started.append(self)
        original(self, *args)

    monkeypatch.setattr(QThread, "start", start)
    yield
    leaked = [t for t in started if t.isRunning()]
    for t in leaked:  # give a thread a moment to wind down on its own
        t.wait(2000)
    still = [t.objectName() or repr(t) for t in leaked if t.isRunning()]
    if still:
        pytest.fail(f"test leaked running QThreads: {still}")


@pytest.fixture(autouse=True)
def no_leaked_qtimers(monkeypatch: pytest.MonkeyPatch, qtbot) -> Iterator[None]:  # noqa: ANN001
    """Fail a test that leaves a QTimer active (napari's dangling_qtimers)."""
    timers: list[QTimer] = []
    original = QTimer.start

    def start(self: QTimer, *args: object) -> None:
        timers.append(self)
        original(self, *args)

    monkeypatch.setattr(QTimer, "start", start)
    yield
    leaked = []
    for t in timers:
        try:
            if t.isActive():
                leaked.append(t.objectName() or repr(t))
        except RuntimeError:  # already deleted by Qt: not a leak
            pass
    if leaked:
        pytest.fail(f"test leaked active QTimers: {leaked}")


@pytest.fixture(scope="session")
def one_patient_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared Synthea export cut down to patient 63ee2253 (15 notes)."""
    src = require_shared("synthea_fhir")
    out = tmp_path_factory.mktemp("synthea_one")
    for f in sorted(src.glob("*.ndjson")):
        lines = [ln for ln in f.read_text(encoding="utf-8").splitlines() if SMALL_PATIENT in ln]
        if lines:
            (out / f.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture
def services():  # noqa: ANN201
    from noteward.settings import load_settings
    from noteward.ui.services import Services

    svc = Services(load_settings())
    yield svc
    svc.shutdown()


@pytest.fixture
def window(qtbot, services, vault_path: Path):  # noqa: ANN001, ANN201
    """The main window on a fresh vault path (not yet created), with the unlock dialog open."""
    from noteward.ui.main_window import MainWindow

    win = MainWindow(services, services.settings, vault_path)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.idle.stop()
    win.close()


def unlock(qtbot, win, passphrase: str = PASSPHRASE) -> None:  # noqa: ANN001
    """Fill the vault dialog (create or unlock) and wait until the vault is open."""
    dialog = win.request_unlock()
    dialog.passphrase.setText(passphrase)
    if dialog.creating:
        dialog.repeat.setText(passphrase)
    with qtbot.waitSignal(win.patients_did_load, timeout=30_000):
        dialog.submit.click()
