"""The imports table: one row per committed import, with its counts (never note text)."""

from __future__ import annotations

import json
from typing import Any

from noteward.store import audit
from noteward.store.vault import Vault


def record(vault: Vault, import_id: str, started_at: str, finished_at: str,
           counts: dict[str, dict[str, int]], errors: int) -> None:
    """Record a finished import and its audit event; the caller holds the import's
    write transaction, so the record commits with the rows or not at all."""
    conn = vault.conn
    conn.execute(
        "INSERT INTO imports(id, started_at, finished_at, report) VALUES (?,?,?,?)",
        (import_id, started_at, finished_at, json.dumps({"counts": counts, "errors": errors})),
    )
    event: dict[str, Any] = {k: v["imported"] for k, v in counts.items()} | {"errors": errors}
    audit.append(conn, "import", [import_id], event)
