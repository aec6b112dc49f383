"""`noteward index` and `noteward search` as a user runs them (a real subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PASSPHRASE
from tests.retrieval.conftest import NOTES, write_notes
from tests.support.cli import noteward


def test_index_then_search_json(tmp_path: Path) -> None:
    vault = str(tmp_path / "v" / "cli.nwv")
    assert noteward("init", "--vault", vault, passphrase=PASSPHRASE).returncode == 0
    notes = write_notes(tmp_path / "notes", NOTES)
    assert noteward("import", "--vault", vault, str(notes), passphrase=PASSPHRASE).returncode == 0

    first = noteward("index", "--vault", vault, "--json", passphrase=PASSPHRASE, timeout=300)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["added"] == report["chunks"] == report["embedded"] > 0
    assert "embedding chunks" in first.stderr  # progress goes to stderr

    again = noteward("index", "--vault", vault, passphrase=PASSPHRASE, timeout=300)
    assert again.returncode == 0 and "Embedded 0 new chunks" in again.stdout

    res = noteward("search", "--vault", vault, "--json", "--patient", "MRN-B", "--k", "3",
                   'warfarin "AND(', passphrase=PASSPHRASE, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    hits = out["hits"]
    assert 1 <= len(hits) <= 3
    patients = json.loads(noteward("patients", "--vault", vault, "--json", passphrase=PASSPHRASE).stdout)
    b = next(p["id"] for p in patients if p["source_id"] == "MRN-B")
    assert out["patient"] == b and {h["patient_id"] for h in hits} == {b}
    top = hits[0]
    assert "warfarin" in top["text"]
    assert {"note_id", "start", "end", "text", "score", "bm25_rank", "bm25_score", "dense_rank",
            "dense_score", "highlights"} <= set(top)
    notes_json = json.loads(noteward("notes", "--vault", vault, "--json", "--patient", b,
                                     passphrase=PASSPHRASE).stdout)
    text = next(n["text"] for n in notes_json if n["id"] == top["note_id"])
    assert text[top["start"]:top["end"]] == top["text"]
    assert [text[a:b_] for a, b_ in top["highlights"]] == ["warfarin"]


def test_search_errors_are_clear(tmp_path: Path) -> None:
    vault = str(tmp_path / "v" / "cli.nwv")
    assert noteward("init", "--vault", vault, passphrase=PASSPHRASE).returncode == 0
    unknown = noteward("search", "--vault", vault, "--patient", "nobody", "x", "--mode", "bm25",
                       passphrase=PASSPHRASE)
    assert unknown.returncode == 6 and "Unknown patient" in unknown.stderr
    bad_k = noteward("search", "--vault", vault, "--k", "0", "x", passphrase=PASSPHRASE)
    assert bad_k.returncode == 2 and "--k" in bad_k.stderr
    empty = noteward("search", "--vault", vault, "anything", "--mode", "bm25", passphrase=PASSPHRASE)
    assert empty.returncode == 0 and "No matches" in empty.stdout


def test_cli_modes_are_the_search_modes() -> None:
    from noteward.retrieval.commands import SEARCH_MODES
    from noteward.retrieval.search import MODES

    assert SEARCH_MODES == MODES
