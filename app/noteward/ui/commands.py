"""`noteward bench ui`: registered without importing Qt (it loads only when run)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, groups: dict[str, Any]) -> None:
    """Add `noteward bench ui` (event-loop stalls during import and summarization)."""
    p = groups["bench"].add_parser("ui", help="GUI event-loop stalls during import and summarization")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--index-seconds", type=float, default=20.0, help="how long to measure indexing")
    p.set_defaults(handler=_bench_ui)


def _bench_ui(args: argparse.Namespace) -> int:
    from noteward.ui import bench_stalls  # Qt loads here, only for this command

    argv = ["--index-seconds", str(args.index_seconds)] + (["--json"] if args.json else [])
    return bench_stalls.main(argv)
