"""The encounters table: visits that notes and facts may belong to (FHIR Encounter).

Writers run inside the caller's ``vault.transaction()``.
"""

from __future__ import annotations

from typing import NamedTuple

from noteward.store.vault import Vault


class Encounter(NamedTuple):
    id: str
    patient_id: str
    source_id: str | None
    date: str | None = None
    end_date: str | None = None
    type: str | None = None


def ids_by_source(vault: Vault) -> dict[str, str]:
    """Source id -> Noteward id of every encounter that has a source id."""
    rows = vault.conn.execute("SELECT source_id, id FROM encounters WHERE source_id IS NOT NULL").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def add(vault: Vault, encounter: Encounter) -> None:
    """Insert one encounter (its patient must exist)."""
    vault.conn.execute(
        "INSERT INTO encounters(id, patient_id, source_id, date, end_date, type) VALUES (?,?,?,?,?,?)",
        tuple(encounter),
    )
