"""Help > About Noteward: what ``noteward --version`` prints and the licence notices of
everything Noteward bundles (read from resources/licenses/notices.yaml at run time)."""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from noteward.about import Notice, load_notices, notices_path, version_lines


def _notice_html(n: Notice) -> str:
    versions = ", ".join(
        f"{escape(d)} {escape(v)}" if v else f"{escape(d)} (not installed)"
        for d, v in n.versions.items()
    )
    parts = [
        f"<h3>{escape(n.name)}</h3>",
        f"<p><b>Licence:</b> {escape(n.licence)}"
        + (f"<br><b>Installed:</b> {versions}" if versions else "")
        + (f"<br><b>Kind:</b> {escape(n.kind)}" if n.kind else "")
        + (f"<br><a href='{escape(n.url)}'>{escape(n.url)}</a>" if n.url else "")
        + "</p>",
        f"<p>{escape(n.notice)}</p>",
    ]
    return "".join(parts)


class AboutDialog(QDialog):
    """The version information at the top, the notices below in a scrolling, read-only view."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Noteward")
        self.setObjectName("AboutDialog")
        self.resize(640, 560)
        lines = version_lines()
        self.version = QLabel("\n".join(lines[:-1]))
        self.version.setObjectName("AboutVersion")
        self.version.setWordWrap(True)
        self.version.setTextInteractionFlags(self.version.textInteractionFlags()
                                             | self.version.textInteractionFlags().TextSelectableByMouse)
        heading = QLabel(f"Licence notices for the software, models and data Noteward bundles "
                         f"(also in {notices_path()}):")
        heading.setWordWrap(True)
        self.notices = QTextBrowser()
        self.notices.setObjectName("AboutNotices")
        self.notices.setOpenExternalLinks(False)  # an offline clinic machine: links are shown, not opened
        self.notices.setAccessibleName("Licence notices")
        self.notices.setHtml("".join(_notice_html(n) for n in load_notices()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.version)
        layout.addWidget(heading)
        layout.addWidget(self.notices, 1)
        layout.addWidget(buttons)

    def plain_text(self) -> str:
        """Everything the dialog shows, as plain text (for tests and copying)."""
        return self.version.text() + "\n" + self.notices.toPlainText()
