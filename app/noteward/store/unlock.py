"""Unlocking a vault the way every front end does it: a failed attempt is counted.

The command line (:func:`open_vault`, from its arguments) and the desktop app both call
:func:`unlock`, so a wrong passphrase is recorded the same way wherever it was typed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from noteward import console
from noteward.core.errors import VaultLockedError
from noteward.settings import load_settings
from noteward.store.vault import Vault


def unlock(
    path: str | Path,
    passphrase: str,
    *,
    busy_timeout_ms: int = 5000,
    user: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Vault:
    """Open the vault at ``path`` as ``user`` (None: the default admin); a wrong passphrase
    (or a file that is not a vault) is counted beside it (:meth:`Vault.record_failed_unlock`)
    before the error goes up. After a few failures in a row each attempt first waits
    :meth:`Vault.unlock_delay` (the desktop app calls this on its vault thread)."""
    delay = Vault.unlock_delay(path)
    if delay > 0:
        sleep(delay)
    try:
        return Vault.open(path, passphrase, busy_timeout_ms=busy_timeout_ms, user=user)
    except VaultLockedError:
        Vault.record_failed_unlock(path)
        raise


def open_vault(args: argparse.Namespace) -> Vault:
    """Unlock the vault a command's arguments name (``--vault``, ``--user``,
    ``--passphrase-file``, their environment variables, or a prompt), with the busy timeout
    from the settings."""
    path = console.vault_path(args)
    passphrase = console.read_passphrase(args)
    settings = load_settings()
    return unlock(path, passphrase, busy_timeout_ms=settings.busy_timeout_ms, user=console.user_name(args))
