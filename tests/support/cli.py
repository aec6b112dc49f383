"""Run the real `noteward` command in a subprocess, the way a user or a second process does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app"


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment (isolated data dirs from conftest) with ``app`` importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(APP) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("NOTEWARD_PASSPHRASE", None)
    env.update(extra or {})
    return env


def noteward(
    *args: str,
    passphrase: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m noteward.cli ARGS`` with NOTEWARD_PASSPHRASE set; stdin is not a tty."""
    extra = dict(env or {})
    if passphrase is not None:
        extra["NOTEWARD_PASSPHRASE"] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "noteward.cli", *args],
        cwd=REPO,
        env=child_env(extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def python(code: str, *, env: Mapping[str, str] | None = None, timeout: float = 120,
           **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet in a fresh interpreter with ``app`` importable."""
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", code],
        cwd=REPO,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
