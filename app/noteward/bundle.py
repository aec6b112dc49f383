"""Signed file lists: what `make dist` signs and `noteward verify-bundle` checks.

A signed folder holds ``SHA256SUMS`` (``sha256sum`` format: every other file, sorted by path)
and ``SHA256SUMS.sig``, an Ed25519 signature over that file's bytes. Standard tools check it
with the release public key published apart from the bundle (installer/README.md):

    openssl pkeyutl -verify -pubin -inkey noteward-release.pub -rawin \\
        -in SHA256SUMS -sigfile SHA256SUMS.sig
    sha256sum --check --strict SHA256SUMS

`verify_tree` does the same and also fails on a file the list does not name (an extra
file), which ``sha256sum --check`` cannot see. The private key is never written
unencrypted: ``keygen`` refuses without a passphrase and ``load_signing_key`` refuses an
unencrypted key file (an environment variable holding the PEM, as CI secret stores give it,
may be unencrypted).
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from noteward.core.errors import UsageError

SUMS = "SHA256SUMS"
SIG = "SHA256SUMS.sig"
KEY_ENV = "NOTEWARD_SIGNING_KEY"  # the PEM text itself
KEY_FILE_ENV = "NOTEWARD_SIGNING_KEY_FILE"  # a passphrase-protected PEM file
PASSPHRASE_ENV = "NOTEWARD_SIGNING_KEY_PASSPHRASE"
DEFAULT_PUBLIC_KEY = Path("/etc/noteward/noteward-release.pub")
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The file's SHA-256 in hex, read in 1 MiB chunks (model files are hundreds of MB)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_files(root: Path) -> list[str]:
    """Every file under ``root`` (symlinks to files included, directories not followed
    through links), as sorted POSIX paths relative to ``root``; the two signature files
    at the top are left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
            rel = (here / name).relative_to(root).as_posix()
            if rel not in (SUMS, SIG):
                found.append(rel)
    return sorted(found)


def sums_text(root: Path) -> bytes:
    """``sha256sum``-format lines for every file under ``root`` (see ``tree_files``)."""
    lines = [f"{sha256_file(root / rel)}  {rel}" for rel in tree_files(root)]
    return ("\n".join(lines) + "\n").encode()


def parse_sums(text: bytes) -> dict[str, str]:
    """path -> sha256 from ``sha256sum`` output (text or binary mode marker)."""
    out = {}
    for line in text.decode().splitlines():
        if line.strip():
            digest, rel = line.split(None, 1)
            out[rel.lstrip("*")] = digest.lower()
    return out


# ---------------------------------------------------------------------------- keys


def _passphrase(prompt: str, confirm: bool = False) -> bytes:
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env.encode()
    if not sys.stdin.isatty():
        raise UsageError(
            f"The signing key needs its passphrase: set {PASSPHRASE_ENV} or run in a terminal."
        )
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != first:
        raise UsageError("The passphrases differ; nothing was written.")
    return first.encode()


def keygen(keydir: Path, passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Write a new release key pair: ``noteward-release.key`` (PKCS#8 PEM encrypted with the
    passphrase, mode 0600) and ``noteward-release.pub`` (to publish apart from bundles)."""
    secret = (
        passphrase if passphrase is not None else _passphrase("Passphrase for the new key: ", True)
    )
    if len(secret) < 12:
        raise UsageError(
            "The signing key's passphrase must have at least 12 characters; nothing was written."
        )
    keydir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    priv, pub = keydir / "noteward-release.key", keydir / "noteward-release.pub"
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(secret),
            )
        )
    pub.write_bytes(public_pem(key))
    return priv, pub


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_pem(pem: bytes, where: str, allow_unencrypted: bool) -> Ed25519PrivateKey:
    encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
    if not encrypted and not allow_unencrypted:
        raise UsageError(
            f"{where} is not passphrase-protected; encrypt it (openssl pkey -in KEY -aes256 -out "
            "KEY.enc) and remove the plain copy. Nothing was signed."
        )
    try:
        key = serialization.load_pem_private_key(
            pem, password=_passphrase(f"Passphrase for {where}: ") if encrypted else None
        )
    except (ValueError, TypeError):
        raise UsageError(f"{where} could not be read: wrong passphrase or not a PEM key.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{where} is not an Ed25519 key.")
    return key


def load_signing_key(keyfile: Path | None = None) -> Ed25519PrivateKey | None:
    """The release key: ``keyfile``, else $NOTEWARD_SIGNING_KEY (PEM text), else the file in
    $NOTEWARD_SIGNING_KEY_FILE; None when none is configured."""
    if keyfile is not None:
        return _load_pem(keyfile.read_bytes(), str(keyfile), allow_unencrypted=False)
    if os.environ.get(KEY_ENV):
        return _load_pem(os.environ[KEY_ENV].encode(), f"${KEY_ENV}", allow_unencrypted=True)
    if os.environ.get(KEY_FILE_ENV):
        path = Path(os.environ[KEY_FILE_ENV])
        return _load_pem(path.read_bytes(), str(path), allow_unencrypted=False)
    return None


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        pub = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"The public key {path} could not be read ({exc.strerror}).") from None
    except ValueError:
        raise UsageError(f"{path} is not a PEM public key.") from None
    if not isinstance(pub, Ed25519PublicKey):
        raise UsageError(f"{path} is not an Ed25519 public key.")
    return pub


# ---------------------------------------------------------------------- sign, verify


def sign_tree(root: Path, key: Ed25519PrivateKey) -> int:
    """Write SHA256SUMS over every file under ``root`` and its signature; returns the count."""
    text = sums_text(root)
    (root / SUMS).write_bytes(text)
    (root / SIG).write_bytes(key.sign(text))
    return len(text.splitlines())


@dataclass
class Verdict:
    """What a verification found; ``ok`` only when the signature and every file match."""

    signature_ok: bool
    files: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.signature_ok and not (self.changed or self.missing or self.extra)

    def message(self) -> str:
        if not self.signature_ok:
            return (
                "VERIFY FAILED: the signature does not match this public key (or "
                f"{SUMS} / {SIG} is missing); do not use this copy."
            )
        if self.ok:
            return f"verified: {self.files} files match the signed list."

        def some(paths: list[str]) -> str:
            return ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")

        parts = [
            f"{label} {len(p)}: {some(p)}"
            for label, p in (
                ("changed", self.changed),
                ("missing", self.missing),
                ("not in the signed list", self.extra),
            )
            if p
        ]
        return (
            "VERIFY FAILED: files differ from the signed list ("
            + "; ".join(parts)
            + "); do not use this copy."
        )


def verify_tree(root: Path, pub: Ed25519PublicKey) -> Verdict:
    """Check ``root``'s signature with ``pub``, then every file against the signed list:
    a changed, missing or extra file fails."""
    try:
        recorded = (root / SUMS).read_bytes()
        pub.verify((root / SIG).read_bytes(), recorded)
    except (OSError, InvalidSignature):
        return Verdict(signature_ok=False)
    listed = parse_sums(recorded)
    present = tree_files(root)
    verdict = Verdict(signature_ok=True, files=len(listed))
    verdict.extra = [p for p in present if p not in listed]
    present_set = set(present)
    for rel, digest in listed.items():
        if rel not in present_set:
            verdict.missing.append(rel)
        elif sha256_file(root / rel) != digest:
            verdict.changed.append(rel)
    return verdict


# ------------------------------------------------------------------ noteward verify-bundle


def installed_root() -> Path | None:
    """The installed bundle's top folder (``/opt/noteward``) when running from one."""
    meipass = getattr(sys, "_MEIPASS", None)
    return Path(meipass).parent if meipass else None


def register(sub: Any, groups: dict[str, Any]) -> None:
    """Add `noteward verify-bundle`."""
    p = sub.add_parser(
        "verify-bundle",
        help="check an installed copy against its signed file list",
        description=(
            "Check every file of an installed Noteward against the SHA256SUMS signed at "
            "build time, with the release public key published apart from the bundle. "
            "A changed, missing or extra file, or another key, fails (exit 1)."
        ),
    )
    p.add_argument(
        "--root", help="the installed folder (default: the running bundle's, /opt/noteward)"
    )
    p.add_argument("--public-key", help=f"the release public key (default: {DEFAULT_PUBLIC_KEY})")
    p.set_defaults(handler=cmd_verify_bundle)


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    root = Path(args.root) if args.root else installed_root()
    if root is None:
        raise UsageError("This Noteward does not run from an installed bundle: give --root DIR.")
    pubfile = Path(args.public_key) if args.public_key else DEFAULT_PUBLIC_KEY
    if not pubfile.exists():
        raise UsageError(
            f"No public key at {pubfile}: give --public-key with the release key your IT "
            "department published (never the one inside a bundle)."
        )
    verdict = verify_tree(root, load_public_key(pubfile))
    print(verdict.message())
    return 0 if verdict.ok else 1
