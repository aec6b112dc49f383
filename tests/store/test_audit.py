"""The audit trail: events for unlock, failed unlock, import, backup and erasure, with no
PHI in them; and a hash chain in which any edited, removed or reordered record is found,
both by the API and by `noteward audit verify`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from noteward.store import audit
from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE
from tests.support.cli import noteward

OPAQUE_ID = re.compile(r"^[a-z]{2}_[0-9a-f]{12}$")

# A patient whose every identifying string is distinctive enough to search for.
NAME = "Quentin Marlowe-Test"
MRN = "MRN-884213"
NOTE_SENTENCES = [
    "Quentin reports intermittent palpitations since the ferry crossing to Ostrava.",
    "Advised a Holter monitor and follow-up with cardiology in two weeks.",
]


def _write_text_notes(folder: Path) -> Path:
    d = folder / "notes"
    d.mkdir()
    for i, sentence in enumerate(NOTE_SENTENCES):
        (d / f"note{i}.txt").write_text(
            f"Patient: {NAME}\nPatient-ID: {MRN}\nDate: 2024-02-0{i + 1}\nType: Progress note\n\n"
            f"{sentence}\n",
            encoding="utf-8",
        )
    return d


def _events(v: Vault) -> list[dict[str, Any]]:
    return list(reversed(audit.events(v.conn)))


def _all_audit_text(v: Vault) -> str:
    rows = v.conn.execute("SELECT * FROM audit").fetchall()
    head = v.conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    return json.dumps([list(r) for r in rows]) + str(head)


def test_events_recorded_without_phi(vault_path: Path, tmp_path: Path) -> None:
    from noteward.ingest.importer import import_paths

    Vault.create(vault_path, PASSPHRASE).close()
    for _ in range(2):
        r = noteward("patients", "--vault", str(vault_path), passphrase="wrong passphrase")
        assert r.returncode == 3
    v = Vault.open(vault_path, PASSPHRASE)
    try:
        actions = [e["action"] for e in _events(v)]
        assert actions == ["init", "failed_unlock", "unlock"]
        assert _events(v)[1]["counts"] == {"attempts": 2}

        report = import_paths(v, [_write_text_notes(tmp_path)])
        assert report.counts["notes"]["imported"] == 2
        imp = _events(v)[-1]
        assert imp["action"] == "import"
        assert imp["object_ids"] == [report.import_id]
        assert imp["counts"]["notes"] == 2 and imp["counts"]["patients"] == 1

        v.backup(tmp_path / "backup.nwv")
        assert _events(v)[-1]["action"] == "backup"

        pid = v.patient(MRN).id
        v.erase_patient(pid)
        erase = _events(v)[-1]
        assert erase["action"] == "erase"
        assert erase["object_ids"] == [pid]
        assert erase["counts"] == {"notes": 2, "chunks": erase["counts"]["chunks"]}

        for e in _events(v):
            for oid in e["object_ids"]:
                assert OPAQUE_ID.match(oid), f"audit object id {oid!r} is not an opaque Noteward id"
            for value in e["counts"].values():
                assert isinstance(value, int), "audit counts are numbers only"
        text = _all_audit_text(v)
        for phi in [NAME, *NAME.split(), MRN, "884213", *NOTE_SENTENCES, "palpitations", "Ostrava"]:
            assert phi not in text, f"PHI {phi!r} found in the audit trail"
        assert audit.verify(v.conn) == []
    finally:
        v.close()
    r = noteward("audit", "verify", "--vault", str(vault_path), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Audit trail intact" in r.stdout


def _swap(conn: Any, a: int, b: int) -> None:
    cols = "ts, action, object_ids, counts, prev_hash, hash"
    ra = conn.execute(f"SELECT {cols} FROM audit WHERE seq = ?", (a,)).fetchone()
    rb = conn.execute(f"SELECT {cols} FROM audit WHERE seq = ?", (b,)).fetchone()
    sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    conn.execute(f"UPDATE audit SET {sets} WHERE seq = ?", (*rb, a))
    conn.execute(f"UPDATE audit SET {sets} WHERE seq = ?", (*ra, b))


def _append_forged(conn: Any) -> None:
    """A record added after the last one with a correct hash, but behind the head's back."""
    seq, prev = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    ts, ids, cnt = "2024-01-01T00:00:00.000000+00:00", "[]", "{}"
    h = audit._digest(seq + 1, ts, "unlock", ids, cnt, prev)
    conn.execute(
        "INSERT INTO audit(seq, ts, action, object_ids, counts, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
        (seq + 1, ts, "unlock", ids, cnt, prev, h),
    )


def _swap_seq(conn: Any, a: int, b: int) -> None:
    conn.execute("UPDATE audit SET seq = -1 WHERE seq = ?", (a,))
    conn.execute("UPDATE audit SET seq = ? WHERE seq = ?", (a, b))
    conn.execute("UPDATE audit SET seq = ? WHERE seq = -1", (b,))


TAMPERING = [
    # (id, change made directly in the encrypted database, words verify must report)
    ("edited-counts", lambda c: c.execute("UPDATE audit SET counts = '{\"notes\": 0}' WHERE seq = 4"),
     r"record 4: contents were edited"),
    ("edited-action", lambda c: c.execute("UPDATE audit SET action = 'unlock' WHERE seq = 5"),
     r"record 5: contents were edited"),
    ("edited-object-ids", lambda c: c.execute("UPDATE audit SET object_ids = '[]' WHERE seq = 4"),
     r"record 4: contents were edited"),
    ("removed-first", lambda c: c.execute("DELETE FROM audit WHERE seq = 1"),
     r"expected record 1 here"),
    ("removed-middle", lambda c: c.execute("DELETE FROM audit WHERE seq = 4"),
     r"expected record 4 here"),
    # After a tail deletion the next unlock's record (appended by the command line)
    # still chains onto the removed one, so the gap shows before it.
    ("removed-last", lambda c: c.execute("DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)"),
     r"last records were removed|expected record 7 here"),
    ("removed-last-two", lambda c: c.execute("DELETE FROM audit WHERE seq >= 6"),
     r"last records were removed|expected record 6 here"),
    ("inserted-before-first", lambda c: c.execute(
        "INSERT INTO audit(seq, ts, action, object_ids, counts, prev_hash, hash)"
        " SELECT 0, ts, action, object_ids, counts, prev_hash, hash FROM audit WHERE seq = 2"),
     r"expected record 1 here"),
    ("forged-at-end", _append_forged, r"record 9: does not follow|last records were removed"),
    ("reordered-contents", lambda c: _swap(c, 3, 4), r"record [34]: .*(edited|removed or reordered)"),
    ("reordered-seq", lambda c: _swap_seq(c, 4, 5), r"record [45]: .*(edited|removed or reordered)"),
]


@pytest.fixture
def chained_vault(vault: Vault) -> Vault:
    """A vault whose trail holds 7 records: init, then six events."""
    for action, ids, counts in [
        ("unlock", [], {}),
        ("import", ["im_0123456789ab"], {"notes": 3, "patients": 1}),
        ("erase", ["pt_0123456789ab"], {"notes": 3, "chunks": 9}),
        ("backup", [], {"notes": 0}),
        ("unlock", [], {}),
        ("unlock", [], {}),
    ]:
        with vault.transaction() as conn:
            audit.append(conn, action, ids, counts)
    assert vault.conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 7
    assert audit.verify(vault.conn) == []
    return vault


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [pytest.param(t, e, id=name) for name, t, e in TAMPERING],
)
def test_verify_reports_tampering(chained_vault: Vault, tamper: Any, expected: str) -> None:
    with chained_vault.transaction() as conn:
        tamper(conn)
    problems = audit.verify(chained_vault.conn)
    assert problems, "tampering went unnoticed"
    assert any(re.search(expected, p) for p in problems), problems
    path = chained_vault.path
    chained_vault.close()
    # The command line unlocks the vault (appending an 'unlock' record) before it
    # verifies: appending must not paper over the damage.
    r = noteward("audit", "verify", "--json", "--vault", str(path), passphrase=PASSPHRASE)
    assert r.returncode == 1, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] is False
    assert any(re.search(expected, p) for p in out["problems"]), out["problems"]


def test_cli_reports_tampering_in_words_and_in_check(chained_vault: Vault) -> None:
    with chained_vault.transaction() as conn:
        conn.execute("DELETE FROM audit WHERE seq = 4")
    path = chained_vault.path
    chained_vault.close()
    r = noteward("audit", "verify", "--vault", str(path), passphrase=PASSPHRASE)
    assert r.returncode == 1 and "FAILED" in r.stdout and "record 4" in r.stdout
    r = noteward("check", "--json", "--vault", str(path), passphrase=PASSPHRASE)
    assert r.returncode == 1 and json.loads(r.stdout)["audit"] == "failed"


def test_intact_chain_survives_reopen(chained_vault: Vault) -> None:
    path = chained_vault.path
    chained_vault.close()
    for _ in range(2):
        Vault.open(path, PASSPHRASE).close()
    r = noteward("audit", "verify", "--json", "--vault", str(path), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out == {"ok": True, "records": 10, "problems": []}
