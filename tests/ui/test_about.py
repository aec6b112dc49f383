"""Help → About Noteward: the --version information and the licence notices."""

from __future__ import annotations


def test_about_dialog_shows_version_and_every_notice(qtbot) -> None:  # noqa: ANN001
    from noteward.about import load_notices, version_lines
    from noteward.ui.about_dialog import AboutDialog

    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    text = dialog.plain_text()
    assert version_lines()[0] in text  # "noteward X.Y.Z"
    for notice in load_notices():
        assert notice.name in text
        assert notice.licence in text
    for name in ("PySide6", "llama.cpp", "SQLCipher", "Gemma", "MTS-Dialog", "ACI-Bench",
                 "MeQSum", "Synthea"):
        assert name in text


def test_help_menu_opens_about(qtbot, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from noteward.ui.app import build_window

    window, services = build_window(str(tmp_path / "v.nwv"))
    qtbot.addWidget(window)
    try:
        menus = [a.text() for a in window.menuBar().actions()]
        assert "&Help" in menus
        assert window.about_action.text() == "&About Noteward"
    finally:
        services.shutdown()


def test_broken_policy_with_qt_already_up_shows_a_message_box(qtbot, monkeypatch) -> None:  # noqa: ANN001
    """When a QApplication already runs, the policy message also goes to a message box (the
    box is recorded instead of shown: a modal box would block the test)."""
    from PySide6.QtWidgets import QMessageBox

    from noteward.settings import policy_file
    from noteward.ui.app import policy_problem

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda _p, _t, text: shown.append(text))
    assert policy_problem() is None and not shown
    policy_file().write_text('{"autolock_minutes": 0}', encoding="utf-8")
    problem = policy_problem()
    assert problem and "autolock_minutes" in problem and str(policy_file()) in problem
    assert shown == [problem]
