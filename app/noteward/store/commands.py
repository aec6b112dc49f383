"""Vault subcommands: init, passwd, backup, restore, audit, check, patients, notes, erase,
users."""

from __future__ import annotations

import argparse
import csv
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from noteward import console
from noteward.core.errors import NotewardError, UsageError
from noteward.settings import load_settings
from noteward.store import events
from noteward.store.keys import new_recovery_key
from noteward.store.unlock import open_vault
from noteward.store.vault import (
    DEFAULT_ADMIN,
    LOST_PASSPHRASE_WARNING,
    RECOVERY_KEY_WARNING,
    Vault,
    check_new_passphrase,
)


def patient_json(p: Any) -> dict[str, Any]:
    return {
        "id": p.id,
        "source_id": p.source_id,
        "name": p.name,
        "birth_date": p.birth_date,
        "sex": p.sex,
        "deceased": p.deceased,
        "deceased_date": p.deceased_date,
        "note_count": p.note_count,
    }


def note_json(n: Any) -> dict[str, Any]:
    return {
        "id": n.id,
        "patient_id": n.patient_id,
        "date": n.date,
        "type": n.type,
        "author": n.author,
        "source": n.source,
        "source_id": n.source_id,
        "near_duplicate_of": n.near_duplicate_of,
        "text": n.text,
    }


def _new_passphrase(args: argparse.Namespace, what: str) -> str:
    if getattr(args, "new_passphrase_file", None) or not sys.stdin.isatty():
        ns = argparse.Namespace(passphrase_file=getattr(args, "new_passphrase_file", None))
        if ns.passphrase_file is None and what == "new":
            env = os.environ.get("NOTEWARD_NEW_PASSPHRASE")
            if env is not None:
                return check_new_passphrase(env, "new passphrase")
            # Never fall back to the current passphrase's sources: that "changes" the
            # passphrase to itself and reports a change that did not happen.
            raise UsageError(
                "No new passphrase: give --new-passphrase-file or set NOTEWARD_NEW_PASSPHRASE "
                "(there is no terminal to ask on); nothing was changed."
            )
        return check_new_passphrase(
            str(console.read_passphrase(ns if ns.passphrase_file else args)),
            "new passphrase" if what == "new" else "passphrase",
        )
    first = getpass.getpass(f"{what.capitalize()} passphrase: ")
    if first != getpass.getpass("Repeat it: "):
        raise UsageError("The two passphrases differ; nothing was changed.")
    return check_new_passphrase(first, "new passphrase")


def cmd_init(args: argparse.Namespace) -> int:
    path = console.vault_path(args)
    print(RECOVERY_KEY_WARNING if args.recovery_key else LOST_PASSPHRASE_WARNING, file=sys.stderr)
    passphrase = (
        console.read_passphrase(args) if (args.passphrase_file or not sys.stdin.isatty()) else _new_passphrase(args, "vault")
    )
    check_new_passphrase(passphrase, "passphrase")
    user = console.user_name(args) or DEFAULT_ADMIN
    recovery = new_recovery_key() if args.recovery_key else None
    Vault.create(path, passphrase, user=user, recovery_key=recovery).close()
    print(f"Created vault {path} (first admin: {user}; key file {path.name}.keys beside it)")
    if recovery:
        print(
            "Recovery key (shown once; write it down and keep it apart from the computer: it "
            f"sets a new admin passphrase with `noteward passwd --recovery-key-file F`):\n\n  {recovery}\n"
        )
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    if args.recovery_key_file:
        return _passwd_with_recovery(args)
    # Without a terminal the new passphrase must come from a file or the environment:
    # find out before unlocking anything.
    new = _new_passphrase(args, "new") if args.new_passphrase_file or not sys.stdin.isatty() else None
    vault = open_vault(args)
    try:
        print(LOST_PASSPHRASE_WARNING, file=sys.stderr)
        vault.change_passphrase(new if new is not None else _new_passphrase(args, "new"))
    finally:
        vault.close()
    print("Passphrase changed.")
    return 0


def _passwd_with_recovery(args: argparse.Namespace) -> int:
    try:
        code = Path(args.recovery_key_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"Cannot read the recovery key file: {exc.strerror}.") from None
    new = _new_passphrase(args, "new")
    name = console.user_name(args) or DEFAULT_ADMIN
    Vault.reset_with_recovery_key(console.vault_path(args), code, name, new, load_settings().busy_timeout_ms)
    print(f"Passphrase of admin {name} set with the recovery key.")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    try:
        out = vault.backup(args.out)
    finally:
        vault.close()
    print(f"Encrypted backup written to {out} (same passphrase as the vault).")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    target = console.vault_path(args)
    kept = Vault.restore(
        args.backup, target, console.read_passphrase(args), busy_timeout_ms=load_settings().busy_timeout_ms,
        user=console.user_name(args),
    )
    print(f"Restored {target} from {args.backup}.")
    if kept:
        print(f"The vault it replaced is kept, encrypted, at {kept}.")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    try:
        problems = vault.verify_audit()
        n = vault.conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    finally:
        vault.close()
    if args.json:
        console.print_json({"ok": not problems, "records": n, "problems": problems})
    elif problems:
        print(f"Audit trail FAILED verification ({n} records):")
        for p in problems:
            print(f"  - {p}")
    else:
        print(f"Audit trail intact: {n} records verified.")
    return 0 if not problems else 1


AUDIT_CSV_COLUMNS = ("seq", "ts", "user", "action", "object_ids", "counts")


def cmd_audit_list(args: argparse.Namespace) -> int:
    from noteward.store import audit

    since = _since(args.since) if args.since else None
    vault = open_vault(args)
    try:
        patient = None
        if args.patient:
            try:
                patient = vault.patient(args.patient).id
            except NotewardError:
                patient = args.patient  # an erased patient's id is still in the trail
        rows = audit.events(
            vault.conn, None if args.csv else args.limit, user=args.filter_user, object_id=patient,
            since=since, oldest_first=args.csv,
        )
    finally:
        vault.close()
    if args.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(AUDIT_CSV_COLUMNS)
        for r in rows:
            w.writerow([r["seq"], r["ts"], r["user"] or "", r["action"], " ".join(r["object_ids"]),
                        " ".join(f"{k}={v}" for k, v in sorted(r["counts"].items()))])
    elif args.json:
        console.print_json(rows)
    else:
        for r in rows:
            who = r["user"] or "-"
            print(f"{r['seq']:>6} {r['ts']} {who:<12} {r['action']:<18} {','.join(r['object_ids'])} {r['counts']}")
    return 0


def _since(text: str) -> str:
    """--since DATE (YYYY-MM-DD, or an ISO time): the trail's timestamps are UTC ISO text."""
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since takes a date like 2026-01-31 (or an ISO time), not {text!r}.") from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat(timespec="microseconds")


def cmd_check(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    try:
        report = vault.check()
    finally:
        vault.close()
    if args.json:
        console.print_json(report)
    else:
        print(f"Schema version: {report['schema_version']} (this Noteward: {report['expected_schema_version']})")
        print(f"Integrity: {report['integrity']}")
        print(f"Audit trail: {report['audit']}")
        print("Counts: " + ", ".join(f"{k} {v}" for k, v in report["counts"].items()))
        for p in report["problems"]:
            print(f"  problem: {p}")
    return 0 if report["ok"] else 1


def cmd_patients(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    try:
        patients = vault.patients()
    finally:
        vault.close()
    if args.json:
        console.print_json([patient_json(p) for p in patients])
        return 0
    if not patients:
        print("No patients in this vault. Import notes with `noteward import PATH`.")
    for p in patients:
        dec = f" deceased {p.deceased_date[:10] if p.deceased_date else ''}" if p.deceased else ""
        print(f"{p.id}  {p.name:<32} {p.birth_date or '?':<10} {p.sex or '?':<7} {p.note_count:>4} notes{dec}")
    return 0


def cmd_notes(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    try:
        patient = vault.patient(args.patient)
        notes = vault.notes(patient.id)
        events.patient_opened(vault, patient.id, len(notes))
    finally:
        vault.close()
    if args.json:
        console.print_json([note_json(n) for n in notes])
        return 0
    for n in notes:
        dup = " (near-duplicate)" if n.near_duplicate_of else ""
        print(f"{n.id}  {(n.date or '')[:10]:<10} {n.type or '':<28} {n.author or ''}{dup}")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    try:
        vault.require_admin("erase a patient")
        patient = vault.patient(args.patient)
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("Erasure cannot be undone: add --yes to confirm.")
            answer = input(f"Erase patient {patient.id} and all {patient.note_count} notes? Type 'erase': ")
            if answer.strip() != "erase":
                print("Nothing erased.")
                return 0
        counts = vault.erase_patient(patient.id)
    finally:
        vault.close()
    print(f"Erased patient {patient.id}: {counts['notes']} notes, {counts['chunks']} chunks.")
    for kept in counts["kept_copies_erased"]:
        print(f"Also erased from the copy restore kept at {kept}.")
    for kept in counts["kept_copies_not_opened"]:
        print(
            f"noteward: warning: {kept} (a vault restore set aside) could not be opened with this "
            "passphrase, so it may still hold this patient; delete it if it is no longer needed.",
            file=sys.stderr,
        )
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    try:
        users = vault.users()
        me = vault.user
    finally:
        vault.close()
    if args.json:
        console.print_json([{"name": u.name, "role": u.role} for u in users])
    else:
        for u in users:
            print(f"{u.name:<24} {u.role}{'  (you)' if u.name == me.name else ''}")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    # The new user's passphrase first (without a terminal it must come from a file or
    # NOTEWARD_NEW_PASSPHRASE): find out before unlocking anything.
    new = _new_passphrase(args, "new") if args.new_passphrase_file or not sys.stdin.isatty() else None
    vault = open_vault(args)
    try:
        vault.require_admin("add users")
        vault.add_user(args.name, args.role, new if new is not None else _new_passphrase(args, "new"))
    finally:
        vault.close()
    print(f"Added {args.role} {args.name}.")
    return 0


def cmd_users_remove(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    try:
        vault.remove_user(args.name)
    finally:
        vault.close()
    print(
        f"Removed {args.name} and re-encrypted the vault under a new key. Backups made before "
        "this still open with the old key files and passphrases, theirs included."
    )
    return 0


def register(sub: Any, groups: dict[str, Any]) -> None:
    def add(name: str, handler: Any, help_text: str, json_flag: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        console.add_vault_args(p)
        if json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(handler=handler)
        return p

    p = add("init", cmd_init, "create a new encrypted vault (--user names its first admin)")
    p.add_argument("--recovery-key", action="store_true",
                   help="also make a recovery key (shown once) that can set an admin passphrase again")
    p = add("passwd", cmd_passwd, "change your passphrase (re-encrypts the vault under a new key)")
    p.add_argument("--new-passphrase-file", help="read the new passphrase from this file")
    p.add_argument("--recovery-key-file",
                   help="set a new passphrase for admin --user with the vault's recovery key instead")
    p = add("backup", cmd_backup, "write an encrypted copy of the vault")
    p.add_argument("out", help="backup file to write")
    p = add("restore", cmd_restore, "check a backup and put it in place of the vault")
    p.add_argument("backup", help="backup file to restore")
    p = sub.add_parser("audit", help="the tamper-evident audit trail")
    asub = p.add_subparsers(dest="audit_cmd", metavar="ACTION")
    p.set_defaults(handler=lambda a, p=p: (p.print_help(), 2)[1])
    v = asub.add_parser("verify", help="verify the hash chain")
    console.add_vault_args(v)
    v.add_argument("--json", action="store_true")
    v.set_defaults(handler=cmd_audit_verify)
    v = asub.add_parser("list", help="list events (newest first; --csv: all, oldest first)")
    # Here --user is the filter a compliance officer asks for (issue 14); who signs in to
    # read the trail is --as (or NOTEWARD_USER, else the first admin).
    v.add_argument("--vault", help="vault file (default: NOTEWARD_VAULT or the user data folder)")
    v.add_argument("--passphrase-file", help="read the passphrase from this file")
    v.add_argument("--as", dest="user", metavar="NAME", help="who is signing in (default: NOTEWARD_USER, else the first admin)")
    v.add_argument("--json", action="store_true")
    v.add_argument("--csv", action="store_true", help="every matching event as CSV, for a compliance report")
    v.add_argument("--limit", type=int, default=50)
    v.add_argument("--user", "--by", dest="filter_user", metavar="USER", help="only events by this user")
    v.add_argument("--patient", help="only events naming this patient (id or source id)")
    v.add_argument("--since", help="only events from this date (YYYY-MM-DD, UTC) on")
    v.set_defaults(handler=cmd_audit_list)
    add("check", cmd_check, "check integrity and schema version", json_flag=True)
    add("patients", cmd_patients, "list patients", json_flag=True)
    p = add("notes", cmd_notes, "list a patient's notes", json_flag=True)
    p.add_argument("--patient", required=True, help="patient id or source id")
    p = sub.add_parser("users", help="clinician accounts: list, add, remove, passwd")
    usub = p.add_subparsers(dest="users_cmd", metavar="ACTION")
    p.set_defaults(handler=lambda a, p=p: (p.print_help(), 2)[1])
    u = usub.add_parser("list", help="who may unlock this vault, and their roles")
    console.add_vault_args(u)
    u.add_argument("--json", action="store_true", help="machine-readable output")
    u.set_defaults(handler=cmd_users_list)
    u = usub.add_parser("add", help="add a user (admin only)")
    console.add_vault_args(u)
    u.add_argument("name", help="the new user's name")
    u.add_argument("--role", required=True, choices=["clinician", "admin"])
    u.add_argument("--new-passphrase-file", help="read the new user's passphrase from this file")
    u.set_defaults(handler=cmd_users_add)
    u = usub.add_parser("remove", help="remove a user and rotate the vault key (admin only)")
    console.add_vault_args(u)
    u.add_argument("name", help="the user to remove")
    u.set_defaults(handler=cmd_users_remove)
    u = usub.add_parser("passwd", help="change your passphrase (same as `noteward passwd`)")
    console.add_vault_args(u)
    u.add_argument("--new-passphrase-file", help="read the new passphrase from this file")
    u.add_argument("--recovery-key-file",
                   help="set a new passphrase for admin --user with the vault's recovery key instead")
    u.set_defaults(handler=cmd_passwd)
    p = add("erase", cmd_erase, "erase a patient and every trace of their notes")
    p.add_argument("--patient", required=True, help="patient id or source id")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


__all__ = ["register", "patient_json", "note_json", "NotewardError"]
