"""Clinician accounts: the vault's random data key, unwrapped by each user's passphrase.

The vault is encrypted under 32 random bytes (an SQLCipher raw key). Who may unwrap them
is kept in a small key file beside the vault (``<vault>.keys``, 0600, replaced atomically),
because it must be read before the vault can be opened. Each entry holds:

- scrypt parameters and salt; scrypt(passphrase) is the key-encryption key (KEK);
- the user's X25519 private key, AES-GCM-wrapped under the KEK;
- the data key, sealed to the user's X25519 public key (ephemeral X25519 + HKDF + AES-GCM).

Why the extra key pair rather than the data key wrapped under the KEK directly: removing
a user rotates the data key, and the remaining users' entries must be renewed without
knowing their passphrases. Sealing to a public key needs no passphrase; only the private
key, which only the passphrase unwraps, opens the seal.

Every AES-GCM call binds the vault id, the entry's kind, name and role as associated data,
so an entry whose name or role was edited (or one copied from another vault) does not
open. The user list is also mirrored inside the vault (``users`` table, covered by the
audit trail); the vault's copy is authoritative and an unlock whose key-file entry the
vault does not list with the same role is refused (see :meth:`Vault.open`).

A recovery entry (optional, made at ``init``) is sealed the same way under a random
recovery key shown once; it unwraps the data key so an admin passphrase can be set again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from noteward.core.errors import NotewardError, UsageError, VaultLockedError
from noteward.store.files import fsync_path, write_private_text

FORMAT = "noteward-keys"
VERSION = 1
SUFFIX = ".keys"
NEXT_SUFFIX = ".keys.next"
ROLES = ("clinician", "admin")
DATA_KEY_BYTES = 32
# scrypt at 2**15 x 8: 32 MiB and about 0.1 s per unlock on one core; the parameters are
# stored per entry, so a later Noteward can raise them for new passphrases.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
RECOVERY_BYTES = 20  # 160 bits, shown as 8 groups of base32
NAME_MAX = 64
WRONG_PASSPHRASE = "wrong passphrase or not a Noteward vault"


@dataclass(frozen=True)
class User:
    """Who has the vault open: the name recorded with every audit event, and the role
    that decides what the app lets them do."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def key_file_path(vault_path: str | Path) -> Path:
    p = Path(vault_path)
    return p.with_name(p.name + SUFFIX)


def next_key_file_path(vault_path: str | Path) -> Path:
    p = Path(vault_path)
    return p.with_name(p.name + NEXT_SUFFIX)


def check_user_name(name: str) -> str:
    """A user name: 1 to 64 printable characters, no spaces at either end (it is shown in
    the audit list and the status bar)."""
    if not name or name != name.strip() or len(name) > NAME_MAX or not name.isprintable():
        raise UsageError(
            f"A user name must be 1 to {NAME_MAX} printable characters without spaces at either "
            "end; nothing was changed."
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"A role is one of {', '.join(ROLES)}; nothing was changed.")
    return role


def new_data_key() -> bytes:
    return secrets.token_bytes(DATA_KEY_BYTES)


def new_recovery_key() -> str:
    """A recovery key for people to write down: 8 groups of 4 base32 characters."""
    raw = base64.b32encode(secrets.token_bytes(RECOVERY_BYTES)).decode("ascii")
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def _normalise_recovery(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: Any) -> bytes:
    return base64.b64decode(str(s), validate=True)


def _kek(secret: str, kdf: dict[str, Any]) -> bytes:
    data = unicodedata.normalize("NFC", secret).encode("utf-8")
    return Scrypt(
        salt=_unb64(kdf["salt"]), length=32, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"])
    ).derive(data)


def _box_key(shared: bytes, ephemeral: bytes, public: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"noteward data key box" + ephemeral + public,
    ).derive(shared)


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


class KeyFile:
    """The wrapped data keys of one vault (see the module docstring)."""

    def __init__(
        self, vault_id: str, entries: list[dict[str, Any]], default_user: str, generation: int = 1
    ) -> None:
        self.vault_id = vault_id
        self.entries = entries
        self.default_user = default_user
        self.generation = generation

    # -- reading and writing ---------------------------------------------------------------

    @classmethod
    def new(cls) -> KeyFile:
        return cls(secrets.token_hex(16), [], "")

    @classmethod
    def load(cls, path: str | Path) -> KeyFile | None:
        """The key file at ``path``; None when there is none. A damaged one is an error
        that names the file (it is never rewritten: restore it from a backup's copy)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise NotewardError(
                f"The vault's key file {path} cannot be read ({exc.strerror})."
            ) from None
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT or int(data.get("version", 0)) != VERSION:
                raise ValueError("format")
            entries = list(data["entries"])
            for e in entries:
                if e["kind"] not in ("user", "recovery") or not isinstance(e["name"], str):
                    raise ValueError("entry")
            return cls(
                str(data["vault_id"]),
                entries,
                str(data.get("default_user", "")),
                int(data["generation"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise VaultLockedError(
                f"The vault's key file {path} is damaged; nobody can unlock the vault until it is "
                "replaced by a good copy (every backup has one beside it, `<backup>.keys`)."
            ) from None

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "vault_id": self.vault_id,
                "generation": self.generation,
                "default_user": self.default_user,
                "entries": self.entries,
            },
            indent=1,
        )

    def save(self, path: str | Path) -> None:
        """Replace the file atomically (0600, fsync'd, renamed in, folder flushed)."""
        path = Path(path)
        write_private_text(path, self.to_json())
        with contextlib.suppress(OSError):
            fsync_path(path.parent, directory=True)

    # -- entries -----------------------------------------------------------------------------

    def users(self) -> list[User]:
        return [User(e["name"], e["role"]) for e in self.entries if e["kind"] == "user"]

    def has_recovery(self) -> bool:
        return any(e["kind"] == "recovery" for e in self.entries)

    def _entry(self, kind: str, name: str) -> dict[str, Any] | None:
        for e in self.entries:
            if e["kind"] == kind and e["name"] == name:
                return e
        return None

    def _aad(self, e: dict[str, Any], what: str) -> bytes:
        return json.dumps([FORMAT, self.vault_id, e["kind"], e["name"], e["role"], what]).encode(
            "utf-8"
        )

    def _make_entry(
        self, kind: str, name: str, role: str, secret: str, data_key: bytes
    ) -> dict[str, Any]:
        kdf = {
            "alg": "scrypt",
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": _b64(secrets.token_bytes(16)),
        }
        private = X25519PrivateKey.generate()
        e: dict[str, Any] = {
            "kind": kind,
            "name": name,
            "role": role,
            "kdf": kdf,
            "public": _b64(_raw_public(private.public_key())),
        }
        nonce = secrets.token_bytes(12)
        e["private"] = {
            "nonce": _b64(nonce),
            "ct": _b64(
                AESGCM(_kek(secret, kdf)).encrypt(
                    nonce, _raw_private(private), self._aad(e, "private key")
                )
            ),
        }
        self._seal(e, data_key)
        return e

    def _seal(self, e: dict[str, Any], data_key: bytes) -> None:
        public = _unb64(e["public"])
        ephemeral = X25519PrivateKey.generate()
        eph_pub = _raw_public(ephemeral.public_key())
        key = _box_key(
            ephemeral.exchange(X25519PublicKey.from_public_bytes(public)), eph_pub, public
        )
        nonce = secrets.token_bytes(12)
        e["box"] = {
            "ephemeral": _b64(eph_pub),
            "nonce": _b64(nonce),
            "ct": _b64(AESGCM(key).encrypt(nonce, data_key, self._aad(e, "data key"))),
        }

    def _open(self, e: dict[str, Any], secret: str) -> bytes | None:
        """The data key this entry holds, or None when ``secret`` does not unwrap it (or the
        entry was edited: its AES-GCM tags bind its name and role)."""
        try:
            kek = _kek(secret, e["kdf"])
            raw = AESGCM(kek).decrypt(
                _unb64(e["private"]["nonce"]),
                _unb64(e["private"]["ct"]),
                self._aad(e, "private key"),
            )
            private = X25519PrivateKey.from_private_bytes(raw)
            public = _unb64(e["public"])
            if _raw_public(private.public_key()) != public:
                return None
            eph = _unb64(e["box"]["ephemeral"])
            key = _box_key(private.exchange(X25519PublicKey.from_public_bytes(eph)), eph, public)
            return AESGCM(key).decrypt(
                _unb64(e["box"]["nonce"]), _unb64(e["box"]["ct"]), self._aad(e, "data key")
            )
        except (InvalidTag, ValueError, KeyError, TypeError):
            return None

    def unlock(self, name: str, passphrase: str) -> tuple[User, bytes]:
        """The user and the data key their passphrase unwraps; VaultLockedError (the same
        message for an unknown user and a wrong passphrase) otherwise."""
        e = self._entry("user", name)
        if e is None:
            raise VaultLockedError(f"{WRONG_PASSPHRASE} (this vault has no user {name!r})")
        key = self._open(e, passphrase)
        if key is None:
            raise VaultLockedError(WRONG_PASSPHRASE)
        return User(e["name"], e["role"]), key

    def unlock_recovery(self, code: str) -> bytes:
        e = self._entry("recovery", "")
        key = self._open(e, _normalise_recovery(code)) if e is not None else None
        if key is None:
            raise VaultLockedError(
                "This is not the vault's recovery key (or the vault has none); nothing was changed."
            )
        return key

    def set_user(self, name: str, role: str, passphrase: str, data_key: bytes) -> None:
        """Add a user, or give an existing one a new passphrase (a fresh key pair)."""
        check_user_name(name)
        check_role(role)
        e = self._make_entry("user", name, role, passphrase, data_key)
        old = self._entry("user", name)
        if old is not None:
            self.entries[self.entries.index(old)] = e
        else:
            self.entries.append(e)
        if not self.default_user and role == "admin":
            self.default_user = name

    def set_recovery(self, code: str, data_key: bytes) -> None:
        old = self._entry("recovery", "")
        if old is not None:
            self.entries.remove(old)
        self.entries.append(
            self._make_entry("recovery", "", "admin", _normalise_recovery(code), data_key)
        )

    def remove_user(self, name: str) -> None:
        e = self._entry("user", name)
        if e is None:
            raise UsageError(f"No user {name!r} in this vault; nothing was changed.")
        self.entries.remove(e)
        if self.default_user == name:
            admins = [u.name for u in self.users() if u.is_admin]
            self.default_user = admins[0] if admins else ""

    def reseal(self, data_key: bytes) -> None:
        """Seal a new data key to every entry's public key (a rotation: no passphrase is
        needed, and an entry removed before cannot open the new seal)."""
        for e in self.entries:
            self._seal(e, data_key)
        self.generation += 1

    def copy(self) -> KeyFile:
        return KeyFile(
            self.vault_id, json.loads(json.dumps(self.entries)), self.default_user, self.generation
        )


def sqlcipher_key(data_key: bytes) -> str:
    """The PRAGMA key value for a raw 32-byte key (SQLCipher skips its KDF for it)."""
    return f"\"x'{data_key.hex()}'\""


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
