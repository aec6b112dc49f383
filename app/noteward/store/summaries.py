"""Stored summaries: the machine-generated text with its provenance, and the clinician's
approved version beside it (the original is never overwritten).

Each summary records the model (id and sha256), the prompt version, the notes and dates
it covers and the sentences with their sources (``body``, JSON). Approving one stores the
approved text, the approver's user name and the time (UTC). A newer summary is a new row:
it never replaces an approved one. Creating and approving are audited (ids and counts
only, never the approver's name or the text); both run in their own write transaction.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from noteward.core.errors import NotewardError, UsageError
from noteward.store import audit
from noteward.store.vault import Vault, now_iso


@dataclass(frozen=True)
class StoredSummary:
    id: str
    patient_id: str | None
    created_at: str
    model_id: str
    model_sha256: str
    prompt_version: str
    covers: dict[str, Any]
    body: dict[str, Any]
    approved_text: str | None = None
    approved_at: str | None = None  # ISO 8601, UTC
    approved_by: str | None = None  # None: approved before approvers were recorded


class ApprovedSummary(NamedTuple):
    """What training needs of an approved summary (no body)."""

    id: str
    patient_id: str | None
    covers: dict[str, Any]
    approved_text: str


def add(
    vault: Vault,
    summary_id: str,
    patient_id: str | None,
    model: dict[str, str],
    prompt_version: str,
    covers: dict[str, Any],
    body: dict[str, Any],
    counts: dict[str, int],
) -> None:
    """Store a new summary (``model``: its "id" and "sha256") and audit it with ``counts``
    (numbers only, such as sentences and supported sentences)."""
    with vault.transaction() as conn:
        conn.execute(
            "INSERT INTO summaries(id, patient_id, created_at, model_id, model_sha256, prompt_version, covers, body)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (
                summary_id,
                patient_id,
                now_iso(),
                model["id"],
                model["sha256"],
                prompt_version,
                json.dumps(covers),
                json.dumps(body, ensure_ascii=False),
            ),
        )
        audit.append(conn, "summary.create", [summary_id] + ([patient_id] if patient_id else []), counts)


def get(vault: Vault, summary_id: str) -> StoredSummary | None:
    """One stored summary, or None when no summary has that id."""
    row = vault.conn.execute(
        "SELECT id, patient_id, created_at, model_id, model_sha256, prompt_version, covers, body,"
        " approved_text, approved_at, approved_by FROM summaries WHERE id = ?",
        (summary_id,),
    ).fetchone()
    if row is None:
        return None
    return StoredSummary(
        row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), json.loads(row[7]), row[8], row[9],
        row[10],
    )


def latest_id(vault: Vault, patient_id: str) -> str | None:
    """The id of a patient's newest summary (None when there is none)."""
    row = vault.conn.execute(
        "SELECT id FROM summaries WHERE patient_id = ? ORDER BY created_at DESC LIMIT 1",
        (patient_id,),
    ).fetchone()
    return str(row[0]) if row else None


def latest_approved_id(vault: Vault, patient_id: str) -> str | None:
    """The id of a patient's most recently approved summary (None when none is approved)."""
    row = vault.conn.execute(
        "SELECT id FROM summaries WHERE patient_id = ? AND approved_text IS NOT NULL"
        " ORDER BY approved_at DESC, created_at DESC LIMIT 1",
        (patient_id,),
    ).fetchone()
    return str(row[0]) if row else None


def approver_name(vault: Vault) -> str:
    """Who is approving (or exporting) now: the signed-in user's name when the vault has
    accounts (``vault.user``), else the operating system's login name.

    The one place the app and the command line ask; user accounts will rewire it."""
    user = getattr(vault, "user", None)
    name = getattr(user, "name", None) if user is not None else None
    return str(name) if name else getpass.getuser()


def approve(
    vault: Vault, summary_id: str, text: str, *, approver: str, unsupported_left_out: int = 0
) -> None:
    """Store the clinician-approved text of a summary, with who approved it and when (UTC).

    ``approver``: the approving user's name (see :func:`approver_name`); required, so an
    approval is never anonymous. ``unsupported_left_out``: how many unedited unsupported
    sentences the caller removed from the text (audited as a count)."""
    if not approver.strip():
        raise UsageError("An approval needs the approver's user name; nothing was approved.")
    with vault.transaction() as conn:
        cur = conn.execute(
            "UPDATE summaries SET approved_text = ?, approved_at = ?, approved_by = ? WHERE id = ?",
            (text, now_iso(), approver.strip(), summary_id),
        )
        if cur.rowcount == 0:
            raise NotewardError("Unknown summary id: nothing was approved.")
        audit.append(
            conn,
            "summary.approve",
            [summary_id],
            {"chars": len(text), "unsupported_left_out": unsupported_left_out},
        )


def approved(vault: Vault) -> list[ApprovedSummary]:
    """Every summary a clinician approved (non-empty text), in the order approved."""
    rows = vault.conn.execute(
        "SELECT id, patient_id, covers, approved_text FROM summaries "
        "WHERE approved_text IS NOT NULL AND approved_text != '' ORDER BY approved_at"
    ).fetchall()
    return [ApprovedSummary(r[0], r[1], json.loads(r[2] or "{}"), str(r[3])) for r in rows]
