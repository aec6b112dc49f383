"""Release signing: the key is never written unencrypted, standard tools verify what we sign,
and `noteward verify-bundle` fails on a changed file, an extra file, a missing file or
another key."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import noteward

PASS = "release key passphrase 42"


def _tree(root: Path) -> Path:
    (root / "_internal" / "pkg").mkdir(parents=True)
    (root / "_internal" / "pkg" / "lib.so").write_bytes(b"\x7fELF" + bytes(range(200)))
    (root / "resources").mkdir()
    (root / "resources" / "rules.yaml").write_text("a: 1\n")
    (root / "noteward").write_text("#!/bin/sh\n")
    return root


def test_keygen_writes_only_an_encrypted_key(tmp_path: Path, monkeypatch):
    from noteward.bundle import keygen, load_signing_key
    from noteward.core.errors import UsageError

    with pytest.raises(UsageError, match="at least 12"):
        keygen(tmp_path / "short", b"short")
    assert not (tmp_path / "short" / "noteward-release.key").exists()
    priv, pub = keygen(tmp_path / "keys", PASS.encode())
    assert priv.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert priv.stat().st_mode & 0o777 == 0o600
    assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    monkeypatch.setenv("NOTEWARD_SIGNING_KEY_PASSPHRASE", "wrong passphrase!!")
    with pytest.raises(UsageError, match="wrong passphrase"):
        load_signing_key(priv)
    monkeypatch.setenv("NOTEWARD_SIGNING_KEY_PASSPHRASE", PASS)
    assert load_signing_key(priv) is not None
    # a plain key file is refused (the environment variable form may be plain)
    plain = tmp_path / "plain.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(priv), "-passin", f"pass:{PASS}", "-out", str(plain)],
        check=True,
    )
    with pytest.raises(UsageError, match="not passphrase-protected"):
        load_signing_key(plain)
    monkeypatch.setenv("NOTEWARD_SIGNING_KEY", plain.read_text())
    assert load_signing_key() is not None


def test_openssl_and_sha256sum_verify_what_we_sign(tmp_path: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from noteward.bundle import public_pem, sign_tree

    root = _tree(tmp_path / "rel")
    key = Ed25519PrivateKey.generate()
    (tmp_path / "pub.pem").write_bytes(public_pem(key))
    (tmp_path / "other.pem").write_bytes(public_pem(Ed25519PrivateKey.generate()))
    assert sign_tree(root, key) == 3

    def openssl(pub: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "openssl",
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                str(tmp_path / pub),
                "-rawin",
                "-in",
                "SHA256SUMS",
                "-sigfile",
                "SHA256SUMS.sig",
            ],
            cwd=root,
            capture_output=True,
            text=True,
        )

    ok = openssl("pub.pem")
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout
    assert openssl("other.pem").returncode != 0
    check = ["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"]
    assert subprocess.run(check, cwd=root).returncode == 0
    (root / "resources" / "rules.yaml").write_text("a: 2\n")
    assert subprocess.run(check, cwd=root, capture_output=True).returncode != 0


def test_verify_bundle_command(tmp_path: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from noteward.bundle import public_pem, sign_tree

    root = _tree(tmp_path / "opt")
    key = Ed25519PrivateKey.generate()
    pub, other = tmp_path / "pub.pem", tmp_path / "other.pem"
    pub.write_bytes(public_pem(key))
    other.write_bytes(public_pem(Ed25519PrivateKey.generate()))
    sign_tree(root, key)

    def verify(keyfile: Path):
        return noteward("verify-bundle", "--root", str(root), "--public-key", str(keyfile))

    good = verify(pub)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "verified: 3 files" in good.stdout
    bad = verify(other)
    assert bad.returncode == 1 and "signature does not match" in bad.stdout

    lib = root / "_internal" / "pkg" / "lib.so"
    original = lib.read_bytes()
    lib.write_bytes(original[:-1] + b"\x00")
    out = verify(pub)
    assert out.returncode == 1 and "changed 1: _internal/pkg/lib.so" in out.stdout
    lib.write_bytes(original)

    (root / "_internal" / "pkg" / "evil.so").write_bytes(b"x")
    out = verify(pub)
    assert out.returncode == 1 and "not in the signed list 1: _internal/pkg/evil.so" in out.stdout
    (root / "_internal" / "pkg" / "evil.so").unlink()

    shutil.move(root / "resources" / "rules.yaml", tmp_path / "rules.yaml")
    out = verify(pub)
    assert out.returncode == 1 and "missing 1: resources/rules.yaml" in out.stdout
    shutil.move(tmp_path / "rules.yaml", root / "resources" / "rules.yaml")
    assert verify(pub).returncode == 0

    no_key = noteward(
        "verify-bundle", "--root", str(root), "--public-key", str(tmp_path / "none.pub")
    )
    assert no_key.returncode == 2 and "published" in no_key.stderr
