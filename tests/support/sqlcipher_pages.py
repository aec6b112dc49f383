"""An independent reader of SQLCipher 4 files, for tests that must look at every byte.

SQLite only shows the live rows; erasure tests need to see what is still *on disk*: free
pages, stale FTS segments, old WAL frames. This module decrypts every page of a vault file
and every frame of its WAL with the vault key, using the ``cryptography`` package and
SQLCipher 4's documented defaults (not SQLCipher itself, so it is a second opinion):

- the first 16 bytes of the file are the KDF salt;
- key = PBKDF2-HMAC-SHA512(passphrase, salt, 256,000 iterations, 32 bytes) for a vault
  keyed by its passphrase; for a vault with accounts, the 32-byte raw data key that the
  passphrase unwraps from the key file beside it (``<vault>.keys``; the unwrapping is
  Noteward's own code, the page decryption below is not);
- HMAC key = PBKDF2-HMAC-SHA512(key, salt XOR 0x3a, 2 iterations, 32 bytes);
- pages of 4,096 bytes, each ending in 80 reserved bytes: a 16-byte IV, then a 64-byte
  HMAC-SHA512 over (ciphertext || IV || page number as 4 little-endian bytes);
- AES-256-CBC over the rest of the page (page 1's ciphertext starts at byte 16, after
  the salt, and its plaintext header is "SQLite format 3\\0" in place of the salt);
- a WAL is a 32-byte plaintext header, then frames of a 24-byte plaintext frame header
  (page number, big-endian, first) followed by one page encrypted as in the main file.

Every page's HMAC is checked, so a wrong key or a misread layout fails loudly instead of
yielding garbage that would make a "text is absent" assertion pass vacuously.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PAGE_SIZE = 4096
RESERVE = 80  # 16-byte IV + 64-byte HMAC-SHA512
IV_SIZE = 16
HMAC_SIZE = 64
SALT_SIZE = 16
KDF_ITER = 256_000
HMAC_KDF_ITER = 2
HMAC_SALT_MASK = 0x3A
WAL_HEADER_SIZE = 32
WAL_FRAME_HEADER_SIZE = 24
SQLITE_HEADER = b"SQLite format 3\x00"
ZERO_PAGE = bytes(PAGE_SIZE)


class PageAuthError(ValueError):
    """A page's HMAC does not match: wrong key, or the bytes were changed."""


@dataclass(frozen=True)
class Keys:
    cipher_key: bytes
    hmac_key: bytes
    salt: bytes


@lru_cache(maxsize=8)
def derive_keys(passphrase: str | bytes, salt: bytes) -> Keys:
    """SQLCipher 4 default key derivation (cached: PBKDF2 at 256k rounds is slow); bytes
    are a raw key, used as they are (SQLCipher skips its KDF for ``x'...'`` keys)."""
    if isinstance(passphrase, bytes):
        key = passphrase
    else:
        key = hashlib.pbkdf2_hmac("sha512", passphrase.encode("utf-8"), salt, KDF_ITER, 32)
    hmac_salt = bytes(b ^ HMAC_SALT_MASK for b in salt)
    hkey = hashlib.pbkdf2_hmac("sha512", key, hmac_salt, HMAC_KDF_ITER, 32)
    return Keys(key, hkey, salt)


def vault_key(db_path: str | Path, passphrase: str | bytes, user: str | None = None) -> str | bytes:
    """The key for ``db_path``'s pages: the data key ``passphrase`` unwraps from the key file
    beside it, or the passphrase itself (no key file: an older single-passphrase vault)."""
    if isinstance(passphrase, bytes):
        return passphrase
    from noteward.core.errors import VaultLockedError
    from noteward.store.keys import KeyFile, key_file_path

    db_path = Path(db_path)
    if db_path.name.endswith("-wal"):
        db_path = db_path.with_name(db_path.name[: -len("-wal")])
    keyfile = KeyFile.load(key_file_path(db_path))
    if keyfile is None:
        return passphrase
    try:
        return keyfile.unlock(user or keyfile.default_user, passphrase)[1]
    except VaultLockedError:
        raise PageAuthError("page 1: the passphrase unwraps no key from the key file") from None


def read_salt(db_path: str | Path) -> bytes:
    with open(db_path, "rb") as fh:
        salt = fh.read(SALT_SIZE)
    if len(salt) != SALT_SIZE:
        raise ValueError(f"{db_path} is too short to hold a SQLCipher salt")
    return salt


def decrypt_page(raw: bytes, pgno: int, keys: Keys, *, verify: bool = True) -> bytes:
    """Decrypt one on-disk page. Returns the plaintext page (4,096 bytes, with SQLite's
    plaintext header restored on page 1 and the reserve area zeroed)."""
    if len(raw) != PAGE_SIZE:
        raise ValueError(f"page {pgno}: {len(raw)} bytes, expected {PAGE_SIZE}")
    if raw == ZERO_PAGE and pgno != 1:
        # Never written: SQLite can grow the file ahead of a checkpoint (size hint), which
        # leaves zero-filled pages. They hold no data, so there is nothing to decrypt.
        return ZERO_PAGE
    offset = SALT_SIZE if pgno == 1 else 0
    body_end = PAGE_SIZE - RESERVE
    ciphertext = raw[offset:body_end]
    iv = raw[body_end : body_end + IV_SIZE]
    mac = raw[body_end + IV_SIZE : PAGE_SIZE]
    if verify:
        expected = hmac.new(
            keys.hmac_key, ciphertext + iv + struct.pack("<I", pgno), hashlib.sha512
        ).digest()
        if not hmac.compare_digest(expected, mac):
            raise PageAuthError(f"page {pgno}: HMAC mismatch (wrong key or altered page)")
    dec = Cipher(algorithms.AES(keys.cipher_key), modes.CBC(iv)).decryptor()
    plain = dec.update(ciphertext) + dec.finalize()
    head = SQLITE_HEADER if pgno == 1 else b""
    return head + plain + bytes(RESERVE)


def db_pages(db_path: str | Path, passphrase: str | bytes) -> list[bytes]:
    """Decrypt every page of the main database file, free pages included."""
    data = Path(db_path).read_bytes()
    if len(data) % PAGE_SIZE:
        raise ValueError(f"{db_path}: {len(data)} bytes is not a whole number of pages")
    keys = derive_keys(vault_key(db_path, passphrase), data[:SALT_SIZE])
    return [
        decrypt_page(data[i : i + PAGE_SIZE], i // PAGE_SIZE + 1, keys)
        for i in range(0, len(data), PAGE_SIZE)
    ]


@dataclass(frozen=True)
class WalFrame:
    index: int
    pgno: int
    commit_size: int  # non-zero for a commit frame: database size in pages after it
    salt: tuple[int, int]
    page: bytes


def wal_frames(wal_path: str | Path, passphrase: str | bytes, salt: bytes) -> list[WalFrame]:
    """Decrypt every frame in a WAL file, stale frames from earlier generations included
    (they are what could still leak). ``salt`` is the main database's KDF salt."""
    data = Path(wal_path).read_bytes() if Path(wal_path).exists() else b""
    if not data:
        return []
    if len(data) < WAL_HEADER_SIZE:
        raise ValueError(f"{wal_path}: truncated WAL header")
    magic, _version, page_size = struct.unpack(">III", data[:12])
    if magic not in (0x377F0682, 0x377F0683):
        raise ValueError(f"{wal_path}: not a WAL file (magic {magic:#x})")
    if page_size != PAGE_SIZE:
        raise ValueError(f"{wal_path}: page size {page_size}, expected {PAGE_SIZE}")
    keys = derive_keys(vault_key(wal_path, passphrase), salt)
    frames = []
    frame_size = WAL_FRAME_HEADER_SIZE + PAGE_SIZE
    pos, index = WAL_HEADER_SIZE, 0
    while pos + frame_size <= len(data):
        pgno, commit, s1, s2 = struct.unpack(">IIII", data[pos : pos + 16])
        raw = data[pos + WAL_FRAME_HEADER_SIZE : pos + frame_size]
        frames.append(WalFrame(index, pgno, commit, (s1, s2), decrypt_page(raw, pgno, keys)))
        pos += frame_size
        index += 1
    if pos != len(data):
        raise ValueError(f"{wal_path}: {len(data) - pos} trailing bytes after the last frame")
    return frames


def all_plaintext(db_path: str | Path, passphrase: str | bytes) -> list[tuple[str, bytes]]:
    """Every decrypted page of the database and its WAL, labelled for error messages."""
    db_path = Path(db_path)
    salt = read_salt(db_path)
    out = [(f"db page {i + 1}", p) for i, p in enumerate(db_pages(db_path, passphrase))]
    wal = Path(str(db_path) + "-wal")
    out += [
        (f"wal frame {f.index} (page {f.pgno})", f.page) for f in wal_frames(wal, passphrase, salt)
    ]
    return out


def btree_page_type(page: bytes, pgno: int) -> int:
    """The b-tree page-type byte (2, 5, 10, 13 for b-tree pages; 0 for free/overflow)."""
    return page[100 if pgno == 1 else 0]
