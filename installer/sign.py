"""Sign and verify a folder: Ed25519 over the SHA-256 list of every file in it.

    python installer/sign.py keygen KEYDIR          # once, by the release manager
    python installer/sign.py sign BUILD_DIR [KEY]   # writes SHA256SUMS and SHA256SUMS.sig
    python installer/sign.py verify BUILD_DIR PUB   # the release manager's own check

`make dist` signs with the same code (noteward.bundle). IT staff do not run this file from a
bundle they were sent: they check with openssl and sha256sum against the public key
published apart from it (installer/README.md). The private key is written only encrypted:
its passphrase comes from NOTEWARD_SIGNING_KEY_PASSPHRASE or is asked for; `sign` without
KEY reads NOTEWARD_SIGNING_KEY or NOTEWARD_SIGNING_KEY_FILE.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

from noteward.bundle import keygen, load_public_key, load_signing_key, sign_tree, verify_tree  # noqa: E402
from noteward.core.errors import NotewardError  # noqa: E402


def main(argv: list[str]) -> int:
    try:
        if len(argv) == 2 and argv[0] == "keygen":
            priv, pub = keygen(Path(argv[1]))
            print(f"encrypted private key: {priv}; public key to publish: {pub}")
            return 0
        if len(argv) in (2, 3) and argv[0] == "sign":
            key = load_signing_key(Path(argv[2]) if len(argv) == 3 else None)
            if key is None:
                print("no key: give KEY or set NOTEWARD_SIGNING_KEY / NOTEWARD_SIGNING_KEY_FILE")
                return 2
            print(f"signed {sign_tree(Path(argv[1]), key)} files in {argv[1]}")
            return 0
        if len(argv) == 3 and argv[0] == "verify":
            verdict = verify_tree(Path(argv[1]), load_public_key(Path(argv[2])))
            print(verdict.message())
            return 0 if verdict.ok else 1
    except NotewardError as exc:
        print(f"sign.py: {exc}", file=sys.stderr)
        return exc.exit_code
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
