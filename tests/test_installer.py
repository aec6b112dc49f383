"""installer/sign.py, the release manager's signing tool: a signed folder verifies; a changed
byte, an extra file or another key fails; the private key is written only encrypted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("nw_sign", REPO / "installer" / "sign.py")
assert spec and spec.loader
sign = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sign)


def test_sign_and_verify(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("NOTEWARD_SIGNING_KEY_PASSPHRASE", "a throw-away test passphrase")
    keys, build = tmp_path / "keys", tmp_path / "build"
    (build / "wheels").mkdir(parents=True)
    (build / "wheels" / "a.whl").write_bytes(b"wheel bytes")
    (build / "install.sh").write_text("echo hi\n")
    assert sign.main(["keygen", str(keys)]) == 0
    assert (
        (keys / "noteward-release.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    )
    assert sign.main(["sign", str(build), str(keys / "noteward-release.key")]) == 0
    assert sign.main(["verify", str(build), str(keys / "noteward-release.pub")]) == 0
    (build / "wheels" / "a.whl").write_bytes(b"wheel bytez")
    assert sign.main(["verify", str(build), str(keys / "noteward-release.pub")]) == 1
    (build / "wheels" / "a.whl").write_bytes(b"wheel bytes")
    (build / "extra.sh").write_text("curl evil\n")
    assert sign.main(["verify", str(build), str(keys / "noteward-release.pub")]) == 1
    other = tmp_path / "other"
    assert sign.main(["keygen", str(other)]) == 0
    (build / "extra.sh").unlink()
    assert sign.main(["verify", str(build), str(other / "noteward-release.pub")]) == 1
    assert "VERIFY FAILED" in capsys.readouterr().out
