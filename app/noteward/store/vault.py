"""The encrypted vault: one SQLCipher 4 database file holding everything Noteward knows.

Notes, the full-text index, embeddings, summaries and the audit trail all live inside the
one encrypted file; nothing from a vault is written anywhere else unencrypted. The key is
derived from the passphrase by SQLCipher's own KDF (PBKDF2-HMAC-SHA512, 256,000
iterations by default in SQLCipher 4). A lost passphrase cannot be recovered.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlcipher3 import dbapi2 as sqlcipher

from noteward.core.errors import (
    NotewardError,
    UnknownPatientError,
    VaultBusyError,
    VaultCorruptError,
    VaultLockedError,
)
from noteward.core.models import Note, Patient
from noteward.store import audit
from noteward.store.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

APP_ID = "noteward-vault"
KDF_ITER = 256_000
PAGE_SIZE = 4096
# SQLite's default page cache (2 MB) makes every search decrypt the same FTS pages again;
# 64 MB keeps them (decrypted, in this process's memory only, as every page read is).
PAGE_CACHE_KIB = 65_536
WRONG_PASSPHRASE = "wrong passphrase or not a Noteward vault"
LOST_PASSPHRASE_WARNING = (
    "Noteward cannot recover a lost passphrase: without it the vault's contents are gone. "
    "Keep it somewhere safe (and make backups with `noteward backup`)."
)

DatabaseError = sqlcipher.DatabaseError
OperationalError = sqlcipher.OperationalError


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _quote(passphrase: str) -> str:
    return "'" + passphrase.replace("'", "''") + "'"


def _quiet(conn: Any) -> None:
    """SQLCipher logs decryption failures to stderr; a wrong passphrase is reported by us."""
    with contextlib.suppress(Exception):
        conn.execute("PRAGMA cipher_log_level = NONE")


def _is_busy(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


class Vault:
    """An open, unlocked vault. Use :meth:`create` or :meth:`open`; close when done.

    A Vault is owned by one thread (the UI gives it a dedicated owner thread). Two
    processes may open the same file: writers wait ``busy_timeout_ms`` for the lock and
    then fail with :class:`VaultBusyError` (exit 7) rather than corrupting anything.
    """

    def __init__(self, path: Path, conn: Any, passphrase: str, busy_timeout_ms: int) -> None:
        self.path = path
        self._conn = conn
        self._passphrase = passphrase
        self.busy_timeout_ms = busy_timeout_ms

    # -- opening -----------------------------------------------------------------------

    @staticmethod
    def _connect(path: Path, passphrase: str, busy_timeout_ms: int) -> Any:
        conn = sqlcipher.connect(
            str(path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        _quiet(conn)
        conn.execute(f"PRAGMA key = {_quote(passphrase)}")
        conn.execute(f"PRAGMA kdf_iter = {KDF_ITER}")
        conn.execute(f"PRAGMA cipher_page_size = {PAGE_SIZE}")
        return conn

    @staticmethod
    def _configure(conn: Any, busy_timeout_ms: int) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA temp_store = MEMORY")  # no temp files, encrypted or not
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")

    @classmethod
    def create(cls, path: str | Path, passphrase: str, busy_timeout_ms: int = 5000) -> Vault:
        """Create a new, empty vault file. Refuses to overwrite an existing file."""
        path = Path(path)
        if not passphrase:
            raise NotewardError("The passphrase must not be empty.")
        if path.exists():
            raise NotewardError(f"{path} already exists; choose another file or open it.")
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = cls._connect(path, passphrase, busy_timeout_ms)
        try:
            cls._configure(conn, busy_timeout_ms)
            vault = cls(path, conn, passphrase, busy_timeout_ms)
            vault._migrate()
            with vault.transaction():
                vault._conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('app', ?), ('created_at', ?),"
                    " ('deid_secret', ?)",
                    (APP_ID, now_iso(), os.urandom(32).hex()),
                )
                audit.append(vault._conn, "init", [], {})
        except BaseException:
            conn.close()
            with contextlib.suppress(OSError):
                for suffix in ("", "-wal", "-shm"):
                    Path(str(path) + suffix).unlink()
            raise
        log.info("vault created")
        return vault

    @classmethod
    def open(
        cls, path: str | Path, passphrase: str, busy_timeout_ms: int = 5000, *, audit_unlock: bool = True
    ) -> Vault:
        """Unlock an existing vault. Never creates or modifies a file it cannot unlock."""
        path = Path(path)
        if not path.is_file():
            raise VaultLockedError(f"No vault at {path}. Create one with `noteward init`.")
        size = path.stat().st_size
        if size == 0 or size % PAGE_SIZE:
            raise VaultCorruptError(
                f"{path} is damaged or truncated ({size} bytes is not a whole number of pages); "
                "it was left untouched. Restore it from a backup with `noteward restore`."
            )
        with path.open("rb") as fh:
            if fh.read(16) == b"SQLite format 3\x00":
                raise VaultLockedError(f"{WRONG_PASSPHRASE}: {path} is an unencrypted SQLite file.")
        # Open read-only first: a wrong key must not leave a -wal or -shm file behind.
        # (A read-only connection with the right key on a WAL vault does create them, so
        # any it created are removed again if the vault turns out to be unusable.)
        side_files = [Path(str(path) + suffix) for suffix in ("-wal", "-shm")]
        existed = {side: side.exists() for side in side_files}
        conn = sqlcipher.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        try:
            _quiet(conn)
            conn.execute(f"PRAGMA key = {_quote(passphrase)}")
            conn.execute(f"PRAGMA kdf_iter = {KDF_ITER}")
            conn.execute(f"PRAGMA cipher_page_size = {PAGE_SIZE}")
            # Check every page's HMAC before anything is written: page 1 failing means the
            # key is wrong (or the file is not a vault); any other page failing means the
            # file is damaged, and opening it read-write would modify a corrupt file.
            bad = [r[0] for r in conn.execute("PRAGMA cipher_integrity_check").fetchall()]
            if any(str(b).endswith(" page 1") for b in bad):
                raise VaultLockedError(WRONG_PASSPHRASE)
            if bad:
                raise VaultCorruptError(
                    f"{path} is damaged: {len(bad)} page(s) fail their integrity check; it was "
                    "left untouched. Restore it from a backup with `noteward restore`."
                )
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
            except OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                row = None  # an SQLCipher database with this key, but not a Noteward vault
        except DatabaseError as exc:
            conn.close()
            _remove_new_side_files(existed)
            if _is_busy(exc):
                raise VaultBusyError("vault is busy: another Noteward process is writing; try again.") from None
            # Page 1 decrypted and authenticated, so the key is right: the file is damaged
            # (truncated, or its pages no longer fit together).
            raise VaultCorruptError(
                f"{path} is damaged ({exc}); it was left untouched. "
                "Restore it from a backup with `noteward restore`."
            ) from None
        except BaseException:
            conn.close()
            _remove_new_side_files(existed)
            raise
        conn.close()
        if not row or row[0] != APP_ID:
            _remove_new_side_files(existed)
            raise VaultLockedError(WRONG_PASSPHRASE)
        conn = cls._connect(path, passphrase, busy_timeout_ms)
        try:
            cls._configure(conn, busy_timeout_ms)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise NotewardError(
                    f"This vault was written by a newer Noteward (schema {version}, this one "
                    f"knows {SCHEMA_VERSION}). Update Noteward to open it."
                )
            vault = cls(path, conn, passphrase, busy_timeout_ms)
            vault._migrate()
            if audit_unlock:
                failed = _count_failed_unlocks(path)
                with vault.transaction():
                    if failed:
                        audit.append(conn, "failed_unlock", [], {"attempts": failed})
                    audit.append(conn, "unlock", [], {})
                if failed:  # only once they are in the trail (the unlock may be busy)
                    _clear_failed_unlocks(path)
        except DatabaseError as exc:
            conn.close()
            if _is_busy(exc):
                raise VaultBusyError("vault is busy: another Noteward process is writing; try again.") from None
            raise VaultCorruptError(f"{path} could not be read ({exc}); it was left untouched.") from None
        except BaseException:
            conn.close()
            raise
        log.info("vault unlocked")
        return vault

    @staticmethod
    def record_failed_unlock(path: str | Path) -> None:
        """A failed unlock cannot be written into a vault we cannot open: it is counted in
        a side file (a number, nothing else) and entered in the audit trail at the next
        successful unlock."""
        log.info("failed unlock attempt")
        path = Path(path)
        marker = _failed_marker(path)
        # Only a file that could be a vault (encrypted, whole pages) gets a counter beside
        # it: a mistyped --vault pointing at some other file is left alone.
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                plain = fh.read(16) == b"SQLite format 3\x00"
        except OSError:
            return
        if not path.is_file() or size == 0 or size % PAGE_SIZE or plain:
            return
        with contextlib.suppress(OSError, ValueError):
            n = int(marker.read_text()) if marker.exists() else 0
            marker.write_text(str(n + 1))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._conn.close()
            self._conn = None
            self._passphrase = ""

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> Any:
        if self._conn is None:
            raise NotewardError("The vault is locked.")
        return self._conn

    # -- schema and transactions ---------------------------------------------------------

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        while version < SCHEMA_VERSION:
            with self.transaction():
                for stmt in MIGRATIONS[version]:
                    self._conn.execute(stmt)
                self._conn.execute(f"PRAGMA user_version = {version + 1}")
            version += 1
            log.info("vault schema migrated to %d", version)

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """BEGIN IMMEDIATE ... COMMIT: the whole block commits or nothing does."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except OperationalError as exc:
            if _is_busy(exc):
                raise VaultBusyError(
                    "vault is busy: another Noteward process has held the vault for more than "
                    f"{self.busy_timeout_ms / 1000:.0f} s; try again when it has finished."
                ) from None
            raise
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except OperationalError as exc:
            conn.execute("ROLLBACK")
            if _is_busy(exc):
                raise VaultBusyError("vault is busy; nothing was changed, try again.") from None
            raise

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    # -- reading -------------------------------------------------------------------------

    def patients(self) -> list[Patient]:
        rows = self.conn.execute(
            "SELECT p.id, p.source_id, p.name, p.birth_date, p.sex, p.deceased, p.deceased_date,"
            " p.details, (SELECT count(*) FROM notes n WHERE n.patient_id = p.id)"
            " FROM patients p ORDER BY p.name COLLATE NOCASE, p.id"
        ).fetchall()
        return [_patient(r) for r in rows]

    def patient(self, ref: str) -> Patient:
        """Look a patient up by Noteward id or source id."""
        row = self.conn.execute(
            "SELECT p.id, p.source_id, p.name, p.birth_date, p.sex, p.deceased, p.deceased_date,"
            " p.details, (SELECT count(*) FROM notes n WHERE n.patient_id = p.id)"
            " FROM patients p WHERE p.id = ? OR p.source_id = ? LIMIT 1",
            (ref, ref),
        ).fetchone()
        if row is None:
            raise UnknownPatientError(
                "Unknown patient: no patient has that id or source id. "
                "List patients with `noteward patients`."
            )
        return _patient(row)

    def notes(self, patient_id: str) -> list[Note]:
        rows = self.conn.execute(
            f"SELECT {_NOTE_COLS} FROM notes WHERE patient_id = ? ORDER BY date, id", (patient_id,)
        ).fetchall()
        return [_note(r) for r in rows]

    def note(self, note_id: str) -> Note:
        row = self.conn.execute(f"SELECT {_NOTE_COLS} FROM notes WHERE id = ?", (note_id,)).fetchone()
        if row is None:
            raise NotewardError("Unknown note id.")
        return _note(row)

    def facts(self, patient_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT kind, code, display, status, date, end_date FROM facts WHERE patient_id = ?"
        )
        args: tuple[Any, ...] = (patient_id,)
        if kind:
            sql += " AND kind = ?"
            args += (kind,)
        rows = self.conn.execute(sql + " ORDER BY date, id", args).fetchall()
        keys = ("kind", "code", "display", "status", "date", "end_date")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("patients", "notes", "chunks", "embeddings", "facts", "summaries", "audit"):
            out[table] = int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        return out

    # -- erasure -------------------------------------------------------------------------

    def erase_patient(self, ref: str) -> dict[str, int]:
        """Remove every trace of a patient: notes, chunks, full-text rows, embeddings,
        facts and summaries; then rewrite the file so freed pages hold no old data."""
        patient = self.patient(ref)
        pid = patient.id
        conn = self.conn
        with self.transaction():
            counts = {
                "notes": conn.execute("SELECT count(*) FROM notes WHERE patient_id=?", (pid,)).fetchone()[0],
                "chunks": conn.execute(
                    "SELECT count(*) FROM chunks WHERE note_id IN (SELECT id FROM notes WHERE patient_id=?)",
                    (pid,),
                ).fetchone()[0],
            }
            conn.execute("DELETE FROM chunks_fts WHERE patient_id = ?", (pid,))
            conn.execute(
                "DELETE FROM embeddings WHERE chunk_id IN (SELECT c.id FROM chunks c JOIN notes n"
                " ON n.id = c.note_id WHERE n.patient_id = ?)",
                (pid,),
            )
            conn.execute("DELETE FROM chunks WHERE note_id IN (SELECT id FROM notes WHERE patient_id=?)", (pid,))
            conn.execute("DELETE FROM summaries WHERE patient_id = ?", (pid,))
            conn.execute("DELETE FROM facts WHERE patient_id = ?", (pid,))
            conn.execute("DELETE FROM notes WHERE patient_id = ?", (pid,))
            conn.execute("DELETE FROM encounters WHERE patient_id = ?", (pid,))
            conn.execute("DELETE FROM patients WHERE id = ?", (pid,))
            # Merge FTS5 segments so no b-tree page still holds the deleted terms.
            conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES('optimize')")
            audit.append(conn, "erase", [pid], counts)
        self.compact()
        log.info("patient erased: %s (%d notes)", pid, counts["notes"])
        return counts

    def compact(self) -> None:
        """Rewrite the database (VACUUM) and empty the WAL so no freed page keeps old data."""
        conn = self.conn
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        # The checkpoint waits (busy timeout) for other processes' read transactions; if
        # one is still reading, old page versions stay in the WAL. Say so, never claim a
        # wipe that did not happen.
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            raise VaultBusyError(
                "vault is busy: the records were removed, but another Noteward process is "
                "still reading the vault, so older (encrypted) copies remain in its write-ahead "
                "log until every Noteward window using this vault is closed."
            )

    # -- passphrase, backup, restore -------------------------------------------------------

    def change_passphrase(self, new_passphrase: str) -> None:
        """Re-encrypt the whole vault under a new passphrase (SQLCipher rekey)."""
        if not new_passphrase:
            raise NotewardError("The new passphrase must not be empty.")
        conn = self.conn
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            # Leaving WAL mode needs the vault to itself; another process that has it
            # open makes this fail with "database is locked" (before any page changes).
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute(f"PRAGMA rekey = {_quote(new_passphrase)}")
        except OperationalError as exc:
            with contextlib.suppress(Exception):
                conn.execute("PRAGMA journal_mode = WAL")
            if _is_busy(exc):
                raise VaultBusyError(
                    "vault is busy: another Noteward process has this vault open. Close it, "
                    "then change the passphrase; nothing was changed."
                ) from None
            raise
        conn.execute("PRAGMA journal_mode = WAL")
        self._passphrase = new_passphrase
        with self.transaction():
            audit.append(conn, "passwd", [], {})
        log.info("vault passphrase changed")

    def backup(self, out: str | Path) -> Path:
        """Write an encrypted copy (same passphrase) to ``out``; refuses to overwrite."""
        out = Path(out)
        if out.exists():
            raise NotewardError(f"{out} already exists; choose a new file name for the backup.")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        conn = self.conn
        with self.transaction():
            audit.append(conn, "backup", [], self.counts())
        conn.execute(f"ATTACH DATABASE ? AS backup KEY {_quote(self._passphrase)}", (str(tmp),))
        try:
            conn.execute(f"PRAGMA backup.kdf_iter = {KDF_ITER}")
            conn.execute(f"PRAGMA backup.cipher_page_size = {PAGE_SIZE}")
            conn.execute("SELECT sqlcipher_export('backup')")
            conn.execute(f"PRAGMA backup.user_version = {self.schema_version}")
        finally:
            conn.execute("DETACH DATABASE backup")
        os.replace(tmp, out)
        log.info("backup written")
        return out

    @staticmethod
    def verify_file(path: str | Path, passphrase: str) -> dict[str, Any]:
        """Open a vault file read-only and check it: integrity, schema, audit chain."""
        v = Vault.open(path, passphrase, audit_unlock=False)
        try:
            return v.check()
        finally:
            v.close()

    @staticmethod
    def restore(backup: str | Path, target: str | Path, passphrase: str) -> Path | None:
        """Check a backup, then put it in place of ``target``. The vault it replaces is
        kept beside it (``*.before-restore-<time>``, still encrypted): nothing is lost."""
        backup, target = Path(backup), Path(target)
        if not backup.is_file():
            raise VaultLockedError(f"No backup at {backup}; nothing was restored.")
        kept: Path | None = None
        # Check a copy, not the backup itself: opening a vault read-write changes its
        # header (journal mode), and the checked bytes are then exactly the ones restored.
        tmp = target.with_name(target.name + ".restoring")
        target.parent.mkdir(parents=True, exist_ok=True)  # a fresh machine has no data folder yet
        shutil.copyfile(backup, tmp)
        try:
            report = Vault.verify_file(tmp, passphrase)
            if not report["ok"]:
                raise VaultCorruptError(
                    f"The backup failed its checks ({report['problems']}); nothing was restored."
                )
        except BaseException:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(str(tmp) + suffix).unlink()
            raise
        if target.exists():
            kept = target.with_name(f"{target.name}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(target, kept)
            for suffix in ("-wal", "-shm"):
                side = Path(str(target) + suffix)
                if side.exists():
                    os.replace(side, Path(str(kept) + suffix))
        os.replace(tmp, target)
        v = Vault.open(target, passphrase, audit_unlock=False)
        try:
            with v.transaction():
                audit.append(v.conn, "restore", [], v.counts())
        finally:
            v.close()
        return kept

    def check(self) -> dict[str, Any]:
        """Integrity check, schema version and audit-chain verification."""
        problems: list[str] = []
        integrity = [r[0] for r in self.conn.execute("PRAGMA integrity_check").fetchall()]
        if integrity != ["ok"]:
            problems.extend(integrity[:10])
        cipher = [r[0] for r in self.conn.execute("PRAGMA cipher_integrity_check").fetchall()]
        problems.extend(cipher[:10])
        audit_problems = audit.verify(self.conn)
        problems.extend(audit_problems)
        return {
            "ok": not problems,
            "schema_version": self.schema_version,
            "expected_schema_version": SCHEMA_VERSION,
            "integrity": "ok" if integrity == ["ok"] and not cipher else "failed",
            "audit": "ok" if not audit_problems else "failed",
            "problems": problems,
            "counts": self.counts(),
        }


def _remove_new_side_files(existed: dict[Path, bool]) -> None:
    """Remove the -wal/-shm files a failed read-only open created (never ones that were
    already there: another process may be using them). A read-only connection writes no
    WAL frames, so a new -wal is empty."""
    for side, was_there in existed.items():
        if was_there:
            continue
        with contextlib.suppress(OSError):
            if side.name.endswith("-wal") and side.stat().st_size:
                continue
            side.unlink()


def _failed_marker(path: Path) -> Path:
    return path.with_name(path.name + ".failed-unlocks")


def _count_failed_unlocks(path: Path) -> int:
    try:
        return int(_failed_marker(path).read_text())
    except (OSError, ValueError):
        return 0


def _clear_failed_unlocks(path: Path) -> None:
    with contextlib.suppress(OSError):
        _failed_marker(path).unlink()


_NOTE_COLS = (
    "id, patient_id, text, date, type, author, source, source_id, encounter_id, content_hash,"
    " near_duplicate_of"
)


def _note(r: Any) -> Note:
    return Note(
        id=r[0], patient_id=r[1], text=r[2], date=r[3], type=r[4], author=r[5], source=r[6],
        source_id=r[7], encounter_id=r[8], content_hash=r[9], near_duplicate_of=r[10],
    )


def _patient(r: Any) -> Patient:
    return Patient(
        id=r[0], source_id=r[1], name=r[2], birth_date=r[3], sex=r[4], deceased=bool(r[5]),
        deceased_date=r[6], details=json.loads(r[7] or "{}"), note_count=int(r[8]),
    )
