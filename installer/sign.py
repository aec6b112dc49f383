"""Sign and verify an offline build: Ed25519 over the SHA-256 list of every file in it.

    python installer/sign.py keygen KEYDIR          # once, by the release manager
    python installer/sign.py sign BUILD_DIR KEY     # writes SHA256SUMS and SHA256SUMS.sig
    python installer/sign.py verify BUILD_DIR PUB   # IT staff, before installing

Only the standard library and `cryptography` (already a dependency) are used.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SUMS = "SHA256SUMS"


def _sums(build: Path) -> bytes:
    lines = []
    for f in sorted(p for p in build.rglob("*") if p.is_file() and p.name not in (SUMS, SUMS + ".sig")):
        lines.append(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(build).as_posix()}")
    return ("\n".join(lines) + "\n").encode()


def keygen(keydir: Path) -> None:
    keydir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    (keydir / "noteward-release.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (keydir / "noteward-release.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (keydir / "noteward-release.key").chmod(0o600)
    print(f"keys written to {keydir}")


def sign(build: Path, keyfile: Path) -> None:
    key = serialization.load_pem_private_key(keyfile.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    sums = _sums(build)
    (build / SUMS).write_bytes(sums)
    (build / (SUMS + ".sig")).write_bytes(key.sign(sums))
    print(f"signed {len(sums.splitlines())} files in {build}")


def verify(build: Path, pubfile: Path) -> int:
    pub = serialization.load_pem_public_key(pubfile.read_bytes())
    assert isinstance(pub, Ed25519PublicKey)
    try:
        recorded = (build / SUMS).read_bytes()
        pub.verify((build / (SUMS + ".sig")).read_bytes(), recorded)
    except (OSError, InvalidSignature):
        print("VERIFY FAILED: the signature does not match; do not install this build.")
        return 1
    if _sums(build) != recorded:
        print("VERIFY FAILED: files differ from the signed list; do not install this build.")
        return 1
    print(f"verified: {len(recorded.splitlines())} files match the signed list.")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "keygen":
        keygen(Path(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "sign":
        sign(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) == 3 and argv[0] == "verify":
        return verify(Path(argv[1]), Path(argv[2]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
