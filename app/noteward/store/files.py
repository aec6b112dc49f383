"""Files and folders Noteward writes are its user's alone: 0600 files and 0700 folders,
whatever the umask. A vault is encrypted, but its size, its backups' names and the
failed-unlock count are still nobody else's business on a shared workstation.

One exception, opted into by IT and never by default: a folder set up for several OS
accounts on one workstation (the README's ``noteward`` group: setgid and group-writable,
``chmod 2770``) gets 0660 files and 2770 folders, so every account in the group can open
the one vault there. The group, not "others", is all that is added.

Any layer above the store may use these helpers for its own files (manifest caches,
settings): they are plain ``os`` calls, no SQL.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
GROUP_FILE = 0o660
GROUP_DIR = 0o2770


def shared_folder(folder: str | Path) -> bool:
    """True for a folder IT set up for a group of OS accounts: setgid and group-writable."""
    try:
        mode = os.stat(folder).st_mode
    except OSError:
        return False
    return bool(mode & stat.S_ISGID) and bool(mode & stat.S_IWGRP)


def file_mode(path: str | Path) -> int:
    """0600, or 0660 for a file in a shared group folder."""
    return GROUP_FILE if shared_folder(Path(path).parent) else PRIVATE_FILE


def private_dir(path: str | Path) -> Path:
    """Create ``path`` and its missing parents as 0700 folders (2770 inside a shared group
    folder). Folders that already exist are left as they are (``/tmp`` or a user's home
    must not change mode)."""
    path = Path(path)
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        mode = GROUP_DIR if shared_folder(d.parent) else PRIVATE_DIR
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            d.mkdir(mode=mode & 0o777)
            os.chmod(d, mode)  # mkdir's mode passes through the umask
    return path


def create_private_file(path: str | Path) -> Path:
    """Create an empty 0600 file (0660 in a shared group folder); FileExistsError if
    something is already there. SQLite opening a file that exists keeps its mode, and gives
    its -wal/-shm the same mode."""
    path = Path(path)
    mode = file_mode(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return path


def write_private_text(path: str | Path, text: str) -> None:
    """Replace ``path`` atomically with a 0600 file (0660 in a shared group folder)
    holding ``text`` (fsync'd)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode = file_mode(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
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
    """Tighten an existing file of ours to 0600 (0660 in a shared group folder)."""
    with contextlib.suppress(OSError):
        os.chmod(path, file_mode(path))


def fsync_path(path: str | Path, *, directory: bool = False) -> None:
    """Flush a file (or a folder's entries, after a rename) to the disk."""
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
