"""The audit chain's head is kept inside the vault and, MAC'd, outside it: rewriting the
chain's tail together with the in-vault head (which the in-vault check alone cannot see)
is caught by `noteward audit verify` and `check`. Restore and passwd keep the copy valid."""

from __future__ import annotations

import json
from pathlib import Path

from noteward.store import audit
from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE
from tests.support.cli import noteward


def _chained(path: Path) -> None:
    """Six more records after init, appended the way every command appends them."""
    v = Vault.open(path, PASSPHRASE)
    try:
        for action in ("import", "erase", "backup", "unlock", "unlock"):
            with v.transaction() as conn:
                audit.append(conn, action, [], {"n": 1})
    finally:
        v.close()


def _rewrite_tail_and_head(path: Path, keep: int, passphrase: str = PASSPHRASE) -> None:
    """What a key holder with a plain SQLCipher connection could do: drop the last records
    and point the in-vault head at the new last one, so the chain inside is consistent."""
    v = Vault.open(path, passphrase, audit_unlock=False)
    conn = v.conn
    try:
        conn.execute("BEGIN")  # not Vault.transaction(): nothing of Noteward's runs here
        conn.execute("DELETE FROM audit WHERE seq > ?", (keep,))
        seq, h = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        conn.execute("UPDATE meta SET value = ? WHERE key = 'audit_head'", (f"{seq}:{h}",))
        conn.execute("COMMIT")
        assert audit.verify(conn) == [], "the rewrite is consistent inside the vault"
    finally:
        v.close()


def test_rewritten_tail_and_head_is_caught(sample_copy: Path) -> None:
    _chained(sample_copy)
    r = noteward("audit", "verify", "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stdout + r.stderr
    _rewrite_tail_and_head(sample_copy, keep=4)
    r = noteward("audit", "verify", "--json", "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 1, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert any("outside the vault" in p for p in out["problems"]), out["problems"]
    r = noteward("check", "--json", "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 1 and json.loads(r.stdout)["audit"] == "failed"


def test_head_copy_is_kept_valid_by_restore_and_passwd(sample_copy: Path, tmp_path: Path) -> None:
    backup = tmp_path / "backup.nwv"
    v = Vault.open(sample_copy, PASSPHRASE)
    v.backup(backup)
    v.close()
    _chained(sample_copy)  # the live chain is now longer than the backup's
    r = noteward("restore", str(backup), "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    r = noteward("audit", "verify", "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stdout + r.stderr
    new = "another passphrase for the head copy 3"
    r = noteward("passwd", "--vault", str(sample_copy), passphrase=PASSPHRASE,
                 env={"NOTEWARD_NEW_PASSPHRASE": new})
    assert r.returncode == 0, r.stderr
    r = noteward("audit", "verify", "--vault", str(sample_copy), passphrase=new)
    assert r.returncode == 0, r.stdout + r.stderr
    # and it still guards the chain after both
    _rewrite_tail_and_head(sample_copy, keep=2, passphrase=new)
    r = noteward("audit", "verify", "--vault", str(sample_copy), passphrase=new)
    assert r.returncode == 1 and "outside the vault" in r.stdout, r.stdout + r.stderr


def test_a_forged_head_copy_is_reported(sample_copy: Path) -> None:
    _chained(sample_copy)
    v = Vault.open(sample_copy, PASSPHRASE, audit_unlock=False)
    try:
        copy = audit.head_copy_path(v.conn, sample_copy)
    finally:
        v.close()
    assert copy is not None and copy.is_file()
    assert not copy.is_relative_to(sample_copy.parent), "kept outside the vault's folder"
    data = json.loads(copy.read_text())
    data["seq"] = int(data["seq"]) - 1  # an older head, but not signed
    copy.write_text(json.dumps(data))
    r = noteward("audit", "verify", "--json", "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 1, r.stdout
    assert any("outside the vault" in p for p in json.loads(r.stdout)["problems"])
