"""Tamper-evident audit trail: a hash chain of events inside the encrypted vault.

Each record stores the hash of the previous one, and the vault's meta table keeps the
head (last sequence number and hash), so an edited, removed, inserted or reordered
record — the last one included — breaks verification. Records hold Noteward's opaque ids
and counts only, never PHI, and the name of the user who had the vault open (taken from
the connection, :class:`noteward.store.vault.Vault` sets it at unlock). The user is part of
the record's digest; records written before accounts have none and keep their old digest.

Someone with the passphrase could still drop the last records and move the in-vault head
back to match. So a copy of the head is also kept outside the vault, in the user data
folder, MAC'd with a key drawn at random and kept inside the encrypted vault (only a
passphrase holder can make a valid copy). It is rewritten after every commit that moves the
head, and on restore; `verify` reports a chain that no longer holds the record the copy
names. A copy that fails its check is never overwritten, so the evidence stays. A missing
copy (a vault moved to another machine or account) is not a problem: the next change
writes one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from noteward.settings import user_data_dir
from noteward.store.files import private_dir, write_private_text

GENESIS = "0" * 64
_MAC_SECRET = "audit_mac_secret"


def _digest(
    seq: int, ts: str, action: str, object_ids: str, counts: str, prev_hash: str, user: str | None = None
) -> str:
    fields: list[Any] = [seq, ts, action, object_ids, counts, prev_hash]
    if user is not None:  # records from before accounts (user NULL) keep their digest
        fields.append(user)
    payload = json.dumps(fields, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append(
    conn: Any, action: str, object_ids: list[str], counts: dict[str, Any], *, anonymous: bool = False
) -> int:
    """Append one event; the caller holds the write transaction. The user is the one the
    connection was unlocked by (callers never pass it); ``anonymous`` records none, for
    events whose actor is unknown (failed unlocks, counted before anyone is signed in)."""
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
    user = "" if anonymous else (getattr(conn, "noteward_user", None) or "")
    h = _digest(seq, ts, action, ids, cnt, prev, user)
    conn.execute(
        "INSERT INTO audit(seq, ts, action, object_ids, counts, prev_hash, hash, user)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (seq, ts, action, ids, cnt, prev, h, user),
    )
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('audit_head', ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (f"{seq}:{h}",),
    )
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
        (_MAC_SECRET, os.urandom(32).hex()),
    )
    return seq


def verify(conn: Any) -> list[str]:
    """Return a list of problems (empty when the chain is intact)."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    rows = conn.execute(
        f"SELECT seq, ts, action, object_ids, counts, prev_hash, hash, {_user_column(conn)}"
        " FROM audit ORDER BY rowid"
    ).fetchall()
    last_seq, last_hash = 0, GENESIS
    for seq, ts, action, ids, cnt, prev_hash, h, user in rows:
        if seq != expected_seq:
            problems.append(f"audit record {seq}: expected record {expected_seq} here (removed or reordered)")
        if prev_hash != prev:
            problems.append(f"audit record {seq}: does not follow the previous record (removed or reordered)")
        if _digest(seq, ts, action, ids, cnt, prev_hash, user) != h:
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


def _user_column(conn: Any) -> str:
    """``user``, or NULL on a vault whose schema predates accounts (read-only, unmigrated)."""
    cols = [r[1] for r in conn.execute("PRAGMA table_info(audit)").fetchall()]
    return "user" if "user" in cols else "NULL"


def events(
    conn: Any,
    limit: int | None = 1000,
    *,
    user: str | None = None,
    object_id: str | None = None,
    since: str | None = None,
    oldest_first: bool = False,
) -> list[dict[str, Any]]:
    """Audit records, newest first (``oldest_first`` for a report), filtered by the user
    who made them, an object id they name (a patient's id), and a start time (an ISO date
    or time, compared in UTC). ``user`` is None on records from before accounts."""
    where: list[str] = []
    args: list[Any] = []
    if user is not None:
        where.append("user = ?")
        args.append(user)
    if object_id is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(audit.object_ids) WHERE value = ?)")
        args.append(object_id)
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    sql = f"SELECT seq, ts, action, object_ids, counts, {_user_column(conn)} FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq " + ("ASC" if oldest_first else "DESC")
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    rows = conn.execute(sql, args).fetchall()
    return [
        {"seq": s, "ts": t, "action": a, "user": u, "object_ids": json.loads(i), "counts": json.loads(c)}
        for s, t, a, i, c, u in rows
    ]


# -- the head copy outside the vault -------------------------------------------------------


def head(conn: Any) -> str | None:
    """The in-vault head, ``"seq:hash"`` (None before the first record)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    return str(row[0]) if row else None


def _secret(conn: Any) -> bytes | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_MAC_SECRET,)).fetchone()
    return bytes.fromhex(row[0]) if row else None


def head_copy_path(conn: Any, vault_path: str | Path) -> Path | None:
    """Where this vault's head copy lives: the user data folder, named by a hash of the
    vault's secret and its path (a backup or a copy elsewhere has its own, or none)."""
    secret = _secret(conn)
    if secret is None:
        return None
    name = hashlib.sha256(
        b"noteward audit head copy\x00" + secret + os.path.realpath(vault_path).encode()
    ).hexdigest()[:32]
    return user_data_dir() / "audit-heads" / f"{name}.json"


def _mac(secret: bytes, seq: int, h: str) -> str:
    return hmac.new(secret, f"audit head copy:{seq}:{h}".encode(), hashlib.sha256).hexdigest()


def head_copy_problems(conn: Any, vault_path: str | Path) -> list[str]:
    """Problems found by checking the chain against the head copy outside the vault."""
    path = head_copy_path(conn, vault_path)
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        seq, h, mac = int(data["seq"]), str(data["hash"]), str(data["mac"])
    except (FileNotFoundError, PermissionError):
        return []  # none yet, or another user's (a read-only vault opened by someone else)
    except (OSError, ValueError, KeyError, TypeError):
        return [f"the audit head copy kept outside the vault ({path}) is unreadable: edited or damaged"]
    secret = _secret(conn)
    if secret is None or not hmac.compare_digest(_mac(secret, seq, h), mac):
        return [f"the audit head copy kept outside the vault ({path}) fails its MAC: it was edited"]
    row = conn.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        return [
            f"audit record {seq}, recorded by the head copy kept outside the vault, is missing: "
            "the trail's last records were removed"
        ]
    if row[0] != h:
        return [f"audit record {seq} differs from the head copy kept outside the vault: the trail was rewritten"]
    return []


def write_head_copy(conn: Any, vault_path: str | Path, *, force: bool = False) -> bool:
    """Write the current head's MAC'd copy; False when not written. Unless ``force``
    (restore), a copy the chain no longer agrees with is kept as it is: it is the evidence."""
    current, secret, path = head(conn), _secret(conn), head_copy_path(conn, vault_path)
    if current is None or secret is None or path is None:
        return False
    if not force and head_copy_problems(conn, vault_path):
        return False
    seq_text, _, h = current.partition(":")
    seq = int(seq_text)
    private_dir(path.parent)
    write_private_text(path, json.dumps({"seq": seq, "hash": h, "mac": _mac(secret, seq, h)}))
    return True
