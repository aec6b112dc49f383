"""The encrypted vault: one SQLCipher 4 database file holding everything Noteward knows.

Notes, the full-text index, embeddings, summaries and the audit trail all live inside the
one encrypted file; nothing from a vault is written anywhere else unencrypted. The key is
derived from the passphrase by SQLCipher's own KDF (PBKDF2-HMAC-SHA512, 256,000
iterations by default in SQLCipher 4). A lost passphrase cannot be recovered.

Operations that put a new file in the vault's place (passwd, restore) never change the
vault in place: they build the new file beside it, check and flush it, and rename it in,
holding the vault exclusively (a flock every open holds shared), so a full disk, a kill
or another process using the vault cannot leave it half-changed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlcipher3 import dbapi2 as sqlcipher

from noteward.core.errors import (
    NotewardError,
    UnknownPatientError,
    UsageError,
    VaultBusyError,
    VaultCorruptError,
    VaultLockedError,
    VaultReadOnlyError,
)
from noteward.core.models import Note, Patient
from noteward.store import audit
from noteward.store.files import (
    create_private_file,
    fsync_path,
    make_private,
    private_dir,
    write_private_text,
)
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

# Where the kernel lists mounted file systems (a module attribute so a test can point it
# at a table of its own: no test machine has an NFS share to offer).
MOUNTS_TABLE = Path("/proc/mounts")
# File systems on which SQLite's POSIX locks (and flock) cannot be trusted between hosts.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "ceph", "glusterfs", "lustre",
     "fuse.sshfs", "fuse.glusterfs", "fuse.davfs2", "davfs", "fuse.rclone"}
)
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _quote(passphrase: str) -> str:
    return "'" + passphrase.replace("'", "''") + "'"


def check_passphrase(passphrase: str, what: str = "passphrase") -> str:
    """Refuse a passphrase SQLCipher cannot take, before any file is created, opened or
    counted as a failed unlock: an empty one (SQLCipher would open the file unencrypted)
    or one holding a NUL byte (the key's SQL text would end there). Usage error, exit 2.
    The console's passphrase reader should call this on what it read."""
    if not passphrase:
        raise UsageError(f"The {what} must not be empty; nothing was changed.")
    if "\x00" in passphrase:
        raise UsageError(
            f"The {what} contains a NUL byte, which a passphrase cannot hold (is the passphrase "
            "file a text file?); nothing was changed."
        )
    return passphrase


def _uri(path: Path, **params: str) -> str:
    """An SQLite ``file:`` URI for ``path``: '#', '?' and '%' in a file or folder name are
    escaped, or SQLite would read them as the URI's fragment, query or an escape."""
    quoted = urllib.parse.quote(os.path.abspath(path), safe="/")
    query = urllib.parse.urlencode(params)
    return f"file:{quoted}?{query}" if query else f"file:{quoted}"


def network_filesystem(folder: str | Path, mounts: str | None = None) -> str | None:
    """The network file system type (``nfs4``, ``cifs``, ...) holding ``folder``, or None
    when it is local or cannot be told. ``mounts`` is a /proc/mounts table (read from
    :data:`MOUNTS_TABLE` when not given); the deepest mount point above the folder wins."""
    if mounts is None:
        try:
            mounts = MOUNTS_TABLE.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = os.path.realpath(folder)
    best, best_type = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # equal: a later mount covers an earlier one
            best, best_type = point, fields[2]
    if best_type is None:
        return None
    return best_type if best_type in NETWORK_FILESYSTEMS or best_type.startswith("nfs") else None


def refuse_network_share(path: Path) -> None:
    """A vault on a network share is refused: SQLite's locks do not hold there, and two
    workstations writing one vault would corrupt it."""
    fstype = network_filesystem(path.parent)
    if fstype:
        raise UsageError(
            f"{path} is on a network share ({fstype}). File locks are not reliable there, so "
            "two computers could write the vault at once and damage it; Noteward does not "
            "open vaults on network shares. Copy it (or restore a backup) to a local disk."
        )


def _storage_failure(exc: BaseException) -> str | None:
    """Words for a write that failed because the disk (or a file-size limit) is full."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return "the disk is full"
    if isinstance(exc, DatabaseError):
        msg = str(exc).lower()
        if "disk is full" in msg:
            return "the disk is full"
        if "disk i/o error" in msg:
            return "a write to the disk failed (is the disk full?)"
    return None


class DiskFullError(NotewardError):
    """A write to the vault failed for lack of space; the transaction was rolled back."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Could not write to the vault: {reason}; nothing was changed.")
        self.reason = reason


def _write_access(path: Path) -> str | None:
    """Why this user cannot change the vault: ``"file"`` or ``"folder"`` (the folder holds
    the -wal and -shm files), or None when it can."""
    if not os.access(path, os.W_OK):
        return "file"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return "folder"
    return None


def _lock(path: Path, busy_timeout_ms: int, *, exclusive: bool, busy_message: str) -> int:
    """flock the vault file itself, waiting up to the busy timeout; returns the descriptor.

    Every Noteward process holds a shared lock while it has a vault open; restore and
    passwd, which put a new file in its place, hold it exclusively. SQLite's own locks
    cannot tell "open elsewhere": a process between transactions holds none. A file
    replaced while we waited is let go and the new one at the same path locked instead."""
    deadline = time.monotonic() + max(busy_timeout_ms, 0) / 1000
    op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise VaultLockedError(f"No vault at {path}. Create one with `noteward init`.") from None
        except PermissionError:
            raise NotewardError(f"{path} cannot be read by this user (permission denied).") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, op)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise VaultBusyError(busy_message) from None
                    time.sleep(0.02)
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _lock_exclusively(fd: int, busy_timeout_ms: int, busy_message: str) -> None:
    """Turn this process's shared lock into an exclusive one, or give up after the busy
    timeout (keeping the shared lock)."""
    deadline = time.monotonic() + max(busy_timeout_ms, 0) / 1000
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                raise VaultBusyError(busy_message) from None
            time.sleep(0.02)


def _remove_files(path: Path) -> None:
    """Remove a scratch database and whatever SQLite left beside it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            Path(str(path) + suffix).unlink()


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
    A vault this user cannot write opens read-only (``read_only`` says why); a change is
    then refused with :class:`VaultReadOnlyError`.
    """

    def __init__(
        self,
        path: Path,
        conn: Any,
        passphrase: str,
        busy_timeout_ms: int,
        *,
        lock_fd: int | None = None,
        read_only: str | None = None,
        head_copy: bool = True,
    ) -> None:
        self.path = path
        self._conn = conn
        self._passphrase = passphrase
        self.busy_timeout_ms = busy_timeout_ms
        self._lock_fd = lock_fd
        self.read_only = read_only  # None, or what cannot be written: "file" / "folder"
        self._check_head_copy = head_copy  # only the user's vault has one, not a backup
        self._head_copy = head_copy and read_only is None  # and only a writer updates it
        self._head_written: str | None = None

    # -- opening -----------------------------------------------------------------------

    @staticmethod
    def _connect(path: Path, passphrase: str, busy_timeout_ms: int, **uri_params: str) -> Any:
        conn = sqlcipher.connect(
            _uri(path, **uri_params), uri=True, timeout=busy_timeout_ms / 1000,
            isolation_level=None, check_same_thread=False,
        )
        try:
            _quiet(conn)
            conn.execute(f"PRAGMA key = {_quote(passphrase)}")
            conn.execute(f"PRAGMA kdf_iter = {KDF_ITER}")
            conn.execute(f"PRAGMA cipher_page_size = {PAGE_SIZE}")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _configure(conn: Any, busy_timeout_ms: int, *, read_only: bool = False) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA temp_store = MEMORY")  # no temp files, encrypted or not
        conn.execute("PRAGMA foreign_keys = ON")
        if not read_only:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")

    @classmethod
    def create(cls, path: str | Path, passphrase: str, busy_timeout_ms: int = 5000) -> Vault:
        """Create a new, empty vault file (0600, in a 0700 folder if it makes one).
        Refuses to overwrite an existing file; a failed create leaves nothing behind."""
        path = Path(path)
        check_passphrase(passphrase)
        refuse_network_share(path)
        if path.exists():
            raise NotewardError(f"{path} already exists; choose another file or open it.")
        private_dir(path.parent)
        try:
            create_private_file(path)
        except FileExistsError:
            raise NotewardError(f"{path} already exists; choose another file or open it.") from None
        conn = None
        lock_fd = None
        try:
            lock_fd = _lock(path, busy_timeout_ms, exclusive=False, busy_message="vault is busy")
            conn = cls._connect(path, passphrase, busy_timeout_ms)
            cls._configure(conn, busy_timeout_ms)
            vault = cls(path, conn, passphrase, busy_timeout_ms, lock_fd=lock_fd)
            vault._migrate()
            with vault.transaction():
                vault._conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('app', ?), ('created_at', ?),"
                    " ('deid_secret', ?)",
                    (APP_ID, now_iso(), os.urandom(32).hex()),
                )
                audit.append(vault._conn, "init", [], {})
        except BaseException:
            if conn is not None:
                conn.close()
            if lock_fd is not None:
                os.close(lock_fd)
            _remove_files(path)
            raise
        log.info("vault created")
        return vault

    @classmethod
    def open(
        cls,
        path: str | Path,
        passphrase: str,
        busy_timeout_ms: int = 5000,
        *,
        audit_unlock: bool = True,
        head_copy: bool = True,
    ) -> Vault:
        """Unlock an existing vault. Never creates or modifies a file it cannot unlock.
        A vault this user may read but not write opens read-only (no unlock record: it
        cannot be written). ``head_copy=False`` for files that are not the user's vault
        (a backup being checked, a copy restore kept): their audit head copy is not kept."""
        path = Path(path)
        check_passphrase(passphrase)
        if not path.is_file():
            raise VaultLockedError(f"No vault at {path}. Create one with `noteward init`.")
        refuse_network_share(path)
        lock_fd = _lock(
            path, busy_timeout_ms, exclusive=False,
            busy_message="vault is busy: another Noteward process is restoring it or changing "
            "its passphrase; try again when it has finished.",
        )
        try:
            return cls._open_locked(path, passphrase, busy_timeout_ms, audit_unlock, lock_fd, head_copy)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _open_locked(
        cls, path: Path, passphrase: str, busy_timeout_ms: int, audit_unlock: bool, lock_fd: int,
        head_copy: bool,
    ) -> Vault:
        size = path.stat().st_size
        if size == 0 or size % PAGE_SIZE:
            raise VaultCorruptError(
                f"{path} is damaged or truncated ({size} bytes is not a whole number of pages); "
                "it was left untouched. Restore it from a backup with `noteward restore`."
            )
        with path.open("rb") as fh:
            if fh.read(16) == b"SQLite format 3\x00":
                raise VaultLockedError(f"{WRONG_PASSPHRASE}: {path} is an unencrypted SQLite file.")
        denied = _write_access(path)
        params = {"mode": "ro"}
        if denied:
            # Nothing may be created beside a vault we cannot write. Without a -wal (the
            # vault was closed cleanly) the file is the whole vault: read it as immutable,
            # which needs no -shm. With one, its -shm must be there to read it.
            wal, shm = Path(str(path) + "-wal"), Path(str(path) + "-shm")
            if wal.exists() and wal.stat().st_size:
                if not shm.exists():
                    raise VaultReadOnlyError(
                        f"{path} holds changes not yet merged into it (in {wal.name}) and its "
                        f"{denied} is read-only, so it cannot be read here. Open it once as a "
                        "user who can write it."
                    )
            else:
                params["immutable"] = "1"
        # Open read-only first: a wrong key must not leave a -wal or -shm file behind.
        # (A read-only connection with the right key on a WAL vault does create them, so
        # any it created are removed again if the vault turns out to be unusable.)
        side_files = [Path(str(path) + suffix) for suffix in ("-wal", "-shm")]
        existed = {side: side.exists() for side in side_files}
        conn = cls._connect(path, passphrase, busy_timeout_ms, **params)
        try:
            # Check every page's HMAC before anything is written: page 1 failing means the
            # key is wrong (or the file is not a vault); any other page failing means the
            # file is damaged, and opening it read-write would modify a corrupt file.
            bad = [r[0] for r in conn.execute("PRAGMA cipher_integrity_check").fetchall()]
            if any(str(b).endswith(" page 1") for b in bad):
                raise VaultLockedError(WRONG_PASSPHRASE)
            wal = Path(str(path) + "-wal")
            if bad and not denied and existed[wal] and wal.stat().st_size:
                # A checkpoint that stopped half-way (a crash, a full disk) leaves torn pages
                # in the file whose good copies are still in the write-ahead log: merge the
                # log in, as SQLite itself would, and check again.
                conn.close()
                cls._merge_wal(path, passphrase, busy_timeout_ms)
                conn = cls._connect(path, passphrase, busy_timeout_ms, **params)
                bad = [r[0] for r in conn.execute("PRAGMA cipher_integrity_check").fetchall()]
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
        if not row or row[0] != APP_ID:
            conn.close()
            _remove_new_side_files(existed)
            raise VaultLockedError(WRONG_PASSPHRASE)
        if denied:
            return cls._read_only(path, conn, passphrase, busy_timeout_ms, lock_fd, denied)
        conn.close()
        conn = cls._connect(path, passphrase, busy_timeout_ms)
        try:
            cls._configure(conn, busy_timeout_ms)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise NotewardError(
                    f"This vault was written by a newer Noteward (schema {version}, this one "
                    f"knows {SCHEMA_VERSION}). Update Noteward to open it."
                )
            vault = cls(path, conn, passphrase, busy_timeout_ms, lock_fd=lock_fd, head_copy=head_copy)
            vault._migrate()
            if audit_unlock:
                failed = _count_failed_unlocks(path)
                with vault.transaction():
                    if failed:
                        audit.append(conn, "failed_unlock", [], {"attempts": failed})
                    audit.append(conn, "unlock", [], {})
                if failed:  # only once they are in the trail (the unlock may be busy)
                    _clear_failed_unlocks(path)
                if vault.meta("compact_pending"):
                    vault._finish_compact()
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

    @classmethod
    def _merge_wal(cls, path: Path, passphrase: str, busy_timeout_ms: int) -> None:
        conn = cls._connect(path, passphrase, busy_timeout_ms)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except DatabaseError as exc:
            log.warning("merging the write-ahead log failed (%s)", type(exc).__name__)
        finally:
            conn.close()

    @classmethod
    def _read_only(
        cls, path: Path, conn: Any, passphrase: str, busy_timeout_ms: int, lock_fd: int, denied: str
    ) -> Vault:
        try:
            cls._configure(conn, busy_timeout_ms, read_only=True)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise NotewardError(
                    f"This vault was written by a newer Noteward (schema {version}, this one "
                    f"knows {SCHEMA_VERSION}). Update Noteward to open it."
                )
            if version < SCHEMA_VERSION:  # the migration cannot be written
                raise VaultReadOnlyError(
                    f"{path} needs an update to this Noteward's format (schema {version} to "
                    f"{SCHEMA_VERSION}) but its {denied} is read-only; open it once as a user "
                    "who can write it."
                )
        except BaseException:
            conn.close()
            raise
        log.info("vault unlocked read-only (its %s cannot be written)", denied)
        return cls(path, conn, passphrase, busy_timeout_ms, lock_fd=lock_fd, read_only=denied)

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise VaultReadOnlyError(
                f"{self.path} is read-only: this user cannot write the vault's {self.read_only}"
                + (" (its folder holds the -wal and -shm files a change needs)" if self.read_only == "folder" else "")
                + ". Nothing was changed; commands that only read (patients, notes, check, "
                "audit verify, search) still work."
            )

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
            write_private_text(marker, str(n + 1))

    def close(self) -> None:
        if self._conn is not None:
            if not self.read_only:
                with contextlib.suppress(Exception):
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._conn.close()
            self._conn = None
            self._passphrase = ""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

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
        self._refuse_if_read_only()
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
        except BaseException as exc:
            with contextlib.suppress(OperationalError):
                conn.execute("ROLLBACK")
            reason = _storage_failure(exc)
            if reason:
                raise DiskFullError(reason) from None
            raise
        try:
            conn.execute("COMMIT")
        except OperationalError as exc:
            with contextlib.suppress(OperationalError):
                conn.execute("ROLLBACK")
            if _is_busy(exc):
                raise VaultBusyError("vault is busy; nothing was changed, try again.") from None
            reason = _storage_failure(exc)
            if reason:
                raise DiskFullError(reason) from None
            raise
        self._sync_head_copy()

    def _sync_head_copy(self, *, force: bool = False) -> None:
        """Keep the MAC'd copy of the audit head outside the vault up to date (after a
        commit, so it never names a record that did not commit)."""
        if not self._head_copy or self._conn is None:
            return
        try:
            head = audit.head(self._conn)
            if head is None or (head == self._head_written and not force):
                return
            audit.write_head_copy(self._conn, self.path, force=force)
            self._head_written = head
        except (OSError, DatabaseError) as exc:
            log.warning("the audit head copy could not be updated (%s)", type(exc).__name__)

    def verify_audit(self) -> list[str]:
        """Problems with the audit trail: the chain inside the vault, and its head against
        the MAC'd copy kept outside it (which catches a rewritten tail and head)."""
        problems = audit.verify(self.conn)
        if self._check_head_copy:
            problems += audit.head_copy_problems(self.conn, self.path)
        return problems

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

    def erase_patient(self, ref: str, *, kept_copies: bool = True) -> dict[str, Any]:
        """Remove every trace of a patient: notes, chunks, full-text rows, embeddings,
        facts and summaries; then rewrite the file so freed pages hold no old data.

        The copies restore kept beside the vault (``*.before-restore-*``) are erased too
        where this passphrase opens them; the result lists them under ``kept_copies_erased``
        and the ones it could not open under ``kept_copies_not_opened`` (paths, never in the
        audit trail)."""
        patient = self.patient(ref)
        pid = patient.id
        try:
            counts = self._erase_rows(pid)
        except DiskFullError as exc:
            raise NotewardError(f"Could not erase patient {pid}: {exc.reason}; nothing was erased.") from None
        log.info("patient erased: %s (%d notes)", pid, counts["notes"])
        erased: list[str] = []
        not_opened: list[str] = []
        if kept_copies:
            erased, not_opened = self._erase_from_kept_copies(pid)
        try:
            self.compact()
        except DatabaseError as exc:
            reason = _storage_failure(exc)
            if not reason:
                raise
            raise NotewardError(
                f"Patient {pid}'s records were erased ({counts['notes']} notes), but the vault "
                f"file could not be rewritten to wipe the space they used: {reason}. Their text "
                "may remain in freed (encrypted) pages until it is: free some disk space, and the "
                "next time the vault is opened Noteward finishes the wipe."
            ) from None
        return {**counts, "kept_copies_erased": erased, "kept_copies_not_opened": not_opened}

    def _erase_rows(self, pid: str) -> dict[str, int]:
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
            # Until the file is rewritten, freed pages still hold the patient's text: if the
            # rewrite fails (a full disk) or is killed, the next unlock finishes it.
            self.set_meta("compact_pending", "1")
        return counts

    def kept_copies(self) -> list[Path]:
        """The vaults restore set aside beside this one (``<name>.before-restore-<time>``)."""
        prefix = self.path.name + ".before-restore-"
        skip = ("-wal", "-shm", "-journal", ".failed-unlocks")
        try:
            names = [p for p in self.path.parent.iterdir() if p.name.startswith(prefix)]
        except OSError:
            return []
        return sorted(p for p in names if not p.name.endswith(skip) and p.is_file())

    def _erase_from_kept_copies(self, pid: str) -> tuple[list[str], list[str]]:
        erased: list[str] = []
        not_opened: list[str] = []
        for kept in self.kept_copies():
            try:
                other = Vault.open(kept, self._passphrase, self.busy_timeout_ms, audit_unlock=False, head_copy=False)
            except NotewardError:
                not_opened.append(str(kept))
                continue
            try:
                try:
                    other.patient(pid)
                except UnknownPatientError:
                    continue
                other.erase_patient(pid, kept_copies=False)
                erased.append(str(kept))
            except NotewardError:
                not_opened.append(str(kept))
            finally:
                other.close()
        return erased, not_opened

    def compact(self) -> None:
        """Rewrite the database (VACUUM) and empty the WAL so no freed page keeps old data."""
        self._refuse_if_read_only()
        conn = self.conn
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("DELETE FROM meta WHERE key = 'compact_pending'")
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

    def _finish_compact(self) -> None:
        """An erasure's rewrite that did not finish (full disk, killed): try it again."""
        try:
            self.compact()
            log.info("unfinished erasure wipe completed")
        except (DatabaseError, NotewardError) as exc:
            log.warning("an erasure's wipe is still unfinished (%s)", type(exc).__name__)

    # -- passphrase, backup, restore -------------------------------------------------------

    def change_passphrase(self, new_passphrase: str) -> None:
        """Re-encrypt the whole vault under a new passphrase.

        Not an in-place rekey (which, failing half-way on a full disk, leaves pages under
        two keys): the vault is exported into a new file under the new key, the 'passwd'
        audit record written there, the copy checked and flushed, and only then renamed
        over the vault. Until that rename the vault is untouched under the old passphrase.
        Needs the vault to itself: another Noteward process with it open makes this fail
        with VaultBusyError, as it would go on using the replaced file."""
        check_passphrase(new_passphrase, "new passphrase")
        if new_passphrase == self._passphrase:
            raise UsageError("The new passphrase is the same as the current one; nothing was changed.")
        self._refuse_if_read_only()
        busy = (
            "vault is busy: another Noteward process has this vault open. Close it, then "
            "change the passphrase; nothing was changed."
        )
        if self._lock_fd is not None:
            _lock_exclusively(self._lock_fd, self.busy_timeout_ms, busy)
        try:
            self._rekey_into_copy(new_passphrase, busy)
        finally:
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
        log.info("vault passphrase changed")

    def _rekey_into_copy(self, new_passphrase: str, busy: str) -> None:
        path, conn = self.path, self.conn
        try:
            # Everything into the main file first (no other Noteward process has it open).
            if conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                raise VaultBusyError(busy)
        except OperationalError as exc:
            if _is_busy(exc):
                raise VaultBusyError(busy) from None
            raise
        tmp = path.with_name(path.name + ".rekeying")
        _remove_files(tmp)  # left by a run that was killed: under a key nobody was told
        try:
            create_private_file(tmp)
            self._export(tmp, new_passphrase)
            fresh = Vault._connect(tmp, new_passphrase, self.busy_timeout_ms)
            try:
                fresh.execute("BEGIN IMMEDIATE")
                audit.append(fresh, "passwd", [], {})
                fresh.execute("COMMIT")
                bad = fresh.execute("PRAGMA cipher_integrity_check").fetchall()
                if bad or fresh.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    raise NotewardError("The re-encrypted copy failed its check; nothing was changed.")
                fresh.execute("PRAGMA journal_mode = WAL")
            finally:
                fresh.close()
            fsync_path(tmp)
        except BaseException as exc:
            _remove_files(tmp)
            reason = _storage_failure(exc)
            if reason:
                raise NotewardError(
                    f"Could not write the re-encrypted copy of the vault: {reason}; nothing was "
                    "changed: the vault still opens with the old passphrase."
                ) from None
            raise
        self._conn.close()
        self._conn = None
        try:
            os.replace(tmp, path)
        except OSError:
            _remove_files(tmp)
            self._conn = self._connect(path, self._passphrase, self.busy_timeout_ms)
            self._configure(self._conn, self.busy_timeout_ms)
            raise
        with contextlib.suppress(OSError):
            fsync_path(path.parent, directory=True)
        # The old file is gone: lock the new one (nobody else can hold it exclusively: any
        # process that waited on the old one finds it replaced and tries the new one).
        old_fd = self._lock_fd
        self._lock_fd = _lock(path, self.busy_timeout_ms, exclusive=False, busy_message=busy)
        if old_fd is not None:
            os.close(old_fd)
        self._passphrase = new_passphrase
        self._conn = self._connect(path, new_passphrase, self.busy_timeout_ms)
        self._configure(self._conn, self.busy_timeout_ms)
        self._sync_head_copy()

    def _export(self, dest: Path, passphrase: str) -> None:
        """Copy the whole vault into the empty file ``dest``, encrypted under ``passphrase``."""
        conn = self.conn
        conn.execute(f"ATTACH DATABASE ? AS export KEY {_quote(passphrase)}", (os.path.abspath(dest),))
        try:
            conn.execute(f"PRAGMA export.kdf_iter = {KDF_ITER}")
            conn.execute(f"PRAGMA export.cipher_page_size = {PAGE_SIZE}")
            conn.execute("SELECT sqlcipher_export('export')")
            conn.execute(f"PRAGMA export.user_version = {self.schema_version}")
        finally:
            with contextlib.suppress(OperationalError):
                conn.execute("DETACH DATABASE export")

    def backup(self, out: str | Path) -> Path:
        """Write an encrypted copy (same passphrase, 0600) to ``out``; refuses to overwrite.
        The backup audit record is written only once the file is complete and on disk."""
        out = Path(out)
        self._refuse_if_read_only()  # its audit record could not be written
        if out.exists():
            raise NotewardError(f"{out} already exists; choose a new file name for the backup.")
        private_dir(out.parent)
        tmp = out.with_name(out.name + ".partial")
        _remove_files(tmp)
        try:
            create_private_file(tmp)
            self._export(tmp, self._passphrase)
            fsync_path(tmp)
            os.replace(tmp, out)
            with contextlib.suppress(OSError):
                fsync_path(out.parent, directory=True)
        except BaseException as exc:
            _remove_files(tmp)
            reason = _storage_failure(exc)
            if reason:
                raise NotewardError(
                    f"Could not write the backup to {out}: {reason}; no backup was written and "
                    "the vault is unchanged."
                ) from None
            raise
        with self.transaction() as conn:
            audit.append(conn, "backup", [], self.counts())
        log.info("backup written")
        return out

    @staticmethod
    def verify_file(path: str | Path, passphrase: str) -> dict[str, Any]:
        """Open a vault file read-only and check it: integrity, schema, audit chain."""
        v = Vault.open(path, passphrase, audit_unlock=False, head_copy=False)
        try:
            return v.check()
        finally:
            v.close()

    @staticmethod
    def restore(
        backup: str | Path, target: str | Path, passphrase: str, busy_timeout_ms: int = 5000
    ) -> Path | None:
        """Check a backup, then put it in place of ``target``. The vault it replaces is
        kept beside it (``*.before-restore-<time>``, still encrypted): nothing is lost.
        Refuses (VaultBusyError) while another Noteward process has ``target`` open: it
        would go on writing into the file set aside."""
        check_passphrase(passphrase)
        backup, target = Path(backup), Path(target)
        if not backup.is_file():
            raise VaultLockedError(f"No backup at {backup}; nothing was restored.")
        refuse_network_share(target)
        private_dir(target.parent)  # a fresh machine has no data folder yet
        # Check a copy, not the backup itself: opening a vault read-write changes its
        # header (journal mode), and the checked bytes are then exactly the ones restored.
        tmp = target.with_name(target.name + ".restoring")
        _remove_files(tmp)
        try:
            create_private_file(tmp)
            shutil.copyfile(backup, tmp)
            report = Vault.verify_file(tmp, passphrase)
            if not report["ok"]:
                raise VaultCorruptError(
                    f"The backup failed its checks ({report['problems']}); nothing was restored."
                )
        except NotewardError as exc:
            _remove_files(tmp)
            # The user named the backup, not our scratch copy of it.
            raise type(exc)(str(exc).replace(str(tmp), str(backup))) from None
        except BaseException as exc:
            _remove_files(tmp)
            reason = _storage_failure(exc)
            if reason:
                raise NotewardError(f"Could not copy {backup} beside the vault: {reason}; nothing was restored.") from None
            raise
        lock_fd = None
        try:
            if target.exists():
                lock_fd = _lock(
                    target, busy_timeout_ms, exclusive=True,
                    busy_message="vault is busy: it is open in another Noteward process (the desktop "
                    "app, or a command still running). Close it and try again; nothing was restored.",
                )
        except BaseException:
            _remove_files(tmp)
            raise
        kept: Path | None = None
        try:
            if target.exists():
                kept = target.with_name(f"{target.name}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(target, kept)
                make_private(kept)
                for suffix in ("-wal", "-shm"):
                    side = Path(str(target) + suffix)
                    if side.exists():
                        os.replace(side, Path(str(kept) + suffix))
            os.replace(tmp, target)
            with contextlib.suppress(OSError):
                fsync_path(target.parent, directory=True)
            v = Vault.open(target, passphrase, busy_timeout_ms, audit_unlock=False)
            try:
                with v.transaction():
                    audit.append(v.conn, "restore", [], v.counts())
                v._sync_head_copy(force=True)  # the head copy now describes the restored trail
            finally:
                v.close()
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
        return kept

    def check(self) -> dict[str, Any]:
        """Integrity check, schema version and audit-chain verification."""
        problems: list[str] = []
        integrity = [r[0] for r in self.conn.execute("PRAGMA integrity_check").fetchall()]
        if integrity != ["ok"]:
            problems.extend(integrity[:10])
        cipher = [r[0] for r in self.conn.execute("PRAGMA cipher_integrity_check").fetchall()]
        problems.extend(cipher[:10])
        audit_problems = self.verify_audit()
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
