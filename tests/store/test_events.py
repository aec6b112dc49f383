"""store.events: audit events for callers outside the store, on a real vault file."""

from __future__ import annotations

from noteward.store import audit, events
from noteward.store.vault import Vault


def test_record_head_and_since(vault: Vault):
    h0 = events.head(vault)
    assert h0.startswith("1:")  # init
    seq = events.record(vault, "index", [], {"added": 3})
    assert seq == 2 and events.head(vault) != h0 and events.head(vault).startswith("2:")
    events.record(vault, "erase", ["pt_b", "pt_a"], {"notes": 1})
    assert events.since(vault, 1) == [events.AuditEvent(2, "index", []), events.AuditEvent(3, "erase", ["pt_a", "pt_b"])]
    assert events.since(vault, 3) == []
    assert audit.verify(vault.conn) == []
