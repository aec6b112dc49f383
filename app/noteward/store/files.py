"""Files and folders Noteward writes are its user's alone: 0600 files and 0700 folders,
whatever the umask. A vault is encrypted, but its size, its backups' names and the
failed-unlock count are still nobody else's business on a shared workstation.

Any layer above the store may use these helpers for its own files (manifest caches,
settings): they are plain ``os`` calls, no SQL.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: str | Path) -> Path:
    """Create ``path`` and its missing parents as 0700 folders. Folders that already exist
    are left as they are (``/tmp`` or a user's home must not change mode)."""
    path = Path(path)
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            d.mkdir(mode=PRIVATE_DIR)
            os.chmod(d, PRIVATE_DIR)  # mkdir's mode passes through the umask
    return path


def create_private_file(path: str | Path) -> Path:
    """Create an empty 0600 file; FileExistsError if something is already there. SQLite
    opening a file that exists keeps its mode, and gives its -wal/-shm the same mode."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def write_private_text(path: str | Path, text: str) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``text`` (fsync'd)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)


def make_private(path: str | Path) -> None:
    """Tighten an existing file of ours to 0600 (a vault an older Noteward wrote)."""
    with contextlib.suppress(OSError):
        os.chmod(path, PRIVATE_FILE)


def fsync_path(path: str | Path, *, directory: bool = False) -> None:
    """Flush a file (or a folder's entries, after a rename) to the disk."""
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
