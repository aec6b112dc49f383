"""Can the desktop client start here? Checked before Qt loads (this module never imports Qt).

Without a display, or without the X libraries Qt's xcb platform plugin links, creating the
QApplication aborts the process (and, with core files on, dumps its memory). This check names
what is missing and how to install it instead. ``python -m noteward.ui.display`` runs it for
``make run``: exit 0 when the app can start or there is no display at all (the demo then
runs on the command line), 2 with the message otherwise.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

# The shared libraries Qt 6's xcb platform plugin (libqxcb.so, libQt6XcbQpa.so.6) links
# (from `ldd` on PySide6 6.11), by soname, with the Debian/Ubuntu package that provides each.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
}

# Platforms that need neither a display nor the X libraries.
HEADLESS_PLATFORMS = {"offscreen", "minimal", "vnc"}


@dataclass(frozen=True)
class GuiProblem:
    """Why the desktop client cannot start: ``kind`` is no-display, libraries or connection."""

    kind: str
    message: str


def missing_libraries(table: Mapping[str, str] | None = None) -> list[str]:
    """The packages (from ``table``: soname -> package) whose library cannot be loaded."""
    missing: list[str] = []
    for soname, package in (XCB_LIBRARIES if table is None else table).items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            if package not in missing:
                missing.append(package)
    return missing


def _x_connection_error(display: str) -> str | None:
    """None when an X server answers on ``display``, else why not (libxcb's own check)."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return "libxcb is missing"
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    try:
        code = xcb.xcb_connection_has_error(conn) if conn else -1
    finally:
        if conn:
            xcb.xcb_disconnect(conn)
    return None if code == 0 else f"no X server answers there (xcb error {code})"


NO_DISPLAY = (
    "No display: the desktop client needs a graphical session, and neither DISPLAY nor "
    "WAYLAND_DISPLAY is set. Start it from the desktop, or use the command line instead "
    "(`noteward --help`, `noteward demo --cli`)."
)


def check_gui(
    env: Mapping[str, str] | None = None, libraries: Mapping[str, str] | None = None
) -> GuiProblem | None:
    """What stops Qt's GUI from starting in ``env`` (default: this process's), or None."""
    env = os.environ if env is None else env
    if sys.platform in ("win32", "darwin"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip().lower()
    if platform in HEADLESS_PLATFORMS:
        return None
    display = env.get("DISPLAY", "")
    wayland = env.get("WAYLAND_DISPLAY", "")
    if platform.startswith("wayland") or (not platform and wayland and not display):
        return None if wayland else GuiProblem("no-display", NO_DISPLAY)
    if not display:
        return GuiProblem("no-display", NO_DISPLAY)
    missing = missing_libraries(libraries)
    if missing:
        names = " ".join(missing)
        return GuiProblem(
            "libraries",
            "The desktop client cannot start: Qt's X11 plugin needs libraries that are not "
            f"installed: {', '.join(missing)}. Install them (Debian/Ubuntu) with\n"
            f"    sudo apt-get install -y {names}\n"
            "and start it again, or use the command line (`noteward --help`).",
        )
    error = _x_connection_error(display)
    if error:
        return GuiProblem(
            "connection",
            f"No display: cannot connect to the X display DISPLAY={display!r} ({error}). "
            "Check that the desktop session is running (or the ssh connection forwards X), "
            "or use the command line (`noteward --help`).",
        )
    return None


def gui_problem(
    env: Mapping[str, str] | None = None, libraries: Mapping[str, str] | None = None
) -> str | None:
    """The message for what stops the GUI from starting, or None when it can start."""
    problem = check_gui(env, libraries)
    return problem.message if problem else None


def main() -> int:
    """For `make run`: 2 with the message when the app cannot open on this display."""
    problem = check_gui()
    if problem is None or problem.kind == "no-display":
        return 0  # no display at all: `noteward demo` runs the command-line demo
    print(problem.message, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
