"""The facts table: structured clinical facts (FHIR Condition, MedicationRequest, ...).

A patient's facts are read with :meth:`Vault.facts`; these functions serve the importer.
Writers run inside the caller's ``vault.transaction()``.
"""

from __future__ import annotations

from typing import NamedTuple

from noteward.store.vault import Vault


class Fact(NamedTuple):
    patient_id: str
    kind: str
    source_id: str | None
    code: str | None
    display: str
    status: str | None = None
    date: str | None = None
    end_date: str | None = None
    encounter_id: str | None = None


def source_keys(vault: Vault) -> set[tuple[str, str]]:
    """(kind, source id) of every fact that has a source id: re-imports skip these."""
    rows = vault.conn.execute("SELECT kind, source_id FROM facts WHERE source_id IS NOT NULL").fetchall()
    return {(str(k), str(s)) for k, s in rows}


def add(vault: Vault, fact: Fact) -> None:
    """Insert one fact (its patient must exist)."""
    vault.conn.execute(
        "INSERT INTO facts(patient_id, kind, source_id, code, display, status, date, end_date,"
        " encounter_id) VALUES (?,?,?,?,?,?,?,?,?)",
        tuple(fact),
    )
