"""The encrypted vault: one SQLCipher 4 database file holding everything Noteward knows.

Notes, the full-text index, embeddings, summaries and the audit trail all live inside the
one encrypted file; nothing from a vault is written anywhere else unencrypted. The key is
32 random bytes (an SQLCipher raw key) that each user's passphrase unwraps from the key
file beside the vault (:mod:`noteward.store.keys`). A vault an older Noteward made is keyed
by its one passphrase through SQLCipher's own KDF (PBKDF2-HMAC-SHA512, 256,000 iterations)
until its first unlock here moves it to accounts. A lost passphrase cannot be recovered
(unless the vault has a recovery key).

Operations that put a new file in the vault's place (passwd, restore) never change the
vault in place: they build the new file beside it, check and flush it, and rename it in,
holding the vault exclusively (a flock every open holds shared), so a full disk, a kill
or another process using the vault cannot leave it half-changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlcipher3 import dbapi2 as sqlcipher

from noteward.core.errors import (
    AccessDeniedError,
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
from noteward.store.keys import (
    WRONG_PASSPHRASE,
    KeyFile,
    User,
    check_role,
    check_user_name,
    key_file_path,
    new_data_key,
    next_key_file_path,
    remove_quietly,
    sqlcipher_key,
)
from noteward.store.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

APP_ID = "noteward-vault"
KDF_ITER = 256_000
PAGE_SIZE = 4096
# SQLite's default page cache (2 MB) makes every search decrypt the same FTS pages again;
# 64 MB keeps them (decrypted, in this process's memory only, as every page read is).
PAGE_CACHE_KIB = 65_536
DEFAULT_ADMIN = "admin"  # the first admin's name when `init` is given no --user
MIN_PASSPHRASE_LENGTH = 12  # for new passphrases only: init, users add, passwd, recovery
LOST_PASSPHRASE_WARNING = (
    "Noteward cannot recover a lost passphrase: without it the vault's contents are gone. "
    "Keep it somewhere safe (and make backups with `noteward backup`)."
)
RECOVERY_KEY_WARNING = (
    "A lost passphrase can be replaced only with the recovery key shown below (once): without "
    "both, the vault's contents are gone. Keep the key apart from the computer (and make "
    "backups with `noteward backup`)."
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


def check_new_passphrase(passphrase: str, what: str = "new passphrase") -> str:
    """A passphrase being set (init, users add, passwd, a recovery reset) must have at least
    :data:`MIN_PASSPHRASE_LENGTH` characters; existing passphrases keep working whatever
    their length. The front ends call this; the store API takes what it is given."""
    check_passphrase(passphrase, what)
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise UsageError(
            f"The {what} is too short: use at least {MIN_PASSPHRASE_LENGTH} characters (a few "
            "words are easier to remember than symbols); nothing was changed."
        )
    return passphrase


class _Connection(sqlcipher.Connection):  # type: ignore[misc]
    """An SQLCipher connection that knows who has the vault open, so every audit record
    names its user without callers passing it (:func:`audit.append` reads it)."""

    noteward_user: str | None = None


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


@dataclasses.dataclass(frozen=True)
class _Key:
    """What unlocked a vault: the PRAGMA key text, who unlocked it, and the key file and
    data key (both None for a vault still keyed by one passphrase)."""

    sql: str
    user: User
    passphrase: str
    keyfile: KeyFile | None
    data_key: bytes | None

    def __repr__(self) -> str:  # never print a key or a passphrase
        return f"_Key(user={self.user.name!r})"


def _mirror_user(conn: Any, name: str, role: str) -> None:
    """The user list inside the vault (authoritative; covered by the audit trail)."""
    conn.execute(
        "INSERT INTO users(name, role, added_at, removed_at) VALUES (?, ?, ?, NULL)"
        " ON CONFLICT(name) DO UPDATE SET role = excluded.role, added_at = excluded.added_at,"
        " removed_at = NULL",
        (name, role, now_iso()),
    )


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
        key: _Key,
        busy_timeout_ms: int,
        *,
        lock_fd: int | None = None,
        read_only: str | None = None,
        head_copy: bool = True,
    ) -> None:
        self.path = path
        self._conn = conn
        self._key = key
        self._passphrase = key.passphrase  # kept copies are opened with it (erasure)
        self.busy_timeout_ms = busy_timeout_ms
        self._lock_fd = lock_fd
        self.read_only = read_only  # None, or what cannot be written: "file" / "folder"
        self._check_head_copy = head_copy  # only the user's vault has one, not a backup
        self._head_copy = head_copy and read_only is None  # and only a writer updates it
        self._head_written: str | None = None
        if isinstance(conn, _Connection):
            conn.noteward_user = key.user.name

    @property
    def user(self) -> User:
        """Who unlocked the vault (name and role); every audit record names them."""
        return self._key.user

    @property
    def legacy(self) -> bool:
        """True for a vault still keyed by one passphrase (made by an older Noteward)."""
        return self._key.keyfile is None

    def require_admin(self, what: str) -> None:
        """Refuse (exit 8) what only an admin may do. Roles are enforced by the app: anyone
        holding a valid passphrase holds the data key."""
        if not self.user.is_admin:
            raise AccessDeniedError(
                f"Only an admin can {what}; {self.user.name!r} is a {self.user.role}. Nothing was "
                "changed. Ask an admin (`noteward users list` shows who is one)."
            )

    # -- opening -----------------------------------------------------------------------

    @staticmethod
    def _connect(path: Path, key: _Key | str, busy_timeout_ms: int, **uri_params: str) -> Any:
        key_sql = key.sql if isinstance(key, _Key) else key
        conn: Any = sqlcipher.connect(
            _uri(path, **uri_params), uri=True, timeout=busy_timeout_ms / 1000,
            isolation_level=None, check_same_thread=False, factory=_Connection,
        )
        try:
            _quiet(conn)
            conn.execute(f"PRAGMA key = {key_sql}")
            conn.execute(f"PRAGMA kdf_iter = {KDF_ITER}")
            conn.execute(f"PRAGMA cipher_page_size = {PAGE_SIZE}")
        except BaseException:
            conn.close()
            raise
        if isinstance(key, _Key):
            conn.noteward_user = key.user.name
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
    def create(
        cls,
        path: str | Path,
        passphrase: str,
        busy_timeout_ms: int = 5000,
        *,
        user: str = DEFAULT_ADMIN,
        recovery_key: str | None = None,
    ) -> Vault:
        """Create a new, empty vault file (0600, in a 0700 folder if it makes one) under a
        random data key, with ``user`` its first admin (the default user) and, when given,
        a recovery key that can set an admin passphrase again. The key file
        (``<vault>.keys``) is written beside it. Refuses to overwrite an existing file; a
        failed create leaves nothing behind."""
        path = Path(path)
        check_passphrase(passphrase)
        check_user_name(user)
        refuse_network_share(path)
        kf_path = key_file_path(path)
        if path.exists() or kf_path.exists():
            raise NotewardError(f"{path} already exists; choose another file or open it.")
        private_dir(path.parent)
        try:
            create_private_file(path)
        except FileExistsError:
            raise NotewardError(f"{path} already exists; choose another file or open it.") from None
        data_key = new_data_key()
        keyfile = KeyFile.new()
        keyfile.set_user(user, "admin", passphrase, data_key)
        if recovery_key:
            keyfile.set_recovery(recovery_key, data_key)
        key = _Key(sqlcipher_key(data_key), User(user, "admin"), passphrase, keyfile, data_key)
        conn = None
        lock_fd = None
        try:
            lock_fd = _lock(path, busy_timeout_ms, exclusive=False, busy_message="vault is busy")
            conn = cls._connect(path, key, busy_timeout_ms)
            cls._configure(conn, busy_timeout_ms)
            vault = cls(path, conn, key, busy_timeout_ms, lock_fd=lock_fd)
            vault._migrate()
            with vault.transaction():
                vault._conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('app', ?), ('created_at', ?),"
                    " ('deid_secret', ?)",
                    (APP_ID, now_iso(), os.urandom(32).hex()),
                )
                _mirror_user(vault._conn, user, "admin")
                audit.append(vault._conn, "init", [], {"recovery_key": int(bool(recovery_key))})
                keyfile.save(kf_path)  # inside the transaction: a failed write commits nothing
        except BaseException:
            if conn is not None:
                conn.close()
            if lock_fd is not None:
                os.close(lock_fd)
            _remove_files(path)
            remove_quietly(kf_path)
            raise
        log.info("vault created")
        return vault

    @staticmethod
    def _keys_for(path: Path, passphrase: str, user: str | None) -> list[tuple[_Key, Path | None]]:
        """The keys to try, in order: the key file's, then a ``.keys.next`` a rotation
        wrote before it was cut short; a vault without a key file is an older Noteward's,
        keyed by its passphrase alone."""
        found: list[tuple[_Key, Path | None]] = []
        error: VaultLockedError | None = None
        kf_path, next_path = key_file_path(path), next_key_file_path(path)
        current = KeyFile.load(kf_path)
        for kf_file, keyfile in ((kf_path, current), (next_path, KeyFile.load(next_path))):
            if keyfile is None:
                continue
            name = user or keyfile.default_user or DEFAULT_ADMIN
            try:
                who, data_key = keyfile.unlock(name, passphrase)
            except VaultLockedError as exc:
                error = error or exc
                continue
            found.append((_Key(sqlcipher_key(data_key), who, passphrase, keyfile, data_key), kf_file))
        if current is None:
            found.append((_Key(_quote(passphrase), User(user or DEFAULT_ADMIN, "admin"), passphrase, None, None), None))
        if not found:
            raise error or VaultLockedError(WRONG_PASSPHRASE)
        return found

    @classmethod
    def open(
        cls,
        path: str | Path,
        passphrase: str,
        busy_timeout_ms: int = 5000,
        *,
        audit_unlock: bool = True,
        head_copy: bool = True,
        user: str | None = None,
    ) -> Vault:
        """Unlock an existing vault as ``user`` (default: the first admin made at init).
        Never creates or modifies a file it cannot unlock.
        A vault this user may read but not write opens read-only (no unlock record: it
        cannot be written). ``head_copy=False`` for files that are not the user's vault
        (a backup being checked, a copy restore kept): their audit head copy is not kept.
        A vault an older Noteward made (one passphrase, no key file) is moved to accounts
        at its first unlock with ``audit_unlock`` (a backup of it is made first)."""
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
            # Read under the shared lock: a rotation (which holds it exclusively) is then
            # either finished or not begun, never half-way between key file and vault.
            candidates = cls._keys_for(path, passphrase, user)
            vault = None
            for i, (key, kf_file) in enumerate(candidates):
                try:
                    vault = cls._open_locked(path, key, busy_timeout_ms, audit_unlock, lock_fd, head_copy)
                except VaultLockedError as exc:
                    if i + 1 < len(candidates) and str(exc) == WRONG_PASSPHRASE:
                        continue
                    raise
                vault._settle_key_file(kf_file)
                break
            assert vault is not None
        except BaseException:
            os.close(lock_fd)
            raise
        try:
            vault._check_account()
            if vault.legacy and audit_unlock and not vault.read_only:
                vault.migrate_to_accounts(user or DEFAULT_ADMIN)
        except BaseException:
            vault.close()
            raise
        return vault

    def _settle_key_file(self, used: Path | None) -> None:
        """A rotation cut short between renaming the vault and its key file leaves the
        new key file as ``.keys.next``: once it has opened the vault, it becomes the key
        file. One that did not (a rotation cut short before the vault was renamed) is
        stale and removed. (Under the shared lock: no rotation is running now.)"""
        if self.read_only:
            return
        kf_path, next_path = key_file_path(self.path), next_key_file_path(self.path)
        try:
            if used == next_path:
                os.replace(next_path, kf_path)
                fsync_path(self.path.parent, directory=True)
                log.info("an unfinished key rotation was completed")
            elif next_path.exists():
                next_path.unlink()
        except OSError as exc:
            log.warning("the vault's key files could not be tidied (%s)", type(exc).__name__)

    def _check_account(self) -> None:
        """The user list inside the vault is authoritative: a key-file entry it does not
        list with the same role (a key file edited or put back from an older copy by
        someone holding the data key) is refused, whatever the passphrase."""
        if self.legacy:
            return
        row = self.conn.execute(
            "SELECT role FROM users WHERE name = ? AND removed_at IS NULL", (self.user.name,)
        ).fetchone()
        if row is None or row[0] != self.user.role:
            raise AccessDeniedError(
                f"The vault's key file and the vault disagree about user {self.user.name!r} "
                f"({'not a user of this vault' if row is None else 'role ' + str(row[0])}); the "
                "vault's own list wins, so this unlock is refused. Put back the key file from "
                "the latest backup (`<backup>.keys`) or ask an admin."
            )

    @classmethod
    def _open_locked(
        cls, path: Path, key: _Key, busy_timeout_ms: int, audit_unlock: bool, lock_fd: int,
        head_copy: bool,
    ) -> Vault:
        size = path.stat().st_size
        wal_file = Path(str(path) + "-wal")
        # A checkpoint that extended the file and stopped at a full disk leaves part of a
        # page at its end; every committed page is still in the write-ahead log, so the
        # log is merged in below (once the key is known good), as SQLite itself would.
        torn_tail = bool(
            size > PAGE_SIZE and size % PAGE_SIZE and wal_file.exists()
            and wal_file.stat().st_size and not _write_access(path)
        )
        if size == 0 or (size % PAGE_SIZE and not torn_tail):
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
        conn = cls._connect(path, key, busy_timeout_ms, **params)
        try:
            # Check every page's HMAC before anything is written: page 1 failing means the
            # key is wrong (or the file is not a vault); any other page failing means the
            # file is damaged, and opening it read-write would modify a corrupt file.
            bad = [r[0] for r in conn.execute("PRAGMA cipher_integrity_check").fetchall()]
            if any(str(b).endswith(" page 1") for b in bad):
                raise VaultLockedError(WRONG_PASSPHRASE)
            wal = Path(str(path) + "-wal")
            if (bad or torn_tail) and not denied and existed[wal] and wal.stat().st_size:
                # A checkpoint that stopped half-way (a crash, a full disk) leaves torn pages
                # in the file whose good copies are still in the write-ahead log: merge the
                # log in, as SQLite itself would, and check again.
                conn.close()
                cls._merge_wal(path, key, busy_timeout_ms)
                conn = cls._connect(path, key, busy_timeout_ms, **params)
                bad = [r[0] for r in conn.execute("PRAGMA cipher_integrity_check").fetchall()]
                if path.stat().st_size % PAGE_SIZE:
                    raise VaultCorruptError(
                        f"{path} is damaged or truncated (not a whole number of pages, and its "
                        "write-ahead log could not mend it). Restore it from a backup with "
                        "`noteward restore`."
                    )
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
            return cls._read_only(path, conn, key, busy_timeout_ms, lock_fd, denied)
        conn.close()
        conn = cls._connect(path, key, busy_timeout_ms)
        try:
            cls._configure(conn, busy_timeout_ms)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise NotewardError(
                    f"This vault was written by a newer Noteward (schema {version}, this one "
                    f"knows {SCHEMA_VERSION}). Update Noteward to open it."
                )
            vault = cls(path, conn, key, busy_timeout_ms, lock_fd=lock_fd, head_copy=head_copy)
            vault._migrate()
            vault._check_account()  # before any record names a user the vault does not list
            if audit_unlock:
                failed = _count_failed_unlocks(path)
                with vault.transaction():
                    if failed:
                        # counted per vault, before anyone signed in: not this user's
                        audit.append(conn, "failed_unlock", [], {"attempts": failed}, anonymous=True)
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
    def _merge_wal(cls, path: Path, key: _Key, busy_timeout_ms: int) -> None:
        conn = cls._connect(path, key, busy_timeout_ms)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except DatabaseError as exc:
            log.warning("merging the write-ahead log failed (%s)", type(exc).__name__)
        finally:
            conn.close()

    @classmethod
    def _read_only(
        cls, path: Path, conn: Any, key: _Key, busy_timeout_ms: int, lock_fd: int, denied: str
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
        return cls(path, conn, key, busy_timeout_ms, lock_fd=lock_fd, read_only=denied)

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
            n = _count_failed_unlocks(path)
            write_private_text(marker, str(n + 1))  # its mtime is the time of this failure

    @staticmethod
    def unlock_delay(path: str | Path) -> float:
        """Seconds to wait before the next unlock attempt: none for the first
        :data:`FREE_ATTEMPTS` failures in a row, then 1, 2, 4, ... up to
        :data:`MAX_UNLOCK_DELAY_S` after the last one (the counter beside the vault holds
        the count; its modification time is the last failure's). Front ends wait it off the
        GUI thread.
        It slows guessing through Noteward; the key file's scrypt is what slows it elsewhere."""
        n, last = _read_failed_unlocks(Path(path))
        if n < FREE_ATTEMPTS or last is None:
            return 0.0
        delay = min(2.0 ** (n - FREE_ATTEMPTS), MAX_UNLOCK_DELAY_S)
        return max(0.0, min(delay, last + delay - time.time()))

    def close(self) -> None:
        if self._conn is not None:
            if not self.read_only:
                with contextlib.suppress(Exception):
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._conn.close()
            self._conn = None
            self._passphrase = ""
            self._key = dataclasses.replace(self._key, sql="", passphrase="", data_key=None)
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
        self.require_admin("erase a patient")
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
        """The vaults set aside beside this one by restore (``<name>.before-restore-<time>``)
        and by the move to accounts (``<name>.before-accounts-<time>``)."""
        prefixes = (self.path.name + ".before-restore-", self.path.name + ".before-accounts-")
        skip = ("-wal", "-shm", "-journal", ".failed-unlocks", ".keys", ".keys.next", ".partial")
        try:
            names = [p for p in self.path.parent.iterdir() if p.name.startswith(prefixes)]
        except OSError:
            return []
        return sorted(p for p in names if not p.name.endswith(skip) and p.is_file())

    def _erase_from_kept_copies(self, pid: str) -> tuple[list[str], list[str]]:
        erased: list[str] = []
        not_opened: list[str] = []
        for kept in self.kept_copies():
            try:
                other = Vault.open(
                    kept, self._passphrase, self.busy_timeout_ms, audit_unlock=False, head_copy=False,
                    user=self.user.name,
                )
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

    # -- accounts, passphrase, backup, restore ----------------------------------------------

    @property
    def keyfile(self) -> KeyFile | None:
        return self._key.keyfile

    def users(self) -> list[User]:
        """The vault's users (its own list, which the key file mirrors), by name."""
        rows = self.conn.execute(
            "SELECT name, role FROM users WHERE removed_at IS NULL ORDER BY name"
        ).fetchall()
        return [User(str(n), str(r)) for n, r in rows]

    def _current_keyfile(self) -> KeyFile:
        """A copy of the key file as it is on disk now (another Noteward process may have
        added a user since this one unlocked), else of the one this vault was opened with."""
        assert self._key.keyfile is not None
        with contextlib.suppress(NotewardError):
            on_disk = KeyFile.load(key_file_path(self.path))
            if on_disk is not None and on_disk.vault_id == self._key.keyfile.vault_id:
                return on_disk
        return self._key.keyfile.copy()

    def _refuse_if_legacy(self) -> None:
        if self.legacy:
            raise UsageError(
                "This vault still has one passphrase for everyone (an older Noteward made it): "
                "unlock it once with `noteward check` to move it to accounts; nothing was changed."
            )

    def add_user(self, name: str, role: str, passphrase: str) -> None:
        """Add a user (admin only): a key-file entry their passphrase unwraps, and a row in
        the vault's own list, written in one transaction with its audit record."""
        check_user_name(name)
        check_role(role)
        check_passphrase(passphrase, "new user's passphrase")
        self.require_admin("add users")
        self._refuse_if_legacy()
        self._refuse_if_read_only()
        assert self._key.keyfile is not None and self._key.data_key is not None
        data_key = self._key.data_key
        with self.transaction() as conn:
            if any(u.name == name for u in self.users()):
                raise UsageError(f"There is already a user {name!r}; nothing was changed.")
            # Read under the write lock: another process may have added a user since.
            keyfile = self._current_keyfile()
            keyfile.set_user(name, role, passphrase, data_key)
            _mirror_user(conn, name, role)
            audit.append(conn, "user.add", [name], {"admin": int(role == "admin")})
            keyfile.save(key_file_path(self.path))  # a failed write commits nothing
        self._key = dataclasses.replace(self._key, keyfile=keyfile)
        log.info("user added")

    def remove_user(self, name: str) -> None:
        """Remove a user (admin only) and rotate the data key: the vault is re-encrypted
        under a fresh key sealed to the remaining users only, so a removed user who kept
        the old key (or an old key file) cannot read the live vault. Backups made before
        stay readable with the old key."""
        self.require_admin("remove users")
        self._refuse_if_legacy()
        users = {u.name: u for u in self.users()}
        if name not in users:
            raise UsageError(f"No user {name!r} in this vault; nothing was changed.")
        if name == self.user.name:
            raise UsageError("You cannot remove yourself; another admin can. Nothing was changed.")
        def drop(keyfile: KeyFile) -> None:
            with contextlib.suppress(UsageError):  # a row the key file lost is still removed
                keyfile.remove_user(name)

        def in_copy(conn: Any) -> None:
            conn.execute("UPDATE users SET removed_at = ? WHERE name = ?", (now_iso(), name))
            audit.append(conn, "user.remove", [name], {})

        self._rotate(self._current_keyfile, in_copy, what="remove the user", change=drop)
        log.info("user removed, data key rotated")

    def change_passphrase(self, new_passphrase: str) -> None:
        """Give this user a new passphrase, and re-encrypt the whole vault under a fresh
        data key (the old passphrase then unwraps nothing, even from an old key file).

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

        def in_copy(conn: Any) -> None:
            audit.append(conn, "passwd", [], {})

        if self._key.keyfile is None:  # an older Noteward's vault: still one passphrase
            self._with_vault_alone("change the passphrase", lambda busy: self._rekey_into_copy(
                _Key(_quote(new_passphrase), self.user, new_passphrase, None, None), busy, in_copy, None
            ))
        else:
            self._rotate(self._current_keyfile, in_copy, what="change the passphrase", set_user=(self.user, new_passphrase))
        log.info("vault passphrase changed")

    def _rotate(
        self,
        keyfile_now: Callable[[], KeyFile],
        in_copy: Callable[[Any], None],
        *,
        what: str,
        change: Callable[[KeyFile], None] | None = None,
        set_user: tuple[User, str] | None = None,
    ) -> None:
        """Re-encrypt the vault under a fresh data key sealed to every entry of the key
        file (read once the vault is held alone, then ``change``d) by the safe rekey (copy,
        check, flush, rename), with ``in_copy`` run inside the new copy and a 'key.rotate'
        record after it."""
        self._refuse_if_read_only()

        def work(busy: str) -> None:
            keyfile = keyfile_now()
            if change is not None:
                change(keyfile)
            data_key = new_data_key()
            keyfile.reseal(data_key)
            passphrase = self._passphrase
            if set_user is not None:
                keyfile.set_user(set_user[0].name, set_user[0].role, set_user[1], data_key)
                passphrase = set_user[1]

            def in_copy_then_rotate(conn: Any) -> None:
                in_copy(conn)
                audit.append(conn, "key.rotate", [], {"users": len(keyfile.users())})

            new_key = _Key(sqlcipher_key(data_key), self.user, passphrase, keyfile, data_key)
            self._rekey_into_copy(new_key, busy, in_copy_then_rotate, keyfile)

        self._with_vault_alone(what, work)

    def _with_vault_alone(self, what: str, work: Callable[[str], None]) -> None:
        busy = (
            "vault is busy: another Noteward process has this vault open. Close it, then "
            f"{what}; nothing was changed."
        )
        if self._lock_fd is not None:
            _lock_exclusively(self._lock_fd, self.busy_timeout_ms, busy)
        try:
            work(busy)
        finally:
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_fd, fcntl.LOCK_SH)

    def migrate_to_accounts(self, name: str = DEFAULT_ADMIN) -> Path:
        """Move a vault an older Noteward made (one passphrase for everyone) to accounts:
        an encrypted backup of it as it is comes first (``<vault>.before-accounts-<time>``,
        still under the old passphrase), then the vault is re-encrypted under a random data
        key that this passphrase unwraps as admin ``name``. Returns the backup's path."""
        if not self.legacy:
            raise UsageError("This vault already has accounts; nothing was changed.")
        check_user_name(name)
        self._refuse_if_read_only()
        kept = self.path.with_name(f"{self.path.name}.before-accounts-{time.strftime('%Y%m%d-%H%M%S')}")
        self._write_copy(kept, self._key, None)
        keyfile = KeyFile.new()
        self._key = dataclasses.replace(self._key, user=User(name, "admin"))
        self._conn.noteward_user = name

        def in_copy(conn: Any) -> None:
            _mirror_user(conn, name, "admin")
            audit.append(conn, "accounts.migrate", [name], {})

        self._rotate(lambda: keyfile, in_copy, what="move it to accounts", set_user=(User(name, "admin"), self._passphrase))
        log.info("single-passphrase vault moved to accounts (backup kept beside it)")
        return kept

    def _rekey_into_copy(
        self, new_key: _Key, busy: str, in_copy: Callable[[Any], None], keyfile: KeyFile | None
    ) -> None:
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
        next_keys = next_key_file_path(path)
        _remove_files(tmp)  # left by a run that was killed: under a key nobody was told
        try:
            create_private_file(tmp)
            self._export(tmp, new_key.sql)
            fresh = Vault._connect(tmp, new_key, self.busy_timeout_ms)
            try:
                fresh.execute("BEGIN IMMEDIATE")
                in_copy(fresh)
                fresh.execute("COMMIT")
                bad = fresh.execute("PRAGMA cipher_integrity_check").fetchall()
                if bad or fresh.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    raise NotewardError("The re-encrypted copy failed its check; nothing was changed.")
                fresh.execute("PRAGMA journal_mode = WAL")
            finally:
                fresh.close()
            fsync_path(tmp)
            if keyfile is not None:
                # Written before the rename: a crash after it leaves the new key file as
                # .keys.next, which the next unlock tries and settles (_settle_key_file).
                keyfile.save(next_keys)
        except BaseException as exc:
            _remove_files(tmp)
            remove_quietly(next_keys)
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
            remove_quietly(next_keys)
            self._conn = self._connect(path, self._key, self.busy_timeout_ms)
            self._configure(self._conn, self.busy_timeout_ms)
            raise
        if keyfile is not None:
            with contextlib.suppress(OSError):
                os.replace(next_keys, key_file_path(path))
        with contextlib.suppress(OSError):
            fsync_path(path.parent, directory=True)
        # The old file is gone: lock the new one (nobody else can hold it exclusively: any
        # process that waited on the old one finds it replaced and tries the new one).
        old_fd = self._lock_fd
        self._lock_fd = _lock(path, self.busy_timeout_ms, exclusive=False, busy_message=busy)
        if old_fd is not None:
            os.close(old_fd)
        self._key = new_key
        self._passphrase = new_key.passphrase
        self._conn = self._connect(path, new_key, self.busy_timeout_ms)
        self._configure(self._conn, self.busy_timeout_ms)
        self._sync_head_copy()

    def _export(self, dest: Path, key_sql: str) -> None:
        """Copy the whole vault into the empty file ``dest``, encrypted under ``key_sql``."""
        conn = self.conn
        conn.execute(f"ATTACH DATABASE ? AS export KEY {key_sql}", (os.path.abspath(dest),))
        try:
            conn.execute(f"PRAGMA export.kdf_iter = {KDF_ITER}")
            conn.execute(f"PRAGMA export.cipher_page_size = {PAGE_SIZE}")
            conn.execute("SELECT sqlcipher_export('export')")
            conn.execute(f"PRAGMA export.user_version = {self.schema_version}")
        finally:
            with contextlib.suppress(OperationalError):
                conn.execute("DETACH DATABASE export")

    def _write_copy(self, out: Path, key: _Key, keyfile: KeyFile | None) -> None:
        """An encrypted copy at ``out`` (and its key file at ``out.keys``), written beside
        as ``.partial`` files, flushed and renamed in; on failure nothing is left."""
        if out.exists() or key_file_path(out).exists():
            raise NotewardError(f"{out} already exists; choose a new file name for the backup.")
        private_dir(out.parent)
        tmp = out.with_name(out.name + ".partial")
        tmp_keys = out.with_name(out.name + ".keys.partial")
        _remove_files(tmp)
        try:
            create_private_file(tmp)
            self._export(tmp, key.sql)
            fsync_path(tmp)
            if keyfile is not None:
                keyfile.save(tmp_keys)
                os.replace(tmp_keys, key_file_path(out))
            os.replace(tmp, out)
            with contextlib.suppress(OSError):
                fsync_path(out.parent, directory=True)
        except BaseException as exc:
            _remove_files(tmp)
            remove_quietly(tmp_keys)
            if not out.exists():
                remove_quietly(key_file_path(out))
            reason = _storage_failure(exc)
            if reason:
                raise NotewardError(
                    f"Could not write the backup to {out}: {reason}; no backup was written and "
                    "the vault is unchanged."
                ) from None
            raise

    def backup(self, out: str | Path) -> Path:
        """Write an encrypted copy (same data key, 0600) to ``out``, with a copy of the key
        file beside it (``out.keys``: the users of today unwrap it); refuses to overwrite.
        Admin only. The backup audit record is written only once the file is complete and
        on disk."""
        out = Path(out)
        self.require_admin("make backups")
        self._refuse_if_read_only()  # its audit record could not be written
        self._write_copy(out, self._key, self._key.keyfile)
        with self.transaction() as conn:
            audit.append(conn, "backup", [], self.counts())
        log.info("backup written")
        return out

    @staticmethod
    def verify_file(path: str | Path, passphrase: str, user: str | None = None) -> dict[str, Any]:
        """Open a vault file read-only and check it: integrity, schema, audit chain."""
        v = Vault.open(path, passphrase, audit_unlock=False, head_copy=False, user=user)
        try:
            return v.check()
        finally:
            v.close()

    @staticmethod
    def restore(
        backup: str | Path, target: str | Path, passphrase: str, busy_timeout_ms: int = 5000,
        *, user: str | None = None,
    ) -> Path | None:
        """Check a backup, then put it (and its key file) in place of ``target``. The vault
        it replaces is kept beside it (``*.before-restore-<time>``, still encrypted, with its
        key file): nothing is lost. Only an admin of the backup may restore it.
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
        tmp_keys = key_file_path(tmp)
        _remove_files(tmp)
        remove_quietly(tmp_keys)
        has_keys = key_file_path(backup).exists()
        try:
            create_private_file(tmp)
            shutil.copyfile(backup, tmp)
            if has_keys:
                create_private_file(tmp_keys)
                shutil.copyfile(key_file_path(backup), tmp_keys)
            v = Vault.open(tmp, passphrase, audit_unlock=False, head_copy=False, user=user)
            try:
                v.require_admin("restore a backup")
                report = v.check()
            finally:
                v.close()
            if not report["ok"]:
                raise VaultCorruptError(
                    f"The backup failed its checks ({report['problems']}); nothing was restored."
                )
        except NotewardError as exc:
            _remove_files(tmp)
            remove_quietly(tmp_keys)
            # The user named the backup, not our scratch copy of it.
            raise type(exc)(str(exc).replace(str(tmp), str(backup))) from None
        except BaseException as exc:
            _remove_files(tmp)
            remove_quietly(tmp_keys)
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
            remove_quietly(tmp_keys)
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
                if key_file_path(target).exists():
                    os.replace(key_file_path(target), key_file_path(kept))
            remove_quietly(next_key_file_path(target))
            if has_keys:
                os.replace(tmp_keys, key_file_path(target))
            os.replace(tmp, target)
            with contextlib.suppress(OSError):
                fsync_path(target.parent, directory=True)
            v = Vault.open(target, passphrase, busy_timeout_ms, audit_unlock=False, user=user)
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

    @staticmethod
    def reset_with_recovery_key(
        path: str | Path, recovery_key: str, name: str, new_passphrase: str, busy_timeout_ms: int = 5000
    ) -> None:
        """Set a new passphrase for admin ``name`` with the vault's recovery key (when the
        last admin's passphrase is lost). The data key is not rotated: nothing leaked."""
        path = Path(path)
        check_passphrase(new_passphrase, "new passphrase")
        keyfile = KeyFile.load(key_file_path(path))
        if keyfile is None:
            raise UsageError(f"{path} has no key file (no vault there, or one without accounts).")
        data_key = keyfile.unlock_recovery(recovery_key)
        if not any(u.name == name and u.is_admin for u in keyfile.users()):
            raise UsageError(f"{name!r} is not an admin of this vault; a recovery key resets an admin's passphrase.")
        keyfile = keyfile.copy()
        keyfile.set_user(name, "admin", new_passphrase, data_key)
        key = _Key(sqlcipher_key(data_key), User(name, "admin"), new_passphrase, keyfile, data_key)
        refuse_network_share(path)
        lock_fd = _lock(path, busy_timeout_ms, exclusive=False, busy_message="vault is busy; try again.")
        try:
            v = Vault._open_locked(path, key, busy_timeout_ms, False, lock_fd, True)
        except BaseException:
            os.close(lock_fd)
            raise
        try:
            v._check_account()
            with v.transaction() as conn:
                audit.append(conn, "recovery.reset", [name], {})
                keyfile.save(key_file_path(path))
        finally:
            v.close()

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


FREE_ATTEMPTS = 3
MAX_UNLOCK_DELAY_S = 30.0


def _read_failed_unlocks(path: Path) -> tuple[int, float | None]:
    """(failed attempts, time of the last one): the counter file holds the count, a number
    and nothing else; it is rewritten at each failure, so its mtime is the last one's."""
    marker = _failed_marker(path)
    try:
        return int(marker.read_text()), marker.stat().st_mtime
    except (OSError, ValueError):
        return 0, None


def _count_failed_unlocks(path: Path) -> int:
    return _read_failed_unlocks(path)[0]


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
