"""What every `noteward` subcommand needs from the console: where the vault is, the
passphrase, and JSON output.

This module sits below every package (it imports only core and settings), so the
``commands`` modules of each package use it without importing :mod:`noteward.cli`
back. Opening the vault a command names is :func:`noteward.store.unlock.open_vault`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from noteward.core.errors import UsageError
from noteward.settings import default_vault_path


def vault_path(args: argparse.Namespace) -> Path:
    """--vault, else NOTEWARD_VAULT, else the default vault in the user data folder."""
    if getattr(args, "vault", None):
        return Path(args.vault).expanduser()
    env = os.environ.get("NOTEWARD_VAULT")
    return Path(env).expanduser() if env else default_vault_path()


def user_name(args: argparse.Namespace) -> str | None:
    """--user, else NOTEWARD_USER, else None (the vault's default user: the first admin)."""
    name = getattr(args, "user", None) or os.environ.get("NOTEWARD_USER")
    return name or None


def read_passphrase(args: argparse.Namespace, prompt: str = "Vault passphrase: ") -> str:
    """Passphrase from --passphrase-file, NOTEWARD_PASSPHRASE, or an interactive prompt."""
    pf = getattr(args, "passphrase_file", None)
    if pf:
        try:
            return Path(pf).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"Cannot read the passphrase file: {exc.strerror}.") from None
    env = os.environ.get("NOTEWARD_PASSPHRASE")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise UsageError(
            "No passphrase: give --passphrase-file or set NOTEWARD_PASSPHRASE "
            "(there is no terminal to ask on)."
        )
    return getpass.getpass(prompt)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def add_vault_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vault", help="vault file (default: NOTEWARD_VAULT or the user data folder)")
    p.add_argument("--passphrase-file", help="read the passphrase from this file")
    p.add_argument("--user", help="who is signing in (default: NOTEWARD_USER, else the vault's first admin)")
