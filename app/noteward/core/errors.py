"""Errors a user can act on, each with the command-line exit code it maps to.

Every error Noteward raises for bad input carries a message that says what was wrong and
what to do. None of them may include note text, names or source identifiers.
"""

from __future__ import annotations


class NotewardError(Exception):
    """Base class: a clear message for the user and an exit code for the command line."""

    exit_code = 1


class UsageError(NotewardError):
    exit_code = 2


class VaultLockedError(NotewardError):
    """Wrong passphrase, or the file is not a Noteward vault (exit 3)."""

    exit_code = 3


class VaultCorruptError(VaultLockedError):
    """The file is damaged or truncated; it is left untouched (exit 3)."""


class VaultReadOnlyError(NotewardError):
    """The vault file or its folder cannot be written by this user: reading works, a change
    is refused with this error. Not a failed unlock (exit 1)."""


class InputError(NotewardError):
    """Malformed input under --strict (exit 4)."""

    exit_code = 4


class ModelError(NotewardError):
    """A model is missing or fails its hash check (exit 5)."""

    exit_code = 5


class UnknownPatientError(NotewardError):
    exit_code = 6


class VaultBusyError(NotewardError):
    """Another process holds the vault's write lock for too long (exit 7)."""

    exit_code = 7


class AccessDeniedError(NotewardError):
    """The signed-in user's role does not allow this (only an admin may erase, export,
    restore or manage users), or the vault does not list them (exit 8)."""

    exit_code = 8


class CancelledError(NotewardError):
    exit_code = 130
