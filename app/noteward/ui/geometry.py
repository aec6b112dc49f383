"""Window sizes that fit the screen they open on (small laptops, 125-150% scaling)."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

# A window manager's frame and title bar: not known before the window is shown.
FRAME_ALLOWANCE = (16, 48)


def fit_to_screen(widget: QWidget, preferred: tuple[int, int], *, centre: bool = False) -> None:
    """Resize ``widget`` to ``preferred`` or less, so that it and its frame fit the available
    area of its screen (never below its minimum size); ``centre`` also moves it there."""
    avail = widget.screen().availableGeometry()
    hint = widget.minimumSizeHint()
    width = max(min(preferred[0], avail.width() - FRAME_ALLOWANCE[0]), hint.width())
    height = max(min(preferred[1], avail.height() - FRAME_ALLOWANCE[1]), hint.height())
    widget.resize(width, height)
    if centre:
        widget.move(avail.x() + max(0, (avail.width() - width - FRAME_ALLOWANCE[0]) // 2),
                    avail.y() + max(0, (avail.height() - height - FRAME_ALLOWANCE[1]) // 2))
