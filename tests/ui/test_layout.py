"""The client on small and scaled screens, zoom, and the unlock dialog after a wrong passphrase."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import QWidget

from tests.conftest import PASSPHRASE
from tests.support.cli import REPO, child_env


def shown_whole(widget: QWidget, top: QWidget) -> bool:
    """True when ``widget`` is visible and no ancestor up to ``top`` clips any of it."""
    if not widget.isVisible():
        return False
    w: QWidget | None = widget
    while w is not None and w is not top:
        parent = w.parentWidget()
        if parent is None:
            return False
        rect = QRect(w.mapTo(parent, QPoint(0, 0)), w.size())
        if not parent.rect().contains(rect):
            return False
        w = parent
    return w is top


def test_wrong_passphrase_leaves_the_field_ready_to_retype(qtbot, window, vault_path) -> None:  # noqa: ANN001
    """After a wrong passphrase the field was still disabled when focus came back to it."""
    from noteward.store.vault import Vault

    Vault.create(vault_path, PASSPHRASE).close()
    dialog = window.request_unlock()
    dialog.passphrase.setText("not the passphrase")
    dialog.submit.click()
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=20_000)
    qtbot.waitUntil(lambda: dialog.submit.isEnabled(), timeout=5_000)
    assert "Wrong passphrase" in dialog.error.text()
    assert dialog.passphrase.isEnabled()
    assert dialog.focusWidget() is dialog.passphrase
    assert dialog.passphrase.selectedText() == "not the passphrase"
    # the next keystrokes go to the field and replace what was typed
    qtbot.keyClicks(dialog.focusWidget(), "again")
    assert dialog.passphrase.text() == "again"


SUMMARY = {
    "id": "s1",
    "sentences": [
        {"text": "Hypertension, on lisinopril 10 mg daily.", "section": "Problems",
         "sources": [{"note_id": "n1", "start": 0, "end": 10}], "support": 0.9, "supported": True},
        {"text": "Allergic to penicillin.", "section": "Allergies", "sources": [],
         "support": 0.1, "supported": False},
    ],
    "model": {"id": "smollm2-135m-clinical", "sha256": "705e3633c48c"},
    "covers": {"note_ids": ["n1", "n2", "n3"], "date_range": ["2015-03-02", "2023-01-10"]},
    "out_of_date": True,
    "approved_text": "edited",
}


PROBE = """
import json, sys
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QAbstractButton
from noteward.ui.app import build_window, ensure_app
from tests.ui.test_layout import SUMMARY, shown_whole
app = ensure_app()
window, services = build_window(sys.argv[1])
window.show()
pane = window.summary
pane.set_patient("p1")
pane._show_result(dict(SUMMARY), saved=True)
for _ in range(50):
    app.processEvents()
avail = window.screen().availableGeometry()
frame = window.frameGeometry()
hint = window.minimumSizeHint()
on_screen = lambda w: avail.contains(QRect(w.mapToGlobal(QPoint(0, 0)), w.size()))
parts = [b for b in pane.findChildren(QAbstractButton) if b.isVisibleTo(pane)]
parts += [pane.machine_label, pane.out_of_date, pane.approved_label, pane.status]
# notices that scroll with the sentences need only be whole within what scrolls
top = lambda w: pane.body if pane.body.isAncestorOf(w) else window
fixed = [w for w in parts if top(w) is window]
rect = lambda w: QRect(w.mapToGlobal(QPoint(0, 0)), w.size())
overlaps = lambda w: any(v is not w and rect(v).intersects(rect(w)) for v in fixed)
print(json.dumps({
    "dpr": window.devicePixelRatio(),
    "avail": [avail.x(), avail.y(), avail.width(), avail.height()],
    "frame": [frame.x(), frame.y(), frame.width(), frame.height()],
    "hint": [hint.width(), hint.height()],
    "parts": {(getattr(w, "text", lambda: "")() or w.objectName())[:24]: {
        "whole": shown_whole(w, top(w)), "on_screen": top(w) is not window or on_screen(w),
        "overlaps": top(w) is window and overlaps(w),
        "wide_enough": w.width() >= w.minimumSizeHint().width(),
        "tall_enough": w.height() >= (w.heightForWidth(w.width()) if w.hasHeightForWidth() else w.minimumSizeHint().height()),
    } for w in parts},
}))
window.close()
services.shutdown()
"""


@pytest.mark.parametrize(
    ("width", "height", "scale"),
    [(1024, 700, 1.0), (1366, 768, 1.5)],
    ids=["1024x700", "1366x768-at-150%"],
)
def test_window_and_summary_pane_fit_small_and_scaled_screens(
    tmp_path: Path, width: int, height: int, scale: float
) -> None:
    """The window opened at 1360x860 whatever the screen (at 150% it needed 1,434 px), so on
    a 1024x700 screen the summary pane's buttons and banner were off its edge."""
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{
        "name": "screen", "x": 0, "y": 0, "width": width, "height": height,
        "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1,
    }]}))
    env = child_env({"QT_QPA_PLATFORM": f"offscreen:configfile={config}",
                     "QT_SCALE_FACTOR": str(scale)})
    r = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "v.nwv")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-800:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["dpr"] == scale
    ax, ay, aw, ah = got["avail"]
    assert abs(aw - width / scale) <= 1 and abs(ah - height / scale) <= 1, got["avail"]
    hw, hh = got["hint"]
    assert hw * scale <= width and hh * scale <= height - 60, got  # room for a title bar and a panel
    fx, fy, fw, fh = got["frame"]
    assert ax <= fx and ay <= fy and fx + fw <= ax + aw and fy + fh <= ay + ah, got
    assert len(got["parts"]) >= 8  # summarize, cancel, hide unsupported, approve; four labels
    for name, part in got["parts"].items():
        assert part == {"whole": True, "on_screen": True, "overlaps": False, "wide_enough": True,
                        "tall_enough": True}, name


def test_zoom_changes_note_and_summary_text_and_is_remembered(qtbot, window, vault_path) -> None:  # noqa: ANN001
    from PySide6.QtGui import QKeySequence

    from noteward.settings import load_settings
    from noteward.ui.main_window import MainWindow
    from tests.ui.conftest import unlock

    unlock(qtbot, window)
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=5_000)
    pane = window.summary
    pane.set_patient("p1")
    pane._show_result(dict(SUMMARY), saved=True)
    qtbot.waitUntil(lambda: pane.settled)
    qtbot.wait(10)

    def sizes() -> tuple[float, float]:
        sentence = pane.views[0]
        sentence.ensurePolished()
        window.viewer.text.ensurePolished()
        return window.viewer.text.font().pointSizeF(), sentence.font().pointSizeF()

    assert QKeySequence(QKeySequence.StandardKey.ZoomIn) in window.zoom_in_action.shortcuts()
    assert QKeySequence(QKeySequence.StandardKey.ZoomOut) in window.zoom_out_action.shortcuts()
    assert QKeySequence("Ctrl+0") in window.zoom_reset_action.shortcuts()
    note0, summary0 = sizes()
    qtbot.keyClick(window, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    note2, summary2 = sizes()
    assert note2 > note0 and summary2 > summary0
    assert load_settings().text_zoom_percent > 100
    # a new window (the next start) opens at the remembered size
    again = MainWindow(window.services, load_settings(), vault_path)
    qtbot.addWidget(again)
    again.viewer.text.ensurePolished()
    assert again.viewer.text.font().pointSizeF() == note2
    again.close()
    qtbot.keyClick(window, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert note0 < sizes()[0] < note2
    qtbot.keyClick(window, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert sizes() == (note0, summary0)
    assert load_settings().text_zoom_percent == 100


def test_showing_a_sentences_sources_keeps_the_window_within_a_small_screen(qtbot, window) -> None:  # noqa: ANN001
    """Under Xvfb at 1024x700 the window grew to 1,032 px when a sentence's sources were
    shown: the source list was as wide as its longest entry (the note date and type)."""
    from noteward.core.models import Note, Patient, SourceSpan

    patient = Patient("p1", "src-1", "Denis399 Lincoln623 Schmitt836", "2011-03-23", "male")
    notes = [
        Note(f"n{i}", "p1", "Patient is presenting with fracture of ankle. " * 20,
             f"2022-04-0{i}", "History and physical note, emergency department follow-up",
             "Dr. Quentin28 Kertzmann286")
        for i in range(1, 4)
    ]
    window.viewer.set_patient(patient, notes)
    narrow = window.minimumSizeHint().width()
    assert window.viewer.show_sources([SourceSpan(n.id, 0, 45) for n in notes])
    qtbot.waitUntil(lambda: window.viewer.source_bar.isVisible())
    qtbot.wait(20)  # the layout request that updates the window's minimum
    wide = window.minimumSizeHint().width()
    assert wide * 1.5 <= 1366 and wide <= 1024 - 16, (narrow, wide)


DIALOGS = """
import json, sys
from noteward.ui.app import build_window, ensure_app
from noteward.ui.summary_pane import ApproveDialog
app = ensure_app()
window, services = build_window(sys.argv[1])
window.show()
dialogs = {"import": window.open_import(), "approve": ApproveDialog("Problems\\n- x\\n", window)}
dialogs["approve"].show()
for _ in range(30):
    app.processEvents()
avail = window.screen().availableGeometry()
out = {}
for name, d in dialogs.items():
    f = d.frameGeometry()
    out[name] = [f.x(), f.y(), f.width(), f.height()]
    d.close()
print(json.dumps({"avail": [avail.x(), avail.y(), avail.width(), avail.height()], "dialogs": out}))
window.close()
services.shutdown()
"""


def test_dialogs_open_within_a_1366x768_screen_at_150_percent(tmp_path: Path) -> None:
    """Seen under Xvfb: at 150% the import dialog was 1080x780 px on a 768 px high screen."""
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{
        "name": "screen", "x": 0, "y": 0, "width": 1366, "height": 768,
        "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1,
    }]}))
    env = child_env({"QT_QPA_PLATFORM": f"offscreen:configfile={config}", "QT_SCALE_FACTOR": "1.5"})
    r = subprocess.run([sys.executable, "-c", DIALOGS, str(tmp_path / "v.nwv")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-800:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    ax, ay, aw, ah = got["avail"]
    for name, (x, y, w, h) in got["dialogs"].items():
        # the whole frame, with room for a title bar the offscreen screen does not draw
        assert ax <= x and x + w <= ax + aw, (name, got)
        assert ay <= y and h <= ah - 40, (name, got)
