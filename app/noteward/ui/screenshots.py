"""Render the main screens to docs/screenshots/*.png (``make screenshots``).

Runs the real app offscreen on a throwaway vault: the shared Synthea export (plus one
malformed file, so the import error list has something to show) is imported, patient
63ee2253 is summarized with the packaged model, and a sentence's source is highlighted.
Nothing is written outside a temporary folder except the PNGs.

    QT_QPA_PLATFORM=offscreen python -m noteward.ui.screenshots [--out DIR] [--scale 1.5]
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

from noteward.settings import shared_data_dir

SHARED = shared_data_dir()
PATIENT = "63ee2253"
PASSPHRASE = "screenshot passphrase, not a real one"
SCREEN = (1440, 960)  # the offscreen screen the app is shown on


def _spin(app, until: Callable[[], bool], timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()


def _save(widget, path: Path) -> None:  # noqa: ANN001
    widget.grab().save(str(path))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Render the screenshots; returns an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots", help="folder for the PNGs")
    parser.add_argument("--scale", type=float, default=1.0, help="display scale (1.25, 1.5) for a readability check")
    args = parser.parse_args(argv)
    src = SHARED / "synthea_fhir"
    if not src.is_dir():
        print(f"screenshots: the shared Synthea data is missing ({src})", file=sys.stderr)
        return 4
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.scale != 1.0:
        os.environ["QT_SCALE_FACTOR"] = str(args.scale)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.scale == 1.0 else f"-{int(args.scale * 100)}"

    with tempfile.TemporaryDirectory(prefix="noteward-shots-") as tmp:
        tmpdir = Path(tmp)
        if os.environ["QT_QPA_PLATFORM"] == "offscreen":
            # Qt's offscreen screen is 800x800 and the window fits itself to its screen; a
            # desktop monitor's worth of screen (1440x960) shows the panes as a clinician sees them
            conf = tmpdir / "offscreen.json"
            conf.write_text(json.dumps({"screens": [{
                "name": "OffscreenScreen", "x": 0, "y": 0, "width": SCREEN[0], "height": SCREEN[1],
                "logicalDpiX": 96, "logicalDpiY": 96, "dpr": 1,
            }]}))
            os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={conf}"
        os.environ["NOTEWARD_DATA_DIR"] = str(tmpdir / "data")
        os.environ["NOTEWARD_CONFIG_DIR"] = str(tmpdir / "config")
        os.environ["NOTEWARD_POLICY_FILE"] = str(tmpdir / "policy.json")
        (tmpdir / "policy.json").write_text('{"vault": "%s"}' % (tmpdir / "clinic.nwv"))
        bad = tmpdir / "extra"
        bad.mkdir()
        (bad / "Patient.broken.ndjson").write_text('{"resourceType": "Patient", "id": \n', encoding="utf-8")
        (bad / "scan.pdf").write_bytes(b"%PDF-1.4\n")

        from noteward.store.vault import Vault
        from noteward.ui.app import build_window, ensure_app
        from noteward.ui.patients import ID_ROLE, SEARCH_ROLE

        app = ensure_app()
        vault_path = tmpdir / "clinic.nwv"
        Vault.create(vault_path, PASSPHRASE).close()
        window, services = build_window(str(vault_path))
        try:
            window.show()
            # 1. unlock, after a mistyped passphrase
            dialog = window.request_unlock()
            dialog.passphrase.setText("wrong guess")
            dialog.submit.click()
            _spin(app, dialog.error.isVisible, 60, "the wrong-passphrase message")
            _spin(app, dialog.submit.isEnabled, 10, "the dialog")
            dialog.passphrase.setText("x" * 14)
            app.processEvents()
            _save(dialog, out / f"unlock{suffix}.png")
            dialog.passphrase.setText(PASSPHRASE)
            loaded: list[object] = []
            window.patients_did_load.connect(loaded.append)
            dialog.submit.click()
            _spin(app, lambda: bool(loaded), 60, "unlocking")

            # 2. import with progress (captured while indexing) and the error list
            imp = window.open_import()
            imp.add_paths([str(src), str(bad)])
            imp.run_import()
            shot = {"done": False}

            def grab_progress(done: int, total: int) -> None:
                if not shot["done"] and total and done >= total // 3:
                    shot["done"] = True
                    _save(imp, out / f"import{suffix}.png")
                    imp.cancel()  # the screenshots do not need every passage indexed

            _spin(app, lambda: imp.report is not None and imp.job is not None, 120, "the import")
            imp.job.job_did_progress.connect(grab_progress)
            _spin(app, lambda: imp.job is None, 600, "indexing")
            if not shot["done"]:
                _save(imp, out / f"import{suffix}.png")
            imp.hide()

            # 3. the patient, summarized, with a sentence's source highlighted
            _spin(app, lambda: window.patient_list.model.rowCount() > 1, 30, "the patient list")
            records: list[object] = []
            window.record_did_load.connect(records.append)
            model = window.patient_list.model
            items = [model.item(r) for r in range(model.rowCount())]
            target = next(i for i in items if PATIENT in (i.data(SEARCH_ROLE) or ""))
            window.patient_list.select(target.data(ID_ROLE))
            _spin(app, lambda: bool(records), 60, "the patient record")
            pane = window.summary
            finished: list[object] = []
            pane.summary_did_finish.connect(finished.append)
            pane.summarize()
            _spin(app, lambda: bool(finished) and pane.job is None and pane.settled, 300, "the summary")
            views = [v for v in pane.views if v.sentence.sources and v.sentence.supported]
            views.sort(key=lambda v: -len(v.sentence.sources))
            if views:
                views[0].sentence_did_activate.emit(views[0].sentence)
                views[0].setFocus()
            app.processEvents()
            _save(window, out / f"patient-summary{suffix}.png")

            # 4. search
            window.tabs.setCurrentWidget(window.search)
            window.search.query.setText("ankle fracture")
            window.search.search()
            _spin(app, lambda: window.search.job is None, 120, "the search")
            window.search.activate(0)
            app.processEvents()
            _save(window, out / f"search{suffix}.png")
            window.tabs.setCurrentWidget(pane)

            # 5. settings (the vault location is locked by the site policy here)
            settings = window.open_settings()
            app.processEvents()
            _save(settings, out / f"settings{suffix}.png")
            settings.reject()
        finally:
            window.close()
            services.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
