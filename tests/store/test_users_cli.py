"""`noteward users ...`, `--user`/NOTEWARD_USER, the admin-only commands (exit 8) and
`noteward audit list --user U --patient P --since DATE --csv`, end to end in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE
from tests.support.cli import noteward

BOB = "bob's own passphrase 2468"


def test_users_end_to_end(tmp_path: Path) -> None:
    vault = str(tmp_path / "v" / "vault.nwv")
    bob_file = tmp_path / "bob.txt"
    bob_file.write_text(BOB + "\n")
    short = tmp_path / "short.txt"
    short.write_text("too short\n")

    r = noteward("init", "--vault", vault, "--user", "alice", "--recovery-key", passphrase="short")
    assert r.returncode == 2 and "at least 12 characters" in r.stderr, r.stderr
    r = noteward(
        "init", "--vault", vault, "--user", "alice", "--recovery-key", passphrase=PASSPHRASE
    )
    assert r.returncode == 0, r.stderr
    assert "first admin: alice" in r.stdout
    code = re.search(r"\n  ([A-Z2-7]{4}(?:-[A-Z2-7]{4}){7})\n", r.stdout)
    assert code, r.stdout

    r = noteward(
        "users",
        "add",
        "bob",
        "--role",
        "clinician",
        "--new-passphrase-file",
        str(short),
        "--vault",
        vault,
        passphrase=PASSPHRASE,
    )
    assert r.returncode == 2 and "at least 12" in r.stderr, r.stderr
    r = noteward(
        "users",
        "add",
        "bob",
        "--role",
        "clinician",
        "--new-passphrase-file",
        str(bob_file),
        "--vault",
        vault,
        passphrase=PASSPHRASE,
    )
    assert r.returncode == 0, r.stderr
    r = noteward("users", "list", "--json", "--vault", vault, passphrase=PASSPHRASE)
    assert json.loads(r.stdout) == [
        {"name": "alice", "role": "admin"},
        {"name": "bob", "role": "clinician"},
    ]

    # bob, by --user or NOTEWARD_USER: may read, may not do what only an admin may
    r = noteward(
        "patients", "--json", "--vault", vault, passphrase=BOB, env={"NOTEWARD_USER": "bob"}
    )
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stderr
    for argv in (
        ["backup", str(tmp_path / "b.nwv")],
        ["users", "add", "eve", "--role", "admin", "--new-passphrase-file", str(bob_file)],
        ["users", "remove", "alice"],
        ["erase", "--patient", "nobody", "--yes"],
    ):
        r = noteward(*argv, "--vault", vault, "--user", "bob", passphrase=BOB)
        assert r.returncode == 8, (argv, r.stderr)
        assert "Only an admin" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "b.nwv").exists()

    # the compliance officer's report: alice's events only, as CSV, oldest first
    r = noteward(
        "audit",
        "list",
        "--user",
        "alice",
        "--since",
        "2000-01-01",
        "--csv",
        "--vault",
        vault,
        passphrase=PASSPHRASE,
    )
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["action"] for row in rows][:3] == ["init", "unlock", "user.add"]
    assert {row["user"] for row in rows} == {"alice"} and "bob" in rows[2]["object_ids"]
    r = noteward(
        "audit", "list", "--user", "bob", "--csv", "--vault", vault, "--as", "bob", passphrase=BOB
    )
    bob_rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert bob_rows and {row["user"] for row in bob_rows} == {"bob"}
    r = noteward(
        "audit", "list", "--since", "2999-01-01", "--csv", "--vault", vault, passphrase=PASSPHRASE
    )
    assert r.stdout.splitlines() == ["seq,ts,user,action,object_ids,counts"]
    r = noteward("audit", "list", "--since", "last week", "--vault", vault, passphrase=PASSPHRASE)
    assert r.returncode == 2 and "--since" in r.stderr

    # removing bob rotates the key: his passphrase opens nothing any more
    r = noteward("users", "remove", "bob", "--vault", vault, passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    assert "Backups made before" in r.stdout
    r = noteward("patients", "--vault", vault, "--user", "bob", passphrase=BOB)
    assert r.returncode == 3, r.stderr

    # the recovery key sets a new passphrase for the admin who lost theirs
    key_file = tmp_path / "recovery.txt"
    key_file.write_text(code.group(1) + "\n")
    new = tmp_path / "new.txt"
    new.write_text("alice found a new passphrase\n")
    r = noteward(
        "passwd",
        "--recovery-key-file",
        str(key_file),
        "--new-passphrase-file",
        str(new),
        "--user",
        "alice",
        "--vault",
        vault,
    )
    assert r.returncode == 0, r.stderr
    r = noteward("users", "list", "--vault", vault, passphrase="alice found a new passphrase")
    assert r.returncode == 0 and "alice" in r.stdout and "bob" not in r.stdout, r.stderr
    r = noteward(
        "audit", "list", "--csv", "--vault", vault, passphrase="alice found a new passphrase"
    )
    actions = [row["action"] for row in csv.DictReader(io.StringIO(r.stdout))]
    for expected in ("user.remove", "key.rotate", "recovery.reset"):
        assert expected in actions


@pytest.mark.parametrize("how", ["patient id", "source id"])
def test_audit_list_by_patient(sample_copy: Path, how: str) -> None:
    ref = "pt_beta" if how == "patient id" else "src-pt_beta"
    r = noteward("notes", "--patient", ref, "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    r = noteward(
        "audit",
        "list",
        "--patient",
        ref,
        "--json",
        "--vault",
        str(sample_copy),
        passphrase=PASSPHRASE,
    )
    assert r.returncode == 0, r.stderr
    events = json.loads(r.stdout)
    assert [(e["action"], e["user"], e["object_ids"]) for e in events] == [
        ("patient.open", "admin", ["pt_beta"])
    ]
