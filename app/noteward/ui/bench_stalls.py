"""Benchmark: event-loop stalls in the real app while it imports and summarizes.

A 10 ms QTimer ticks on the GUI thread; every gap between ticks beyond its interval is
time the window could not respond. The largest gap is reported for each phase, beside a
baseline measured in the same run with the app idle. Goal: under 100 ms.

    QT_QPA_PLATFORM=offscreen python -m noteward.ui.bench_stalls [--json]
    noteward bench ui [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from noteward.settings import shared_data_dir

SHARED = shared_data_dir()
SMALL_PATIENT = "63ee2253"
PASSPHRASE = "benchmark passphrase, not a real one"
TICK_MS = 10
GOAL_MS = 100.0


class StallMeter:
    """Records the gaps between ticks of a 10 ms timer on the GUI thread."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.gaps: list[float] = []

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last:
            self.gaps.append((now - self.last) * 1000)
        self.last = now

    def start(self) -> None:
        self.gaps = []
        self.last = 0.0
        self.timer.start()

    def stop(self) -> dict[str, Any]:
        self.timer.stop()
        gaps = sorted(self.gaps)
        if not gaps:
            return {"ticks": 0, "max_gap_ms": None, "p99_gap_ms": None, "gaps_over_100ms": 0}
        return {
            "ticks": len(gaps),
            "max_gap_ms": round(gaps[-1], 1),
            "p99_gap_ms": round(gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))], 1),
            "median_gap_ms": round(gaps[len(gaps) // 2], 1),
            "gaps_over_100ms": sum(g > GOAL_MS for g in gaps),
        }


def _spin(app: Any, until: Callable[[], bool], timeout: float, what: str) -> None:
    """Run the event loop (as the app would) until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench ui: timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.002)
    app.processEvents()


def run(index_seconds: float = 20.0) -> dict[str, Any]:
    """Measure stalls: idle baseline, import, semantic indexing, unlock, summarize."""
    src = SHARED / "synthea_fhir"
    if not src.is_dir():
        raise SystemExit(f"bench ui: the shared Synthea data is missing ({src})")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    results: dict[str, Any] = {"tick_ms": TICK_MS, "goal_max_gap_ms": GOAL_MS, "phases": {}}
    with tempfile.TemporaryDirectory(prefix="noteward-bench-ui-") as tmp:
        tmpdir = Path(tmp)
        os.environ["NOTEWARD_DATA_DIR"] = str(tmpdir / "data")
        os.environ["NOTEWARD_CONFIG_DIR"] = str(tmpdir / "config")
        os.environ["NOTEWARD_POLICY_FILE"] = str(tmpdir / "policy.json")
        from noteward.ui.app import build_window, ensure_app

        app = ensure_app()
        window, services = build_window(str(tmpdir / "bench.nwv"))
        meter = StallMeter()
        phases = results["phases"]
        try:
            window.show()
            _spin(app, lambda: True, 1, "start")

            meter.start()
            t_end = time.monotonic() + 2.0
            _spin(app, lambda: time.monotonic() > t_end, 5, "baseline")
            phases["idle_baseline"] = meter.stop()

            # as main() does: heavy libraries load on a worker while the unlock dialog is up
            meter.start()
            t0 = time.perf_counter()
            warm = services.warm_up()
            _spin(app, lambda: warm.finished, 300, "the warm-up")
            phases["startup_warm_up"] = meter.stop() | {"seconds": round(time.perf_counter() - t0, 2)}

            dialog = window.request_unlock()
            dialog.passphrase.setText(PASSPHRASE)
            dialog.repeat.setText(PASSPHRASE)
            loaded: list[object] = []
            window.patients_did_load.connect(loaded.append)
            meter.start()
            t0 = time.perf_counter()
            dialog.submit.click()
            _spin(app, lambda: bool(loaded), 120, "creating the vault")
            phases["create_and_unlock"] = meter.stop() | {"seconds": round(time.perf_counter() - t0, 2)}

            imp = window.open_import()
            imp.add_paths([str(src)])
            shown_by = time.monotonic() + 0.5  # the dialog's first paint is not the import's
            _spin(app, lambda: time.monotonic() > shown_by, 5, "the import dialog")
            meter.start()
            t0 = time.perf_counter()
            imp.run_import()
            _spin(app, lambda: imp.report is not None, 300, "the import")
            phases["import_1018_notes"] = meter.stop() | {"seconds": round(time.perf_counter() - t0, 2)}

            meter.start()
            t0 = time.perf_counter()
            stop_at = time.monotonic() + index_seconds
            _spin(app, lambda: imp.job is None or time.monotonic() > stop_at, index_seconds + 60, "indexing")
            if imp.job is not None:
                imp.cancel()
                _spin(app, lambda: imp.job is None, 60, "indexing to stop")
            phases["semantic_indexing"] = meter.stop() | {
                "seconds": round(time.perf_counter() - t0, 2),
                "note": f"measured for up to {index_seconds:.0f} s, then cancelled",
            }

            _spin(app, lambda: window.patient_list.model.rowCount() > 1, 30, "patients")
            from noteward.ui.patients import ID_ROLE, SEARCH_ROLE

            model = window.patient_list.model
            items = [model.item(r) for r in range(model.rowCount())]
            target = next(i for i in items if SMALL_PATIENT in (i.data(SEARCH_ROLE) or ""))
            records: list[object] = []
            window.record_did_load.connect(records.append)
            window.patient_list.select(target.data(ID_ROLE))
            _spin(app, lambda: bool(records), 60, "the patient record")

            pane = window.summary
            finished: list[object] = []
            pane.summary_did_finish.connect(finished.append)
            meter.start()
            t0 = time.perf_counter()
            pane.summarize()
            _spin(app, lambda: pane.first_sentence_ms is not None or pane.job is None, 300, "the first sentence")
            first = pane.first_sentence_ms
            _spin(app, lambda: pane.job is None and pane.settled, 600, "the summary")
            phases["summarize_15_notes"] = meter.stop() | {
                "seconds": round(time.perf_counter() - t0, 2),
                "first_sentence_on_screen_ms": round(first, 1) if first is not None else None,
                "sentences": len(pane.sentences),
            }

            meter.start()
            t0 = time.perf_counter()
            pane.summarize()
            _spin(app, lambda: pane.tokens > 0 or pane.job is None, 300, "the model's first token")
            t_cancel = time.perf_counter()
            pane.cancel()
            _spin(app, lambda: pane.job is None and pane.settled, 60, "the cancel")
            phases["summarize_then_cancel"] = meter.stop() | {
                "seconds": round(time.perf_counter() - t0, 2),
                "cancel_to_idle_ms": round((time.perf_counter() - t_cancel) * 1000, 1),
                "tokens_before_cancel": pane.tokens,
                "outcome": pane.status.text().split(".")[0],
            }
        finally:
            window.close()
            services.shutdown()
    results["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    work = [p for k, p in phases.items()
            if k not in ("idle_baseline", "startup_warm_up") and p.get("max_gap_ms") is not None]
    results["largest_gap_ms"] = max(p["max_gap_ms"] for p in work) if work else None
    results["meets_goal"] = results["largest_gap_ms"] is not None and results["largest_gap_ms"] < GOAL_MS
    return results


def print_report(results: dict[str, Any]) -> None:
    print(f"Event-loop stalls (10 ms timer on the GUI thread; goal: largest gap < {GOAL_MS:.0f} ms)")
    print(f"{'phase':28} {'ticks':>6} {'median':>8} {'p99':>8} {'max':>8} {'>100ms':>7} {'seconds':>8}")
    for name, p in results["phases"].items():
        print(
            f"{name:28} {p['ticks']:>6} {p.get('median_gap_ms') or 0:>8.1f} {p['p99_gap_ms'] or 0:>8.1f}"
            f" {p['max_gap_ms'] or 0:>8.1f} {p['gaps_over_100ms']:>7} {p.get('seconds', 2.0):>8}"
        )
    summ = results["phases"].get("summarize_15_notes", {})
    if summ.get("first_sentence_on_screen_ms") is not None:
        print(f"summary of the 15-note patient: first sentence on screen after "
              f"{summ['first_sentence_on_screen_ms']:.0f} ms, {summ['sentences']} sentences in {summ['seconds']} s "
              "(model loading included)")
    canc = results["phases"].get("summarize_then_cancel", {})
    if canc.get("cancel_to_idle_ms") is not None:
        print(f"Cancel pressed while the model was writing: summary pane idle again after {canc['cancel_to_idle_ms']:.0f} ms")
    if results.get("load_average"):
        print("machine load average during the run (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in results["load_average"]))
    print("(startup_warm_up runs while the unlock dialog waits for the passphrase; it is not counted below)")
    print(f"largest gap while importing, indexing and summarizing: {results['largest_gap_ms']} ms "
          f"({'meets' if results['meets_goal'] else 'misses'} the goal)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure GUI event-loop stalls during import and summarization.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--index-seconds", type=float, default=20.0, help="how long to measure indexing")
    args = parser.parse_args(argv)
    results = run(args.index_seconds)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
