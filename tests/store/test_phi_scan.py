"""Nothing from a vault is written unencrypted: after importing the shared Synthea patients
and using the vault through the API and the command line, no file under the vault's
folder and no file created or changed in the temp folder holds a known patient name or
note sentence, and neither do the command's logs. The same scan, run first on a plaintext
file written on purpose, finds them."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path

import pytest

from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE, require_shared
from tests.support.cli import noteward
from tests.support.phi_scan import Hit, Needles, files_under, scan_bytes, scan_files, synthea_phi


@pytest.fixture(scope="module")
def needles() -> Needles:
    n = synthea_phi(require_shared("synthea_fhir"))
    assert len(n.names) >= 9 and len(n.sentences) >= 100, "the needle set is too small to mean much"
    return n


def _scan_targets(vault_dir: Path, since: float, basetemp: Path) -> list[Path]:
    """Every file under the vault's folder, and every file in the temp folder created or
    changed since ``since`` (other pytest sessions' folders excepted: they belong to other
    runs, not to this process)."""
    tmp = Path(tempfile.gettempdir())
    others = [p for p in basetemp.parent.glob("pytest-*") if p.resolve() != basetemp.resolve()]
    files = files_under(vault_dir)
    files += files_under(tmp, changed_since=since, exclude=[vault_dir, *others])
    return files


def _now_by_file_clock(folder: Path) -> float:
    """The file system's idea of "now" (its timestamps come from a coarser clock than
    time.time()): files created after this call have a ctime at least this."""
    mark = folder / ".scan-start"
    mark.write_bytes(b"")
    return mark.stat().st_mtime


def _describe(hits: list[Hit]) -> str:
    return "; ".join(f"{h.kind} in {h.path} ({h.encoding})" for h in hits[:10])


def _write_plain_text(path: Path, name: str, sentence: str) -> None:
    path.write_text(f"Export for {name}\n{sentence}\n", encoding="utf-8")


def _write_utf16(path: Path, name: str, sentence: str) -> None:
    path.write_bytes(f"{name}: {sentence}".encode("utf-16"))


def _write_plain_sqlite(path: Path, name: str, sentence: str) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes(patient TEXT, text TEXT)")
    con.execute("INSERT INTO notes VALUES (?, ?)", (name, sentence))
    con.commit()
    con.close()


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(_write_plain_text, id="text"),
        pytest.param(_write_utf16, id="utf16"),
        pytest.param(_write_plain_sqlite, id="sqlite"),
    ],
)
def test_scan_finds_plaintext_written_on_purpose(needles: Needles, tmp_path: Path, write) -> None:
    since = _now_by_file_clock(tmp_path)
    vault_dir = tmp_path / "vault"
    vault_dir.mkdir()
    name, sentence = sorted(needles.names)[0], sorted(needles.sentences)[-1]
    in_tmp, in_vault_dir = tmp_path / "leak.bin", vault_dir / "leak-cache.bin"
    write(in_tmp, name, sentence)
    write(in_vault_dir, name, sentence)
    # (The full walk of the temp folder is exercised by the control in the next test.)
    targets = files_under(vault_dir) + files_under(tmp_path, changed_since=since, exclude=[vault_dir])
    hits = scan_files(targets, needles)
    for path in (in_tmp, in_vault_dir):
        kinds = {h.kind for h in hits if h.path == str(path)}
        assert kinds == {"name", "note sentence"}, f"the scan missed {path.name}: {_describe(hits)}"
        path.unlink()  # do not leave plaintext patient data lying around


@pytest.mark.slow
@pytest.mark.shared_data
def test_import_and_use_leave_no_plaintext(
    needles: Needles, synthea_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from noteward.ingest.importer import import_paths

    since = _now_by_file_clock(tmp_path)
    basetemp = tmp_path_factory.getbasetemp()
    vault_dir = tmp_path / "vault"
    vault_dir.mkdir()

    # Positive control, same scan: a plaintext file written on purpose is found.
    control = tmp_path / "control.txt"
    _write_plain_text(control, sorted(needles.names)[1], sorted(needles.sentences)[1])
    hits = scan_files(_scan_targets(vault_dir, since, basetemp), needles)
    assert {h.kind for h in hits if h.path == str(control)} == {"name", "note sentence"}
    control.unlink()

    # The command line: init, import, list, read, check, back up, erase (with logging on).
    path = vault_dir / "clinic.nwv"
    logs: list[str] = []

    def run(*argv: str) -> str:
        r = noteward("-v", *argv, "--vault", str(path), passphrase=PASSPHRASE)
        assert r.returncode == 0, r.stderr
        logs.append(r.stderr)
        return r.stdout

    run("init")
    report = json.loads(run("import", str(synthea_dir), "--json"))
    assert report["counts"]["notes"]["imported"] >= 1000
    patients = json.loads(run("patients", "--json"))
    assert len(patients) == 9
    assert {p["name"] for p in patients} & needles.names or any(
        n in p["name"] for p in patients for n in needles.names
    ), "the needles should be the names the vault holds"
    notes = json.loads(run("notes", "--patient", patients[0]["id"], "--json"))
    assert any(s in n["text"] for n in notes for s in needles.sentences)
    run("check")
    run("backup", str(vault_dir / "clinic-backup.nwv"))
    run("erase", "--patient", patients[-1]["id"], "--yes")

    # The API, with the vault left open (a live WAL) while scanning.
    v = Vault.open(path, PASSPHRASE)
    try:
        # re-import: only the erased patient comes back, written into the live WAL
        again = import_paths(v, [synthea_dir])
        assert 0 < again.counts["notes"]["imported"] < report["counts"]["notes"]["imported"]
        assert Path(str(path) + "-wal").stat().st_size > 0
        v.conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'patient'").fetchone()
        targets = _scan_targets(vault_dir, since, basetemp)
        assert any(p.name == "clinic.nwv" for p in targets)
        hits = scan_files(targets, needles)
        if hits:
            pytest.fail(f"plaintext patient data on disk (vault open): {_describe(hits)}")
    finally:
        v.close()

    targets = _scan_targets(vault_dir, since, basetemp)
    assert {"clinic.nwv", "clinic-backup.nwv"} <= {p.name for p in targets}
    hits = scan_files(targets, needles)
    if hits:
        pytest.fail(f"plaintext patient data on disk: {_describe(hits)}")
    log_hits = [h for i, log in enumerate(logs) for h in scan_bytes(log.encode(), needles, f"log {i}")]
    if log_hits:
        pytest.fail(f"patient data in the command's logs: {_describe(log_hits)}")
    assert any("INFO" in log for log in logs), "verbose logging should have produced log lines"
