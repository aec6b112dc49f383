"""The de-identification NER fine-tuned on nursing notes (issue 12): shipped with its
sha256, refused when changed, trained by `noteward finetune-deid-ner`, and better than
spaCy's own weights on nursing shorthand. The sentences below are invented in the style
of ICU nursing notes; none is quoted from a corpus."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_shared

ROOT = Path(__file__).resolve().parents[2]
DEID = ROOT / "resources" / "deid"

# (sentence, the name or place in it)
NURSING_NAMES = [
    ("Spoke with dtr marcy at length re plan of care, questions answered.", "marcy"),
    ("Wife Lorraine in to visit this am, updated on events overnight.", "Lorraine"),
    ("Dr. Okafor made aware of low UO, no new orders.", "Okafor"),
    ("Son Reuben called x2, will be in after work.", "Reuben"),
    ("D/W Kessler re: insulin gtt, will titrate per protocol.", "Kessler"),
    ("Resp: LS coarse bilat, sxn'd by T. HALVORSEN RRT for thick tan.", "HALVORSEN"),
    ("Pt from Bridgeton, lives alone, niece checks in daily.", "Bridgeton"),
    ("Plan to transfer back to Maplewood rehab when stable.", "Maplewood"),
    ("Family meeting with proxy deandra and SW tomorrow 1400.", "deandra"),
    ("Seen by Ortiz from renal, HD held today.", "Ortiz"),
]
# Shorthand lines holding no identifier at all.
NURSING_NO_PHI = [
    "Neuro: A+Ox3, MAE, PERRLA. CV: NSR 80s, SBP 110-130s, +PP. Resp: LS clear, RA sat 96%.",
    "GI: abd soft, +BS, tol TF at goal. GU: foley draining clear yellow urine, UO 40-60cc/hr.",
    "OOB to chair with PT, tol well. VSS. NKDA. Cont lasix gtt, K+ repleted per SS.",
    "ID: Tmax 100.2, cx pending, cont vanco/zosyn. Skin: coccyx intact, turned q2h.",
    "Social: full code, family updated by MICU team. Dispo: cont ICU care, poss c/o to floor.",
]


def _ner_pipeline(weights: bytes) -> Any:
    from noteward.deid.engine import ner_pipeline

    return ner_pipeline(weights)


def _found(nlp: Any) -> tuple[int, int]:
    """(names/places found, spans proposed on lines without any identifier)."""
    wanted = {"PERSON", "GPE", "LOC", "FAC", "ORG"}
    hits = 0
    for text, needle in NURSING_NAMES:
        s = text.index(needle)
        e = s + len(needle)
        hits += any(ent.label_ in wanted and ent.start_char < e and s < ent.end_char for ent in nlp(text).ents)
    false = sum(1 for text in NURSING_NO_PHI for ent in nlp(text).ents if ent.label_ in wanted)
    return hits, false


def test_shipped_weights_match_the_sha256_beside_them() -> None:
    from noteward.deid.engine import NER_META, trained_ner_weights

    meta = json.loads((DEID / NER_META).read_text(encoding="utf-8"))
    data = (DEID / meta["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == meta["sha256"] and len(data) == meta["size"]
    assert trained_ner_weights() == data
    assert "GPL-2.0" in meta["licence"] and "locked" in meta["trained_on"]


def _model_bytes(component_bytes: bytes) -> bytes:
    """The weights of a component's bytes, nothing else: the rest holds the shared
    vocabulary's strings (they grow as texts are processed) and layer settings such as
    the dropout rate, which only training reads (spaCy sets it to 0 when it evaluates)."""
    import srsly

    model = srsly.msgpack_loads(srsly.msgpack_loads(component_bytes)["model"])
    return b"".join(
        name.encode() + (arr.tobytes() if arr is not None else b"-")
        for layer in model["params"] for name, arr in sorted(layer.items())
    )


def test_the_engine_runs_the_trained_weights(deid: Any) -> None:
    from noteward.deid.engine import nlp_engine, stock_ner_weights, trained_ner_weights

    ours = _model_bytes(nlp_engine().nlp["en"].get_pipe("ner").to_bytes())
    assert ours == _model_bytes(trained_ner_weights())
    assert ours != _model_bytes(stock_ner_weights())


def test_changed_or_missing_weights_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from noteward.core.errors import ModelError
    from noteward.deid.engine import NER_META, trained_ner_weights

    res = tmp_path / "resources"
    shutil.copytree(ROOT / "resources", res)
    monkeypatch.setenv("NOTEWARD_RESOURCES", str(res))
    weights = res / "deid" / json.loads((res / "deid" / NER_META).read_text())["file"]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        trained_ner_weights()
    weights.unlink()
    with pytest.raises(ModelError, match="missing or unreadable"):
        trained_ner_weights()


def test_trained_weights_find_nursing_names_with_few_false_alarms() -> None:
    """On invented nursing lines the trained NER finds most names and places and proposes
    nothing on shorthand without identifiers, where spaCy's own weights take "Neuro",
    "OOB", "NKDA", "abd soft" and the like for people and organisations. (spaCy's own
    weights find more of these ten raw, lower-case "deandra" among them: the engine's
    relation rules cover those; measured: docs/deid.md, "Trained NER".)"""
    from noteward.deid.engine import stock_ner_weights, trained_ner_weights

    ours_hits, ours_false = _found(_ner_pipeline(trained_ner_weights()))
    stock_hits, stock_false = _found(_ner_pipeline(stock_ner_weights()))
    assert ours_hits >= 7, ours_hits
    assert ours_false <= 1 and stock_false >= 5 * max(1, ours_false), (ours_false, stock_false)


def test_surrogate_copies_keep_offsets_shape_and_case() -> None:
    from noteward.deid.evaluation import Note
    from noteward.training.deid_ner import surrogate_copies

    text = "dtr laverne visited. Seen by DR. J. KOWALSKI. Lives in Catonsville. Call 3/4."
    gold = [(4, 11, "RelativeProxyName"), (33, 44, "HCPName"), (55, 66, "Location"), (73, 76, "Date")]
    note = Note(1, 1, text, gold)
    copies = surrogate_copies([note], 3, random.Random(7))
    assert len(copies) == 3
    for c in copies:
        spans = [c.text[s:e] for s, e, _ in c.gold]
        assert [t for _, _, t in c.gold] == [t for _, _, t in gold]
        assert spans[0].islower() and spans[0].isalpha()
        assert spans[1].startswith(tuple("ABCDEFGHIJKLMNOPRSTW")) and spans[1][1:3] == ". " and spans[1].isupper()
        assert spans[2][:1].isupper()
        assert spans[3] == "3/4"  # dates are the rules' work: kept as they were
        assert c.text.startswith("dtr ") and c.text.endswith(". Call 3/4.")
    assert len({c.text for c in copies}) == 3


def test_training_runs_and_its_weights_load(tmp_path: Path) -> None:
    """A one-epoch run on a dozen development notes gives weights the pipeline loads."""
    from noteward.deid import evaluation as ev
    from noteward.training.deid_ner import train, write

    notes = ev.load_physionet(require_shared("deid_dev", ev.PHYSIONET_FILE), "dev", [1])[:12]
    weights = train(notes, epochs=1, copies=1)
    out = write(weights, tmp_path, {"trained_on": "test"})
    meta = json.loads((tmp_path / "ner_weights.json").read_text())
    assert meta["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    nlp = _ner_pipeline(out.read_bytes())
    assert nlp("Wife Lorraine in to visit.").text


def test_eval_refuses_a_file_that_is_not_ner_weights(tmp_path: Path, capsys: Any, deid: Any) -> None:
    from noteward.cli import main
    from noteward.deid.engine import nlp_engine, trained_ner_weights

    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"not a spaCy component")
    for arg, msg in ((str(tmp_path / "none.bin"), "No NER weights at"), (str(bad), "is not a spaCy NER component")):
        assert main(["eval", "deid", "--no-baseline", "--ner-weights", arg, "--limit", "1"]) == 2
        assert msg in capsys.readouterr().err
    # nothing was loaded: the process's engine still runs the shipped weights
    assert _model_bytes(nlp_engine().nlp["en"].get_pipe("ner").to_bytes()) == _model_bytes(trained_ner_weights())


def _ner_recognizer_hits(text: str) -> list[tuple[str, str]]:
    """What the NER recognizer alone returns for ``text``: (type, text) pairs."""
    from noteward.deid.engine import analyzer
    from noteward.deid.recognizers import ClinicalNerRecognizer

    an = analyzer()
    rec = next(r for r in an.registry.recognizers if isinstance(r, ClinicalNerRecognizer))
    arts = an.nlp_engine.process_text(text, "en")
    return [(r.entity_type, text[r.start : r.end]) for r in rec.analyze(text, ["LOCATION"], arts)]


def test_places_the_ner_finds_reach_the_recognizer(deid: Any) -> None:
    """Presidio renames spaCy's labels before recognizers see them (GPE, LOC and FAC become
    LOCATION, ORG becomes ORGANIZATION); the NER recognizer dropped every place for that
    reason until the trained NER landed."""
    text = "Plan to transfer back to Maplewood rehab when stable."
    found = _ner_recognizer_hits(text)
    assert ("LOCATION", "Maplewood") in found, found


def test_training_provenance_hash_covers_the_ner_weights() -> None:
    from noteward.deid import export
    from noteward.deid.engine import NER_META
    from noteward.training.deid_ner import WEIGHTS_FILE

    assert {NER_META, WEIGHTS_FILE} <= set(export._RULE_FILES)


def test_an_unwritable_out_folder_gets_a_clear_message(tmp_path: Path) -> None:
    from noteward.core.errors import UsageError
    from noteward.training.deid_ner import write

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="Cannot write the NER weights"):
        write(b"weights", blocker / "sub", {})


def test_a_place_the_ner_tags_word_by_word_is_kept_whole(deid: Any) -> None:
    """The trained NER tags a place word by word ("Silver", "Spring"); each word was judged
    alone, so an ordinary word of a place was dropped as "no known place" though the words
    together are one (out of fold, name rules off: "Square" of "Franklin Square", "River"
    of "Chester River")."""
    text = "Pt came from Manor Care nursing home.\nLives near Shady Grove, drives to Silver Spring.\n"
    found = _ner_recognizer_hits(text)
    assert ("LOCATION", "Silver Spring") in found, found
