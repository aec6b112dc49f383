"""`noteward eval deid` on a slice of the shared dev sets, and `noteward deid`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import require_shared


def test_eval_on_a_slice(deid: Any) -> None:
    from noteward.deid import evaluation

    data = require_shared("deid_dev")
    synthea = require_shared("synthea_fhir")
    rep = evaluation.run(data, synthea, which="odd", limit=40, baseline=True)
    assert set(rep["engines"]) == {"noteward", "presidio_default"}
    ours = rep["engines"]["noteward"]
    base = rep["engines"]["presidio_default"]
    for res in (ours, base):
        for set_name in ("asq_phi", "presidio_synth"):
            for level in ("entity", "token"):
                for row in res[set_name][level].values():
                    for k in ("recall", "precision", "f2"):
                        assert row[k] is None or 0.0 <= row[k] <= 1.0
        assert 0.0 <= res["over_redaction"]["rate"] <= 1.0
    # the clinical rules must beat Presidio's defaults on clinical queries
    assert ours["asq_phi"]["entity"]["ALL"]["recall"] > base["asq_phi"]["entity"]["ALL"]["recall"]
    assert ours["asq_phi"]["entity"]["ALL"]["recall"] >= 0.9
    assert ours["asq_phi"]["entity"]["ALL"]["precision"] >= 0.9
    text = evaluation.format_report(rep)
    assert "over-redaction" in text and "presidio_default" in text


def test_split_is_by_parity() -> None:
    from noteward.deid import evaluation

    recs = evaluation.load_asq(require_shared("deid_dev", "asq_phi.jsonl"))
    odd = evaluation.split(recs, "odd")
    even = evaluation.split(recs, "even")
    assert odd and even and all(r.rid % 2 for r in odd) and not any(r.rid % 2 for r in even)
    assert len(odd) + len(even) == len(recs)


def test_deid_command_json_offsets(tmp_path: Path, capsys: Any, deid: Any) -> None:
    from noteward.cli import main

    text = "Pt John Smith seen 3/4/2021 by Dr. Jones; MRN 1234567.\n"
    f = tmp_path / "note.txt"
    f.write_text(text, encoding="utf-8")
    assert main(["deid", "--text-file", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] == "Pt [NAME] seen [DATE] by Dr. [NAME]; MRN [MRN].\n"
    for e in out["entities"]:
        assert text[e["start"] : e["end"]] == e["text"]
        assert set(e) == {"type", "start", "end", "score", "text"}


def test_deid_command_surrogates_from_a_secret_file(tmp_path: Path, capsys: Any, deid: Any) -> None:
    from noteward.cli import main

    f = tmp_path / "note.txt"
    f.write_text("Mary Johnson seen 2021-03-04.", encoding="utf-8")
    s = tmp_path / "secret"
    s.write_text("ab" * 32)
    runs = []
    for _ in range(2):
        assert main(["deid", "--text-file", str(f), "--mode", "surrogate", "--secret-file", str(s)]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1]
    assert "Mary" not in runs[0] and "2021-03-04" not in runs[0]


def test_deid_command_missing_file(tmp_path: Path, capsys: Any) -> None:
    from noteward.cli import main

    assert main(["deid", "--text-file", str(tmp_path / "nope.txt")]) == 2
    assert "Cannot read" in capsys.readouterr().err


def test_swapped_names_keep_the_note_around_them() -> None:
    """`--swap-names SEED`: every gold name and place of a development note is replaced by a
    random Census name or US place of the same shape; the rest of the note is unchanged and
    the gold offsets follow. Notes without a name or place stay as they are."""
    import random

    from noteward.deid.evaluation import Note, swap_names

    text = "dtr laverne visited. Seen by DR. J. KOWALSKI. Lives in Catonsville. Call 3/4."
    gold = [(4, 11, "RelativeProxyName"), (33, 44, "HCPName"), (55, 66, "Location"), (73, 76, "Date")]
    plain = Note(2, 2, "BP 120/80, afebrile.", [])
    swapped = swap_names([Note(1, 1, text, gold), plain], random.Random(3))
    assert swapped[1] is plain
    s = swapped[0]
    assert [t for _, _, t in s.gold] == [t for _, _, t in gold]
    spans = [s.text[a:b] for a, b, _ in s.gold]
    assert spans[0] != "laverne" and spans[0].islower()
    assert "KOWALSKI" not in s.text and "Catonsville" not in s.text
    assert spans[3] == "3/4" and s.text.startswith("dtr ") and s.text.endswith(". Call 3/4.")
    again = swap_names([Note(1, 1, text, gold)], random.Random(3))[0]
    assert again.text == s.text  # seeded


def test_eval_swap_names_scores_the_dev_folds(deid: Any) -> None:
    from noteward.deid import evaluation

    data = require_shared("deid_dev", "physionet_dev.jsonl").parent
    rep = evaluation.run(data, None, which="all", limit=4, baseline=False, folds=[0], swap_seed=5)
    assert rep["swap_seed"] == 5
    chars = rep["engines"]["noteward"]["physionet_dev"]["chars"]
    assert chars["ALL"]["n"] > 0
    assert "names and places swapped" in evaluation.format_report(rep)
