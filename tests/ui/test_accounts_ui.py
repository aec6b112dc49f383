"""The unlock dialog asks for a user and a passphrase; the status bar shows who is signed
in; auto-lock returns to the dialog, which offers the same user again (issue 14, part 2)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import PASSPHRASE
from tests.ui.conftest import unlock

BOB = "bob's own passphrase 2468"


def test_sign_in_as_a_user_and_auto_lock_back_to_the_dialog(
    qtbot, window, vault_path: Path
) -> None:  # noqa: ANN001
    from noteward.store import audit
    from noteward.store.vault import Vault

    v = Vault.create(vault_path, PASSPHRASE)
    v.add_user("bob", "clinician", BOB)
    v.close()
    dialog = window.request_unlock()
    assert not dialog.creating and dialog.user.text() == "admin"  # the vault's first admin
    assert window.signed_in.text() == ""
    dialog.user.setText("bob")
    dialog.passphrase.setText(BOB)
    with qtbot.waitSignal(window.patients_did_load, timeout=30_000):
        dialog.submit.click()
    assert not window.locked
    assert window.signed_in.text() == "Signed in: bob (clinician)"

    window.idle.set_minutes(0.002)  # 120 ms
    with qtbot.waitSignal(window.vault_did_lock, timeout=5_000):
        pass
    assert window.locked and window.signed_in.text() == ""
    dialog = window.vault_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.user.text() == "bob"  # the last user, not the default admin

    dialog.user.setText("nobody")
    dialog.passphrase.setText(BOB)
    dialog.submit.click()
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=20_000)
    assert "no user 'nobody'" in dialog.error.text() and window.locked
    dialog.user.setText("admin")
    window.idle.set_minutes(60)
    unlock(qtbot, window)
    assert window.signed_in.text() == "Signed in: admin (admin)"
    window.lock()
    with Vault.open(vault_path, PASSPHRASE, audit_unlock=False) as v:
        unlocks = [e["user"] for e in reversed(audit.events(v.conn)) if e["action"] == "unlock"]
    assert unlocks[-2:] == ["bob", "admin"]


def test_a_new_vault_names_its_first_admin(qtbot, window, vault_path: Path) -> None:  # noqa: ANN001
    from noteward.store.keys import KeyFile, key_file_path

    dialog = window.request_unlock()
    assert dialog.creating and dialog.user_label.text() == "First &admin:"
    dialog.user.setText("alice")
    dialog.passphrase.setText("short pass")
    dialog.repeat.setText("short pass")
    dialog.submit.click()
    assert dialog.error.isVisible() and "at least 12" in dialog.error.text()
    unlock(qtbot, window)
    assert window.signed_in.text() == "Signed in: alice (admin)"
    keyfile = KeyFile.load(key_file_path(vault_path))
    assert keyfile is not None and keyfile.default_user == "alice"
    window.lock()
