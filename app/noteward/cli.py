"""The `noteward` command.

Subcommands live beside the code they drive: each area has a ``commands.py`` with a
``register(sub, groups)`` function (``groups`` holds the shared ``eval`` and ``bench``
sub-parsers). This module only builds the parser and turns errors into messages and exit
codes (what every command needs from the console is in ``noteward.console``):

0 ok, 2 usage, 3 wrong passphrase or not a vault, 4 input errors under --strict,
5 model missing or failing its hash, 6 unknown patient, 7 vault busy, 130 cancelled.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from noteward.console import add_vault_args, vault_path
from noteward.core.errors import NotewardError, UsageError
from noteward.settings import PolicyError, validate_policy

COMMAND_MODULES = [
    "noteward.store.commands",
    "noteward.ingest.commands",
    "noteward.demo",
    "noteward.llm.commands",
    "noteward.training.commands",
    "noteward.training.deid_ner",
    "noteward.retrieval.commands",
    "noteward.deid.commands",
    "noteward.ui.commands",
    "noteward.bundle",
]

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="noteward",
        description="Noteward: encrypted clinical notes, grounded summaries.",
        allow_abbrev=False,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument(
        "--version", action="store_true", help="print the version, Python and default model; exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, Any] = {}
    gui = sub.add_parser("gui", help="open the desktop app")
    add_vault_args(gui)
    gui.set_defaults(handler=run_gui)
    for name, help_text in (("eval", "measure quality"), ("bench", "measure speed")):
        gp = sub.add_parser(name, help=help_text)
        groups[name] = gp.add_subparsers(dest="what", metavar="WHAT")
        gp.set_defaults(handler=lambda a, gp=gp: (gp.print_help(), 2)[1])
    for modname in COMMAND_MODULES:
        importlib.import_module(modname).register(sub, groups)

    # No prefix matching anywhere: `--passphrase X` was silently read as `--passphrase-file X`.
    # Sub-parsers are made by each area's register(), so the flag is set on the finished tree.
    def no_abbrev(p: argparse.ArgumentParser) -> None:
        p.allow_abbrev = False
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    no_abbrev(child)

    no_abbrev(parser)
    return parser, groups


def run_gui(args: argparse.Namespace) -> int:
    from noteward.ui.display import gui_problem  # Qt-free: checked before Qt loads

    problem = gui_problem()
    if problem:
        raise UsageError(problem)
    try:
        from noteward.ui.app import main as gui_main  # the one allowed Qt import
    except ImportError as exc:
        raise NotewardError(f"The desktop client is not available: {exc}.") from None
    return int(gui_main(vault=str(vault_path(args)) if getattr(args, "vault", None) else None))


def main(argv: list[str] | None = None) -> int:
    import resource

    # A core file of this process could hold decrypted notes: never write one (CLI and GUI).
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    parser, _ = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # argparse would echo the values, and a mistyped `--passphrase SECRET` would print
        # the secret: name the options only.
        shown = " ".join(a if a.startswith("-") else "…" for a in unknown)
        hint = (
            "; give the passphrase with --passphrase-file or NOTEWARD_PASSPHRASE"
            if any(a.startswith("--passphrase") for a in unknown)
            else ""
        )
        parser.error(f"unrecognized arguments: {shown}{hint}")
    try:  # IT's locked settings: a broken policy stops every command, --version included
        validate_policy()
    except PolicyError as exc:
        print(f"noteward: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.version:
        from noteward.about import version_lines

        print("\n".join(version_lines()))
        return 0
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        args.vault = None
        handler = run_gui
    try:
        return int(handler(args) or 0)
    except NotewardError as exc:
        print(f"noteward: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("noteward: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        # Exception messages can quote data (a value, a file's content); without -v only
        # the exception's type is shown, so crash output never carries note text.
        if args.verbose:
            raise
        print(
            f"noteward: internal error ({type(exc).__name__}); nothing was changed that was "
            "not already committed. Run again with -v for details.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
