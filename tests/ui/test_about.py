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
