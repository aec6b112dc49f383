"""Tamper-evident audit trail: a hash chain of events inside the encrypted vault.

Each record stores the hash of the previous one, and the vault's meta table keeps the
head (last sequence number and hash), so an edited, removed, inserted or reordered
record — the last one included — breaks verification. Records hold Noteward's opaque ids
and counts only, never PHI.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def _digest(seq: int, ts: str, action: str, object_ids: str, counts: str, prev_hash: str) -> str:
    payload = json.dumps([seq, ts, action, object_ids, counts, prev_hash], separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append(conn: Any, action: str, object_ids: list[str], counts: dict[str, Any]) -> int:
    """Append one event; the caller holds the write transaction."""
    # Chain onto the head kept in meta, not onto whatever row is last now: if trailing
    # records were deleted, the next event must not silently close the gap.
    # (The sequence number still goes past any row added behind the head's back, so such
    # a row cannot block the append; verify reports it as breaking the chain.)
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
    head = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    if head is not None:
        head_seq, _, head_hash = str(head[0]).partition(":")
        seq, prev = max(seq, int(head_seq) + 1), head_hash
    ts = datetime.now(UTC).isoformat(timespec="microseconds")
    ids = json.dumps(sorted(object_ids))
    cnt = json.dumps(counts, sort_keys=True)
    h = _digest(seq, ts, action, ids, cnt, prev)
    conn.execute(
        "INSERT INTO audit(seq, ts, action, object_ids, counts, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
        (seq, ts, action, ids, cnt, prev, h),
    )
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('audit_head', ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (f"{seq}:{h}",),
    )
    return seq


def verify(conn: Any) -> list[str]:
    """Return a list of problems (empty when the chain is intact)."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    rows = conn.execute(
        "SELECT seq, ts, action, object_ids, counts, prev_hash, hash FROM audit ORDER BY rowid"
    ).fetchall()
    last_seq, last_hash = 0, GENESIS
    for seq, ts, action, ids, cnt, prev_hash, h in rows:
        if seq != expected_seq:
            problems.append(f"audit record {seq}: expected record {expected_seq} here (removed or reordered)")
        if prev_hash != prev:
            problems.append(f"audit record {seq}: does not follow the previous record (removed or reordered)")
        if _digest(seq, ts, action, ids, cnt, prev_hash) != h:
            problems.append(f"audit record {seq}: contents were edited")
        prev, expected_seq = h, seq + 1
        last_seq, last_hash = seq, h
    head = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    if head is None:
        if rows:
            problems.append("audit head is missing")
    elif head[0] != f"{last_seq}:{last_hash}":
        problems.append("audit trail ends early: its last records were removed")
    return problems


def events(conn: Any, limit: int = 1000) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT seq, ts, action, object_ids, counts FROM audit ORDER BY seq DESC LIMIT ?", (limit,)
    ).fetchall()
    return [
        {"seq": s, "ts": t, "action": a, "object_ids": json.loads(i), "counts": json.loads(c)}
        for s, t, a, i, c in rows
    ]
