"""`noteward index`, `noteward search` and `noteward bench search`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from noteward import console
from noteward.core.errors import UsageError
from noteward.store import events
from noteward.store.unlock import open_vault

# search.MODES, spelled out so that `noteward --help` does not import FAISS and NumPy.
SEARCH_MODES = ("hybrid", "bm25", "dense")


def cmd_index(args: argparse.Namespace) -> int:
    from noteward.retrieval.index import index_vault

    vault = open_vault(args)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] > 0.5:
            last[0] = now
            end = "\n" if done == total else ""
            print(f"\rembedding chunks {done}/{total}", end=end, file=sys.stderr, flush=True)

    try:
        report = index_vault(vault, progress=progress)
    finally:
        vault.close()
    if args.json:
        console.print_json(report.to_json())
        return 0
    rate = f" ({report.added / report.seconds:.0f} chunks/s)" if report.added and report.seconds else ""
    print(f"Embedded {report.added} new chunks in {report.seconds:.2f} s{rate}.")
    print(f"{report.embedded} of {report.total_chunks} chunks now have vectors ({report.model}).")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from noteward.retrieval.search import HybridSearcher

    if args.k < 1 or args.k > 1000:
        raise UsageError("--k must be between 1 and 1000.")
    vault = open_vault(args)
    try:
        patient_id = vault.patient(args.patient).id if args.patient else None
        searcher = HybridSearcher(vault)
        t0 = time.perf_counter()
        if args.mode != "bm25":  # one-off costs of a fresh process, timed apart from the search
            searcher.embedder.load()
            searcher.dense_index()
        load_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        hits = searcher.search(args.query, patient_id=patient_id, k=args.k, mode=args.mode)
        ms = (time.perf_counter() - t0) * 1000
        events.searched(vault, patient_id, len(hits))  # the query text is never stored
        unindexed = searcher.unindexed_chunks() if args.mode != "bm25" else 0
        highlights = [searcher.highlight(h, args.query) for h in hits]
    finally:
        vault.close()
    if unindexed:
        print(f"noteward: {unindexed} chunks have no vectors yet and are found by keyword only; "
              "run `noteward index`.", file=sys.stderr)
    if args.json:
        console.print_json({
            "query_mode": args.mode, "patient": patient_id, "k": args.k, "ms": round(ms, 2),
            "load_ms": round(load_ms, 1),
            "hits": [{**h.to_json(), "highlights": [list(r) for r in hl]}
                     for h, hl in zip(hits, highlights, strict=True)],
        })
        return 0
    if not hits:
        print("No matches.")
        return 0
    for i, h in enumerate(hits, start=1):
        parts = [f"rrf {h.score:.4f}" if args.mode == "hybrid" else f"score {h.score:.4f}"]
        if h.bm25_rank is not None:
            parts.append(f"bm25 #{h.bm25_rank} {h.bm25_score:.3f}")
        if h.dense_rank is not None:
            parts.append(f"dense #{h.dense_rank} {h.dense_score:.3f}")
        print(f"{i:>3}. {h.note_id} [{h.start}:{h.end}] {h.section or ''}  ({', '.join(parts)})")
        snippet = " ".join(h.text.split())
        print(f"     {snippet[:200]}{'...' if len(snippet) > 200 else ''}")
    print(f"{len(hits)} hits in {ms:.1f} ms (plus {load_ms:.0f} ms to load the model and index)")
    return 0


def cmd_bench_search(args: argparse.Namespace) -> int:
    from noteward.retrieval.bench import bench_search, format_report

    if args.chunks < 1000:
        raise UsageError("--chunks must be at least 1000.")
    result = bench_search(args.data, target=args.chunks, k=args.k)
    if args.json:
        console.print_json(result)
    else:
        print("\n".join(format_report(result)))
    return 0


def register(sub: Any, groups: dict[str, Any]) -> None:
    p = sub.add_parser("index", help="embed new note chunks for search by meaning (incremental)")
    console.add_vault_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_index)

    p = sub.add_parser("search", help="search notes by keyword and meaning")
    console.add_vault_args(p)
    p.add_argument("query", help="what to look for (any text)")
    p.add_argument("--patient", help="only this patient's notes (id or source id)")
    p.add_argument("--k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument("--mode", choices=SEARCH_MODES, default="hybrid", help="ranking (default hybrid)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_search)

    b = groups["bench"].add_parser("search", help="search latency over 100,000 chunks")
    b.add_argument("--data", help="notes to build the load from (default ../shared/data/synthea_fhir)")
    b.add_argument("--chunks", type=int, default=100_000, help="size of the load (default 100000)")
    b.add_argument("--k", type=int, default=10, help="hits per search (default 10)")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(handler=cmd_bench_search)
