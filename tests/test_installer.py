"""The offline bundle's signature: a signed folder verifies; any changed byte fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("nw_sign", REPO / "installer" / "sign.py")
assert spec and spec.loader
sign = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sign)


def test_sign_and_verify(tmp_path: Path, capsys):
    keys, build = tmp_path / "keys", tmp_path / "build"
    (build / "wheels").mkdir(parents=True)
    (build / "wheels" / "a.whl").write_bytes(b"wheel bytes")
    (build / "install.sh").write_text("echo hi\n")
    sign.keygen(keys)
    sign.sign(build, keys / "noteward-release.key")
    assert sign.verify(build, keys / "noteward-release.pub") == 0
    (build / "wheels" / "a.whl").write_bytes(b"wheel bytez")
    assert sign.verify(build, keys / "noteward-release.pub") == 1
    (build / "wheels" / "a.whl").write_bytes(b"wheel bytes")
    (build / "extra.sh").write_text("curl evil\n")
    assert sign.verify(build, keys / "noteward-release.pub") == 1
    other = tmp_path / "other"
    sign.keygen(other)
    (build / "extra.sh").unlink()
    assert sign.verify(build, other / "noteward-release.pub") == 1
    assert "VERIFY FAILED" in capsys.readouterr().out
