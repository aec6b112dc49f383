"""The bundle's entry point: the `noteward` command, as the `noteward` console script runs it.

With NOTEWARD_STARTUP_PROBE=1 it instead opens the desktop client exactly as
``noteward.ui.app.main`` does (services, main window, unlock dialog, background warm-up),
prints how long after process start the unlock dialog was on screen, and exits at once
(no vault is open; the warm-up still running in the background is abandoned): what
``make dist-check`` and ``installer/bench_dist.py`` measure on the installed copy. Nothing is
unlocked or read from a vault.
"""

from __future__ import annotations

import os
import sys


def _seconds_since_process_start() -> float:
    """From the kernel's record of this process's start (so the bootloader's unpacking and
    Python's start are counted), in 1/CLK_TCK steps (10 ms)."""
    with open("/proc/self/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    start_ticks = int(fields[19])  # field 22 of stat(5); fields[0] is field 3
    with open("/proc/uptime", encoding="ascii") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def startup_probe() -> int:
    from PySide6.QtCore import QTimer

    import noteward.ui.app as ui_app
    from noteward.ui.display import gui_problem

    problem = gui_problem()
    if problem:
        print(f"noteward: {problem}", file=sys.stderr)
        return 2
    if ui_app.policy_problem():
        return 2
    app = ui_app.ensure_app()
    window, services = ui_app.build_window(os.environ.get("NOTEWARD_VAULT"))
    window.show()
    dialog = window.request_unlock()
    services.warm_up()

    def report() -> None:
        shown = dialog.isVisible()
        print(
            f"unlock dialog {'visible' if shown else 'NOT visible'} "
            f"{_seconds_since_process_start():.2f} s after process start",
            flush=True,
        )
        app.exit(0 if shown else 1)

    QTimer.singleShot(0, report)  # runs once the event loop has shown the dialog
    code = int(app.exec())
    # No vault was opened; the background warm-up may still be importing torch, which a
    # clean shutdown would wait for (over a minute on two busy cores): leave at once.
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    if os.environ.get("NOTEWARD_STARTUP_PROBE") == "1":
        sys.exit(startup_probe())
    from noteward.cli import main

    sys.exit(main())
