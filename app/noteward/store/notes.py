"""The notes table: the text everything else points into.

A patient's notes are read for display with :meth:`Vault.notes` / :meth:`Vault.note`;
these functions serve the importer (duplicate detection), summaries (what a summary
covers) and the benchmarks. Writers run inside the caller's ``vault.transaction()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from noteward.core.models import Note
from noteward.store.vault import Vault


class Fingerprint(NamedTuple):
    """What duplicate detection needs of a stored note: whose, which text, when."""

    patient_id: str
    content_hash: str
    date: str | None
    id: str


_INSERT = (
    "INSERT INTO notes(id, patient_id, encounter_id, source, source_id, author, date, type,"
    " text, content_hash, near_duplicate_of, import_id, created_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _row(n: Note, import_id: str | None, created_at: str) -> tuple[object, ...]:
    return (n.id, n.patient_id, n.encounter_id, n.source, n.source_id, n.author, n.date, n.type,
            n.text, n.content_hash, n.near_duplicate_of, import_id, created_at)


def fingerprints(vault: Vault) -> list[Fingerprint]:
    """Every stored note's fingerprint, oldest first (date, then id)."""
    rows = vault.conn.execute("SELECT patient_id, content_hash, date, id FROM notes ORDER BY date, id").fetchall()
    return [Fingerprint(*r) for r in rows]


def add(vault: Vault, note: Note, *, import_id: str | None, created_at: str) -> None:
    """Insert one note (its chunks are added with :func:`noteward.store.chunks.add`)."""
    vault.conn.execute(_INSERT, _row(note, import_id, created_at))


def add_many(vault: Vault, notes: Iterable[Note], *, created_at: str, import_id: str | None = None) -> None:
    """Insert many notes at once (one statement, for bulk loads)."""
    vault.conn.executemany(_INSERT, [_row(n, import_id, created_at) for n in notes])


def all_notes(vault: Vault) -> list[Note]:
    """Every note of every patient, in id order."""
    rows = vault.conn.execute(
        "SELECT id, patient_id, text, date, type, author, source, source_id, encounter_id,"
        " content_hash, near_duplicate_of FROM notes ORDER BY id"
    ).fetchall()
    return [Note(*r) for r in rows]


def ids_for_patient(vault: Vault, patient_id: str) -> list[str]:
    """The ids of a patient's notes (no text: cheap)."""
    rows = vault.conn.execute("SELECT id FROM notes WHERE patient_id = ?", (patient_id,)).fetchall()
    return [str(r[0]) for r in rows]
