"""The patients table: who the notes are about.

Reading a patient for display goes through :meth:`Vault.patient` / :meth:`Vault.patients`
(with note counts); these functions serve the importer and the benchmarks. Writers run
inside the caller's ``vault.transaction()``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from noteward.core.models import Patient
from noteward.store.vault import Vault


def ids_by_source(vault: Vault) -> dict[str, str]:
    """Source id -> Noteward id of every patient that has a source id."""
    rows = vault.conn.execute("SELECT source_id, id FROM patients WHERE source_id IS NOT NULL").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def add(vault: Vault, patient: Patient, created_at: str) -> None:
    """Insert one patient (its ``note_count`` is derived, not stored)."""
    vault.conn.execute(
        "INSERT INTO patients(id, source_id, name, birth_date, sex, deceased, deceased_date,"
        " details, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (patient.id, patient.source_id, patient.name, patient.birth_date, patient.sex,
         int(patient.deceased), patient.deceased_date, json.dumps(patient.details), created_at),
    )


def add_many(vault: Vault, patients: Iterable[Patient], created_at: str) -> None:
    """Insert many patients at once (one statement, for bulk loads)."""
    vault.conn.executemany(
        "INSERT INTO patients(id, source_id, name, birth_date, sex, deceased, deceased_date,"
        " details, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
        [(p.id, p.source_id, p.name, p.birth_date, p.sex, int(p.deceased), p.deceased_date,
          json.dumps(p.details), created_at) for p in patients],
    )


def all_ids(vault: Vault) -> list[str]:
    """Every patient's Noteward id, in id order."""
    return [str(r[0]) for r in vault.conn.execute("SELECT id FROM patients ORDER BY id").fetchall()]


def count(vault: Vault) -> int:
    """How many patients the vault holds."""
    return int(vault.conn.execute("SELECT count(*) FROM patients").fetchone()[0])
