"""Reading and adding audit-trail events for callers outside the store.

The chain itself (hashing, verification) is :mod:`noteward.store.audit`; this module
gives other packages what they need without a connection: record an event in its own
transaction, and see which events happened since a point (the search index uses that
to decide between appending new vectors and rebuilding).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from noteward.store import audit
from noteward.store.vault import Vault


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
