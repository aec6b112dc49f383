"""SQLite's locks are unreliable on network file systems (NFS, SMB/CIFS): two workstations
could both write and corrupt the vault. A vault on one is refused with a clear message.
The detection reads a mounts table, so it is tested by passing one."""

from __future__ import annotations

from pathlib import Path

import pytest

from noteward.core.errors import NotewardError
from tests.conftest import PASSPHRASE
from tests.support.cli import noteward

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw,relatime 0 0
server:/export/home /home nfs4 rw,relatime,vers=4.2 0 0
/dev/vdb /home/local ext4 rw,relatime 0 0
//fileserver/clinic /mnt/clinic cifs rw,relatime 0 0
//fileserver/smb3 /mnt/smb3 smb3 rw,relatime 0 0
server:/old /mnt/old\\040share nfs rw 0 0
sshfs#me@host: /mnt/ssh fuse.sshfs rw 0 0
tmpfs /tmp tmpfs rw 0 0
"""


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("/home/alice/vaults", "nfs4"),
        ("/home", "nfs4"),
        ("/home/local/vaults", None),  # a local disk mounted below the share
        ("/homework", None),  # a prefix of the name is not a parent folder
        ("/mnt/clinic/dr x", "cifs"),
        ("/mnt/smb3", "smb3"),
        ("/mnt/old share/v", "nfs"),  # mount points escape spaces as \\040
        ("/mnt/ssh/v", "fuse.sshfs"),
        ("/tmp/v", None),
        ("/var/lib", None),
    ],
)
def test_network_filesystem_detection(folder: str, expected: str | None) -> None:
    from noteward.store.vault import network_filesystem

    assert network_filesystem(Path(folder), MOUNTS) == expected


def test_vault_on_a_network_share_is_refused(vault_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from noteward.store import vault as vault_module

    vault_module.Vault.create(vault_path, PASSPHRASE).close()
    # A fake mounts table is the only way to put the folder on a network share here.
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS + f"server:/share {vault_path.parent} nfs4 rw 0 0\n")
    monkeypatch.setattr(vault_module, "MOUNTS_TABLE", mounts)
    with pytest.raises(NotewardError, match="network share") as info:
        vault_module.Vault.open(vault_path, PASSPHRASE)
    assert "nfs4" in str(info.value)
    with pytest.raises(NotewardError, match="network share"):
        vault_module.Vault.create(vault_path.with_name("other.nwv"), PASSPHRASE)
    assert not vault_path.with_name("other.nwv").exists()
    # the real mounts table (another process) does not put it on a share: it opens
    r = noteward("check", "--vault", str(vault_path), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
