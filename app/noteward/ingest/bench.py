"""Import benchmark: notes/s into an encrypted vault vs the same code on plain SQLite.

Both variants run the same importer on the same files with identical pragmas and schema;
the only difference is that the plain database has no key (SQLCipher without a key is
plain SQLite). Each variant runs ``repeat`` times in alternation, into a fresh database
each time; the median is reported. The key derivation at open is excluded (it is a fixed
per-unlock cost, not a per-note one).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from noteward.core.errors import UsageError
from noteward.ingest.importer import import_paths
from noteward.settings import shared_data_dir
from noteward.store.bench import checkpoint, plain_vault
from noteward.store.vault import Vault

TARGET_NOTES_PER_S = 200.0
TARGET_OVERHEAD = 1.3


def default_data() -> Path:
    return shared_data_dir() / "synthea_fhir"


def bench_import(data: str | Path | None = None, repeat: int = 3) -> dict[str, Any]:
    src = Path(data) if data else default_data()
    if not src.exists():
        raise UsageError(f"No data to import at {src}; pass --data FOLDER.")
    times: dict[str, list[float]] = {"encrypted": [], "plain": []}
    notes = 0
    with tempfile.TemporaryDirectory(prefix="nw-bench-") as tmp:
        for i in range(repeat):
            for variant in ("encrypted", "plain"):
                path = Path(tmp) / f"{variant}-{i}.db"
                v = Vault.create(path, "bench-passphrase") if variant == "encrypted" else plain_vault(path)
                try:
                    t0 = time.perf_counter()
                    report = import_paths(v, [src])
                    checkpoint(v)
                    times[variant].append(time.perf_counter() - t0)
                    notes = report.counts["notes"]["imported"]
                finally:
                    v.close()
    enc = statistics.median(times["encrypted"])
    plain = statistics.median(times["plain"])
    rate = notes / enc if enc else 0.0
    ratio = enc / plain if plain else float("inf")
    lines = [
        f"import benchmark: {notes} notes from {src.name}, {repeat} runs per variant (median)",
        f"  encrypted vault : {enc * 1000:8.1f} ms  {rate:8.0f} notes/s   (target >= {TARGET_NOTES_PER_S:.0f})",
        f"  plain SQLite    : {plain * 1000:8.1f} ms  {notes / plain if plain else 0:8.0f} notes/s",
        f"  encryption overhead: {ratio:.2f}x   (target <= {TARGET_OVERHEAD})",
        f"  verdict: {'meets' if rate >= TARGET_NOTES_PER_S and ratio <= TARGET_OVERHEAD else 'MISSES'} targets",
    ]
    return {
        "notes": notes,
        "runs": repeat,
        "encrypted_s": times["encrypted"],
        "plain_s": times["plain"],
        "notes_per_s": rate,
        "overhead_ratio": ratio,
        "targets": {"notes_per_s": TARGET_NOTES_PER_S, "overhead_ratio": TARGET_OVERHEAD},
        "lines": lines,
    }
