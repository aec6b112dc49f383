"""Clinician accounts (issue 14, part 2): a random data key that each user's passphrase
unwraps from the key file beside the vault; roles; removing a user rotates the key; the
recovery key; a vault made the old way (one passphrase) moves to accounts at its first
unlock. Real SQLCipher files and the real key file throughout."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSPHRASE
from tests.store.conftest import add_patient, listing
from tests.support import sqlcipher_pages as sp

BOB = "bob's own passphrase 2468"
CAROL = "carol's passphrase 13579"
NEW = "a brand new admin passphrase"


@pytest.fixture
def team(tmp_path: Path) -> Path:
    """A vault with admin 'admin' (PASSPHRASE), clinicians bob and carol, one patient."""
    from noteward.store.vault import Vault

    path = tmp_path / "team" / "vault.nwv"
    v = Vault.create(path, PASSPHRASE, recovery_key="ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567")
    with v.transaction() as conn:
        add_patient(conn, "pt_alpha", "Alpha Sample", [f"Alpha note {i} " * 20 for i in range(5)])
    v.add_user("bob", "clinician", BOB)
    v.add_user("carol", "clinician", CAROL)
    v.close()
    return path


def _actions(path: Path) -> list[tuple[str | None, str]]:
    from noteward.store import audit
    from noteward.store.vault import Vault

    with Vault.open(path, PASSPHRASE, audit_unlock=False) as v:
        return [(e["user"], e["action"]) for e in reversed(audit.events(v.conn, None))]


def test_each_user_unlocks_with_their_own_passphrase(team: Path) -> None:
    from noteward.core.errors import VaultLockedError
    from noteward.store.keys import key_file_path
    from noteward.store.vault import Vault

    keys = key_file_path(team)
    assert listing(team.parent) == ["vault.nwv", "vault.nwv.keys"]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    with Vault.open(team, BOB, user="bob") as v:
        assert (v.user.name, v.user.role) == ("bob", "clinician")
        assert [(u.name, u.role) for u in v.users()] == [
            ("admin", "admin"),
            ("bob", "clinician"),
            ("carol", "clinician"),
        ]
        data_key = sp.vault_key(team, BOB, user="bob")
    with Vault.open(team, PASSPHRASE) as v:  # no user: the first admin made at init
        assert (v.user.name, v.user.role) == ("admin", "admin")
    assert sp.vault_key(team, PASSPHRASE) == sp.vault_key(team, CAROL, user="carol") == data_key
    assert len(data_key) == 32 and sp.db_pages(team, data_key)  # one random data key, raw
    text = keys.read_bytes()
    assert data_key not in text and data_key.hex().encode() not in text and BOB.encode() not in text
    for who, passphrase in (("bob", CAROL), ("carol", BOB), ("nobody", BOB)):
        with pytest.raises(VaultLockedError):
            Vault.open(team, passphrase, user=who)
    assert ("bob", "unlock") in _actions(team)


def test_audit_records_name_their_user(team: Path) -> None:
    from noteward.store import events
    from noteward.store.vault import Vault

    with Vault.open(team, BOB, user="bob") as v:
        events.patient_opened(v, "pt_alpha", 5)
        events.searched(v, None, 3)
    acts = _actions(team)
    assert acts[:4] == [
        ("admin", "init"),
        ("admin", "user.add"),
        ("admin", "user.add"),
        ("bob", "unlock"),
    ]
    assert ("bob", "patient.open") in acts and ("bob", "search") in acts
    with Vault.open(team, PASSPHRASE, audit_unlock=False) as v:
        assert v.check()["ok"]
        row = v.conn.execute("SELECT counts FROM audit WHERE action = 'search'").fetchone()
        assert json.loads(row[0]) == {"hits": 3, "scoped": 0}  # never the query text


@pytest.mark.parametrize("forged", ["other user", "null"])
def test_the_user_is_part_of_the_chain_digest(team: Path, forged: str) -> None:
    from noteward.store.vault import Vault

    with Vault.open(team, PASSPHRASE) as v:
        with v.transaction() as conn:
            conn.execute(
                "UPDATE audit SET user = ? WHERE seq = (SELECT min(seq) FROM audit WHERE action = 'user.add')",
                ("carol" if forged == "other user" else None,),
            )
        problems = v.verify_audit()
    assert any("contents were edited" in p for p in problems), problems


def test_a_clinician_cannot_do_what_only_an_admin_may(team: Path, tmp_path: Path) -> None:
    from noteward.core.errors import AccessDeniedError
    from noteward.store.vault import Vault

    with Vault.open(team, PASSPHRASE) as v:
        v.backup(tmp_path / "b.nwv")
    with Vault.open(team, BOB, user="bob") as v:
        for attempt in (
            lambda: v.erase_patient("pt_alpha"),
            lambda: v.backup(tmp_path / "b2.nwv"),
            lambda: v.add_user("eve", "admin", "eve's passphrase 0000"),
            lambda: v.remove_user("carol"),
        ):
            with pytest.raises(AccessDeniedError, match="Only an admin"):
                attempt()
        assert v.patient("pt_alpha").note_count == 5
        assert [u.name for u in v.users()] == ["admin", "bob", "carol"]
    with pytest.raises(AccessDeniedError):
        Vault.restore(tmp_path / "b.nwv", team, BOB, user="bob")
    assert not (tmp_path / "b2.nwv").exists()
    assert not [n for n in listing(team.parent) if "before-restore" in n]


def test_an_edited_role_in_the_key_file_does_not_open(team: Path) -> None:
    from noteward.core.errors import VaultLockedError
    from noteward.store.keys import key_file_path
    from noteward.store.vault import Vault

    keys = key_file_path(team)
    data = json.loads(keys.read_text())
    for e in data["entries"]:
        if e["name"] == "bob":
            e["role"] = "admin"
    keys.write_text(json.dumps(data))
    with pytest.raises(VaultLockedError):
        Vault.open(team, BOB, user="bob")


def test_the_vaults_user_list_wins_over_the_key_file(team: Path) -> None:
    """Someone holding the data key writes a key-file entry the vault does not list:
    the vault's own list (covered by the audit trail) decides, and refuses it."""
    from noteward.core.errors import AccessDeniedError
    from noteward.store.keys import KeyFile, key_file_path
    from noteward.store.vault import Vault

    kf = KeyFile.load(key_file_path(team))
    assert kf is not None
    _, data_key = kf.unlock("bob", BOB)
    kf.set_user("mallory", "admin", "mallory's passphrase 1", data_key)
    kf.set_user("carol", "admin", CAROL, data_key)  # a promotion the vault never saw
    kf.save(key_file_path(team))
    for who, passphrase in (("mallory", "mallory's passphrase 1"), ("carol", CAROL)):
        with pytest.raises(AccessDeniedError, match="disagree"):
            Vault.open(team, passphrase, user=who)
    with Vault.open(team, BOB, user="bob") as v:
        assert v.user.role == "clinician"


def test_removing_a_user_rotates_the_data_key(team: Path, tmp_path: Path) -> None:
    from noteward.core.errors import VaultLockedError
    from noteward.store.keys import key_file_path
    from noteward.store.vault import Vault

    old_key = sp.vault_key(team, BOB, user="bob")
    old_keyfile = key_file_path(team).read_bytes()  # bob kept a copy
    with Vault.open(team, PASSPHRASE) as v:
        before = v.backup(tmp_path / "before.nwv")
        v.remove_user("bob")
        assert [u.name for u in v.users()] == ["admin", "carol"]
        with v.transaction() as conn:  # still usable in the same session
            conn.execute("INSERT INTO meta(key, value) VALUES ('after_rotation', 'yes')")
    with pytest.raises(VaultLockedError):
        Vault.open(team, BOB, user="bob")
    with pytest.raises(sp.PageAuthError):  # every page is under a new key
        sp.db_pages(team, old_key)
    new_key = sp.vault_key(team, CAROL, user="carol")
    assert new_key != old_key and sp.all_plaintext(team, new_key)
    # bob's old key file still unwraps the old key, which opens nothing live...
    stale = tmp_path / "stale" / "vault.nwv"
    stale.parent.mkdir()
    stale.write_bytes(team.read_bytes())
    key_file_path(stale).write_bytes(old_keyfile)
    with pytest.raises(VaultLockedError):
        Vault.open(stale, BOB, user="bob", audit_unlock=False)
    # ...but a backup made before the removal stays readable with it, as the README says
    with Vault.open(before, BOB, user="bob", audit_unlock=False, head_copy=False) as v:
        assert v.patient("pt_alpha").note_count == 5
    with Vault.open(team, CAROL, user="carol") as v:
        assert v.meta("after_rotation") == "yes" and v.check()["ok"]
    acts = _actions(team)
    assert ("admin", "user.remove") in acts and ("admin", "key.rotate") in acts
    assert listing(team.parent) == ["vault.nwv", "vault.nwv.keys"]


def test_a_rotation_cut_short_before_the_key_file_rename_is_finished_at_the_next_unlock(
    team: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake is needed here: a crash between the two renames cannot be timed otherwise."""
    import noteward.store.vault as vault_mod
    from noteward.store.keys import key_file_path, next_key_file_path

    real_replace = os.replace

    def crash_before_key_file(src: Any, dst: Any) -> None:
        if str(src).endswith(".keys.next"):
            raise OSError(5, "simulated crash")
        real_replace(src, dst)

    v = vault_mod.Vault.open(team, PASSPHRASE)
    monkeypatch.setattr(vault_mod.os, "replace", crash_before_key_file)
    v.remove_user("bob")
    v.close()
    monkeypatch.setattr(vault_mod.os, "replace", real_replace)
    assert next_key_file_path(team).exists()  # the vault is under the new key, .keys the old
    with vault_mod.Vault.open(team, CAROL, user="carol") as v:
        assert v.check()["ok"]
    assert not next_key_file_path(team).exists()
    assert sp.db_pages(team, sp.vault_key(team, CAROL, user="carol"))
    assert "bob" not in key_file_path(team).read_text()


def test_recovery_key_sets_a_new_admin_passphrase(team: Path) -> None:
    from noteward.core.errors import VaultLockedError
    from noteward.store.vault import Vault

    with pytest.raises(VaultLockedError, match="recovery key"):
        Vault.reset_with_recovery_key(team, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA", "admin", NEW)
    Vault.reset_with_recovery_key(team, "abcd efgh ijkl mnop qrst uvwx yz23 4567", "admin", NEW)
    with pytest.raises(VaultLockedError):
        Vault.open(team, PASSPHRASE)
    with Vault.open(team, NEW) as v:
        assert v.user.is_admin and v.check()["ok"]
    assert ("admin", "recovery.reset") in _actions_with(team, NEW)


def _actions_with(path: Path, passphrase: str) -> list[tuple[str | None, str]]:
    from noteward.store import audit
    from noteward.store.vault import Vault

    with Vault.open(path, passphrase, audit_unlock=False) as v:
        return [(e["user"], e["action"]) for e in reversed(audit.events(v.conn, None))]


def test_passwd_changes_only_this_users_passphrase(team: Path) -> None:
    from noteward.core.errors import VaultLockedError
    from noteward.store.vault import Vault

    with Vault.open(team, BOB, user="bob") as v:
        v.change_passphrase("bob's newer passphrase 1")
    with pytest.raises(VaultLockedError):
        Vault.open(team, BOB, user="bob")
    for who, passphrase in (
        ("bob", "bob's newer passphrase 1"),
        ("carol", CAROL),
        ("admin", PASSPHRASE),
    ):
        with Vault.open(team, passphrase, user=who) as v:
            assert v.user.name == who


def test_new_passphrases_have_a_minimum_length() -> None:
    from noteward.core.errors import UsageError
    from noteward.store.vault import MIN_PASSPHRASE_LENGTH, check_new_passphrase

    assert MIN_PASSPHRASE_LENGTH == 12
    with pytest.raises(UsageError, match="at least 12"):
        check_new_passphrase("short one")
    assert check_new_passphrase("twelve chars") == "twelve chars"


def test_failed_unlocks_make_the_next_attempt_wait_longer(team: Path) -> None:
    from noteward.core.errors import VaultLockedError
    from noteward.store.unlock import unlock
    from noteward.store.vault import Vault

    waits: list[float] = []
    for _ in range(5):
        with pytest.raises(VaultLockedError):
            unlock(team, "not the passphrase", busy_timeout_ms=2000, sleep=waits.append)
    # free attempts first, then a wait that doubles
    assert Vault.unlock_delay(team) == pytest.approx(4.0, abs=0.5)
    assert (
        len(waits) == 2
        and waits[0] == pytest.approx(1.0, abs=0.5)
        and waits[1] == pytest.approx(2.0, abs=0.5)
    )
    with unlock(team, PASSPHRASE, sleep=waits.append) as v:  # counted once, then cleared
        assert v.user.is_admin
    assert Vault.unlock_delay(team) == 0.0
    assert ("", "failed_unlock") in _actions(team)


def test_failed_unlocks_are_not_put_in_the_next_users_name(team: Path) -> None:
    """The side file counts failures, not who made them: the record names no user, so a
    compliance officer does not read the next (successful) user's name as the one who failed."""
    from noteward.core.errors import VaultLockedError
    from noteward.store.unlock import unlock
    from noteward.store.vault import Vault

    with pytest.raises(VaultLockedError):
        unlock(team, "not bob's passphrase", busy_timeout_ms=2000, sleep=lambda _s: None)
    with Vault.open(team, BOB, user="bob"):
        pass
    acts = _actions(team)
    assert ("", "failed_unlock") in acts and ("bob", "unlock") in acts
    assert ("bob", "failed_unlock") not in acts


# -- a vault made the old way (one passphrase through SQLCipher's KDF) --------------------


def _old_digest(seq: int, ts: str, action: str, ids: str, cnt: str, prev: str) -> str:
    payload = json.dumps([seq, ts, action, ids, cnt, prev], separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def make_single_passphrase_vault(path: Path, passphrase: str) -> None:
    """A vault as Noteward wrote it before accounts: SQLCipher keyed by the passphrase
    (PBKDF2, 256,000 iterations), schema version 1, audit records without a user, no key
    file. Written with sqlcipher3 directly, not with today's Vault."""
    from sqlcipher3 import dbapi2 as sqlcipher

    from noteward.store.schema import MIGRATIONS

    conn = sqlcipher.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA key = '" + passphrase.replace("'", "''") + "'")
    conn.execute("PRAGMA kdf_iter = 256000")
    conn.execute("PRAGMA cipher_page_size = 4096")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for stmt in MIGRATIONS[0]:
        conn.execute(stmt)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('app', 'noteward-vault'), ('created_at', '2025-01-01T00:00:00+00:00'),"
        " ('deid_secret', ?)",
        (os.urandom(32).hex(),),
    )
    add_patient(conn, "pt_old", "Old Sample", [f"Old note {i} " * 30 for i in range(6)])
    prev = "0" * 64
    for seq, action in enumerate(["init", "import", "unlock"], start=1):
        ts = f"2025-01-0{seq}T00:00:00.000000+00:00"
        h = _old_digest(seq, ts, action, "[]", "{}", prev)
        conn.execute(
            "INSERT INTO audit(seq, ts, action, object_ids, counts, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
            (seq, ts, action, "[]", "{}", prev, h),
        )
        prev = h
    conn.execute("INSERT INTO meta(key, value) VALUES ('audit_head', ?)", (f"3:{prev}",))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    os.chmod(path, 0o600)


def test_a_single_passphrase_vault_moves_to_accounts_at_its_first_unlock(tmp_path: Path) -> None:
    from noteward.store.keys import key_file_path
    from noteward.store.vault import Vault

    path = tmp_path / "old" / "vault.nwv"
    path.parent.mkdir()
    make_single_passphrase_vault(path, PASSPHRASE)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    assert sp.db_pages(path, PASSPHRASE)  # keyed by the passphrase itself
    with Vault.open(path, PASSPHRASE, audit_unlock=False) as v:  # a backup check: unchanged
        assert v.legacy and v.patient("pt_old").note_count == 6
    assert not key_file_path(path).exists()

    with Vault.open(path, PASSPHRASE) as v:  # the first unlock moves it
        assert not v.legacy and (v.user.name, v.user.role) == ("admin", "admin")
        assert v.patient("pt_old").note_count == 6
        report = v.check()
        assert report["ok"], report["problems"]
        rows = v.conn.execute("SELECT seq, user, action FROM audit ORDER BY seq").fetchall()
    assert rows[:3] == [
        (1, None, "init"),
        (2, None, "import"),
        (3, None, "unlock"),
    ]  # old records verify
    assert (None, "accounts.migrate") not in [(r[1], r[2]) for r in rows]
    assert ("admin", "accounts.migrate") in [(r[1], r[2]) for r in rows]
    kept = [p for p in path.parent.iterdir() if ".before-accounts-" in p.name]
    assert len(kept) == 1 and stat.S_IMODE(kept[0].stat().st_mode) == 0o600
    assert sp.db_pages(kept[0], PASSPHRASE)  # the backup made first: the old vault, old key
    with Vault.open(kept[0], PASSPHRASE, audit_unlock=False, head_copy=False) as old:
        assert old.legacy and old.patient("pt_old").note_count == 6
    data_key = sp.vault_key(path, PASSPHRASE)
    assert isinstance(data_key, bytes) and sp.db_pages(path, data_key)
    with Vault.open(path, PASSPHRASE) as v:  # and from now on it opens as accounts
        assert not v.legacy
        v.add_user("bob", "clinician", BOB)
    with Vault.open(path, BOB, user="bob") as v:
        assert v.patient("pt_old").note_count == 6


def test_users_added_by_two_processes_are_both_kept(team: Path) -> None:
    """Two Noteward processes (two unlocks here) each add a user: the second must not
    write back the key file it read at unlock, which lacks the first one's user."""
    from noteward.store.vault import Vault

    first = Vault.open(team, PASSPHRASE)
    second = Vault.open(team, PASSPHRASE)
    try:
        first.add_user("dave", "clinician", "dave's passphrase 1122")
        second.add_user("erin", "admin", "erin's passphrase 3344")
    finally:
        first.close()
        second.close()
    for who, passphrase in (("dave", "dave's passphrase 1122"), ("erin", "erin's passphrase 3344")):
        with Vault.open(team, passphrase, user=who) as v:
            assert v.user.name == who


def test_a_refused_unlock_leaves_no_record_in_that_users_name(team: Path) -> None:
    from noteward.core.errors import AccessDeniedError
    from noteward.store.keys import KeyFile, key_file_path
    from noteward.store.vault import Vault

    kf = KeyFile.load(key_file_path(team))
    assert kf is not None
    kf.set_user("mallory", "admin", "mallory's passphrase 1", kf.unlock("bob", BOB)[1])
    kf.save(key_file_path(team))
    with pytest.raises(AccessDeniedError):
        Vault.open(team, "mallory's passphrase 1", user="mallory")
    assert "mallory" not in {who for who, _ in _actions(team)}
