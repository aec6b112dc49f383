"""Reading and adding audit-trail events for callers outside the store.

The chain itself (hashing, verification) is :mod:`noteward.store.audit`; this module
gives other packages what they need without a connection: record an event in its own
transaction, and see which events happened since a point (the search index uses that
to decide between appending new vectors and rebuilding).
"""

from __future__ import annotations

import json
import logging
from typing import Any, NamedTuple

from noteward.store import audit
from noteward.store.vault import Vault

log = logging.getLogger(__name__)


class AuditEvent(NamedTuple):
    seq: int
    action: str
    object_ids: list[str]


def head(vault: Vault) -> str:
    """The audit chain's head ("seq:hash", "" for none): it changes with every event."""
    return vault.meta("audit_head") or ""


def since(vault: Vault, seq: int) -> list[AuditEvent]:
    """Events after sequence number ``seq``, oldest first."""
    rows = vault.conn.execute(
        "SELECT seq, action, object_ids FROM audit WHERE seq > ? ORDER BY seq", (seq,)
    ).fetchall()
    return [AuditEvent(int(s), str(a), list(json.loads(i))) for s, a, i in rows]


def record(vault: Vault, action: str, object_ids: list[str], counts: dict[str, Any]) -> int:
    """Append one event in its own write transaction; returns its sequence number.
    Ids are Noteward's opaque ids and counts only, never PHI."""
    with vault.transaction() as conn:
        return audit.append(conn, action, object_ids, counts)


def _record_view(vault: Vault, action: str, object_ids: list[str], counts: dict[str, Any]) -> None:
    """A view (who looked at what) is recorded where the vault can be written; a vault this
    user can only read shows the records but cannot take a view record (logged, no error)."""
    if vault.read_only:
        log.info("view not audited: the vault is read-only (%s)", action)
        return
    record(vault, action, object_ids, counts)


def patient_opened(vault: Vault, patient_id: str, notes: int) -> None:
    """A patient's record was opened (their notes listed or shown): HIPAA access accounting."""
    _record_view(vault, "patient.open", [patient_id], {"notes": notes})


def searched(vault: Vault, patient_id: str | None, hits: int) -> None:
    """A search was run. The query text is never stored: only the patient it was limited to
    (if any) and how many results it found."""
    _record_view(vault, "search", [patient_id] if patient_id else [], {"hits": hits, "scoped": int(bool(patient_id))})
