"""`noteward demo` (what `make run` starts): a demo vault and the app on it.

The demo vault lives in the user data folder (``demo/demo.nwv``), never at the user's
default vault. It is filled from ../shared/data/synthea_fhir when that folder exists,
else from the small synthetic sample in resources/demo/. Without a display the
command-line demo runs instead: it lists the demo patients, summarizes one, and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noteward.settings import demo_vault_path, resources_dir, shared_data_dir

if TYPE_CHECKING:
    from noteward.store.vault import Vault

DEMO_PASSPHRASE = "noteward-demo"


def demo_source() -> Path:
    shared = shared_data_dir() / "synthea_fhir"
    return shared if shared.is_dir() else resources_dir() / "demo" / "notes"


def ensure_demo_vault(path: Path | None = None) -> tuple[Path, bool]:
    """Create and fill the demo vault if it does not exist; (path, created)."""
    from noteward.ingest.importer import import_paths
    from noteward.store.vault import Vault

    path = path or demo_vault_path()
    if path.exists():
        return path, False
    src = demo_source()
    vault = Vault.create(path, DEMO_PASSPHRASE)
    try:
        report = import_paths(vault, [src])
    except BaseException:
        vault.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        raise
    vault.close()
    print(f"Created the demo vault {path} from {src} "
          f"({report.counts['patients']['imported']} patients, {report.counts['notes']['imported']} notes).")
    return path, True


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("win32", "darwin")


def gui_available() -> bool:
    return importlib.util.find_spec("noteward.ui.app") is not None


def cmd_demo(args: argparse.Namespace) -> int:
    path, _ = ensure_demo_vault(Path(args.vault) if args.vault else None)
    print(f"Demo vault: {path}")
    print(f"Demo passphrase: {DEMO_PASSPHRASE}   (synthetic patients only; never use it for real notes)")
    if has_display() and gui_available() and not args.cli:
        from noteward import cli

        ns = argparse.Namespace(vault=str(path))
        return cli.run_gui(ns)
    if not args.cli:
        print("No display: running the command-line demo")
    return command_line_demo(path)


def command_line_demo(path: Path) -> int:
    from noteward.store.commands import patient_json
    from noteward.store.vault import Vault

    vault = Vault.open(path, DEMO_PASSPHRASE)
    try:
        patients = vault.patients()
        print(f"\n{len(patients)} demo patients:")
        for p in patients:
            print(f"  {p.id}  {p.name:<32} born {p.birth_date or '?':<10} {p.sex or '?':<7} {p.note_count:>4} notes")
        if not patients:
            return 0
        chosen = min(patients, key=lambda p: p.note_count)
        _summarize(vault, patient_json(chosen))
    finally:
        vault.close()
    return 0


def _summarize(vault: Vault, patient: dict[str, Any]) -> None:
    if importlib.util.find_spec("noteward.llm.summarizer") is None:
        print("\n(Summaries are not available in this build.)")
        return
    from noteward.llm.summarizer import SummaryService

    print(f"\nSummary of {patient['id']} ({patient['note_count']} notes), machine-generated: check it against its sources.")
    with SummaryService() as svc:
        result = svc.summarize_patient(vault, patient["id"])
    section = None
    for s in result.sentences:
        if s.section != section:
            section = s.section
            print(f"\n{section}:")
        mark = "" if s.supported else "  [UNSUPPORTED]"
        cites = ", ".join(f"{src.note_id}[{src.start}:{src.end}]" for src in s.sources[:2])
        when = f"[{s.date}] " if s.date else ""
        print(f"  - {when}{s.text}{mark}" + (f"  ({cites})" if cites else ""))
        for c in s.conflicts:
            print(f"      CONFLICT: {c.date or 'undated'}: {c.text}")


def register(sub: Any, groups: dict[str, Any]) -> None:
    p = sub.add_parser("demo", help="open the app on a demo vault (what `make run` does)")
    p.add_argument("--vault", help="demo vault file (default: the user data folder's demo vault)")
    p.add_argument("--cli", action="store_true", help="run the command-line demo even with a display")
    p.set_defaults(handler=cmd_demo)
