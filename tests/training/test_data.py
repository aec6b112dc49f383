"""Training-set builders: train splits only, no eval patients, targets in grounded-v1 form."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from noteward.core.errors import UsageError
from noteward.llm.prompts import parse_output
from noteward.training import data
from noteward.training.text import best_sources, content_words, split_dialogue, split_sentences
from tests.conftest import require_shared

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def shared() -> Path:
    return require_shared("mts_dialog").parent


@pytest.fixture(scope="module")
def built(shared: Path) -> dict[str, list[data.Example]]:
    limits = {"mts-dialog": 120, "aci-bench": 40, "meqsum": 40, "synthea": 60}
    return {s: data.build_examples([s], shared, seed=3, limits=limits) for s in limits}


def _eval_patient_names(shared: Path) -> set[str]:
    names: set[str] = set()
    with (shared / "synthea_fhir" / "Patient.000.ndjson").open(encoding="utf-8") as fh:
        for line in fh:
            p = json.loads(line)
            if data.is_eval_patient(p["id"]):
                for n in p.get("name", []):
                    names.update(n.get("given", []))
                    if n.get("family"):
                        names.add(n["family"])
    return {n for n in names if re.search(r"\d", n)}  # Synthea names carry digits: unique


@pytest.mark.parametrize("source", ["mts-dialog", "aci-bench", "meqsum", "synthea"])
def test_targets_parse_back_to_the_same_bullets(built: dict[str, list[data.Example]], source: str) -> None:
    examples = built[source]
    assert len(examples) >= 10
    for ex in examples:
        parsed = parse_output(ex.target())
        assert [(s, " ".join(t.split()), ids) for s, t, ids in parsed] == [
            (s, " ".join(t.split()), ids) for s, t, ids in ex.bullets
        ]
        assert all(1 <= i <= len(ex.sentences) for _, _, ids in ex.bullets for i in ids)
        assert all(ids for _, _, ids in ex.bullets), "every bullet cites a sentence"
        assert ex.prompt().endswith("\n") and f"[S{len(ex.sentences)}] " in ex.prompt()


@pytest.mark.parametrize("source", ["mts-dialog", "aci-bench", "meqsum", "synthea"])
def test_no_bullet_carries_a_number_its_sources_lack(built: dict[str, list[data.Example]], source: str) -> None:
    for ex in built[source]:
        source_numbers = data.numbers(" ".join(ex.sentences))
        for _, text, _ in ex.bullets:
            assert data.numbers(text) <= source_numbers, text


def test_cited_sentences_share_words_with_the_bullet(built: dict[str, list[data.Example]]) -> None:
    for exs in built.values():
        for ex in exs:
            for _, text, ids in ex.bullets:
                cited = set().union(*(content_words(ex.sentences[i - 1]) for i in ids))
                assert content_words(text) & cited


def test_synthea_keeps_the_eval_patients_out(shared: Path, built: dict[str, list[data.Example]]) -> None:
    patients = data._synthea_patients(shared / "synthea_fhir")
    assert patients and not any(data.is_eval_patient(pid) for pid in patients)
    names = _eval_patient_names(shared)
    assert names, "the eval patients' names are needed to check for leaks"
    for ex in data.build_examples(["synthea"], shared, seed=0, limits={"synthea": 1000}):
        blob = " ".join(ex.sentences)
        assert not any(n in blob for n in names)


def test_synthea_bullets_are_facts_the_fhir_resources_confirm(built: dict[str, list[data.Example]]) -> None:
    sections = {s for ex in built["synthea"] for s, _, _ in ex.bullets}
    assert {"Problems", "Medications"} <= sections
    for ex in built["synthea"]:
        for section, text, ids in ex.bullets:
            if section in ("Problems", "Medications", "Allergies"):
                # the fact is stated (case-insensitively) in the sentence it cites
                assert any(text.lower() in ex.sentences[i - 1].lower() for i in ids), text


def test_only_train_splits_are_read(shared: Path, tmp_path: Path) -> None:
    assert not any("test" in f.lower() or "valid" in f.lower() for f in data.TRAIN_FILES.values())
    fake = tmp_path / "mts_dialog"
    fake.mkdir()
    (fake / "MTS-Dialog-TestSet-1.csv").write_text("ID,section_header,section_text,dialogue\n", encoding="utf-8")
    monkey = dict(data.TRAIN_FILES)
    try:
        data.TRAIN_FILES["mts-dialog"] = "mts_dialog/MTS-Dialog-TestSet-1.csv"
        with pytest.raises(UsageError, match="test split"):
            list(data.mts_dialog(tmp_path, 640))
    finally:
        data.TRAIN_FILES.clear()
        data.TRAIN_FILES.update(monkey)


def test_balance_caps_the_big_groups(built: dict[str, list[data.Example]]) -> None:
    report = data.balance_report(built["mts-dialog"])
    kinds = {k.split("/", 1)[1]: v for k, v in report["kind"].items()}
    # family/social history is ~30% of MTS-Dialog's training set; round-robin caps it
    assert kinds.get("fam/sochx", 0) <= max(kinds.values())
    assert len(kinds) >= 10
    assert report["examples"] == 120
    assert sum(report["source"].values()) == 120


def test_examples_respect_the_token_budget(shared: Path) -> None:
    for ex in data.build_examples(["aci-bench", "synthea"], shared, seed=1, max_tokens=400, limits={"aci-bench": 30, "synthea": 30}):
        assert data._fits(ex.sentences, ex.bullets, 400)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("mts-dialog", ["mts-dialog"]),
        ("mts-dialog, synthea,mts-dialog", ["mts-dialog", "synthea"]),
        ("MeQSum", ["meqsum"]),
    ],
)
def test_parse_sources(spec: str, expected: list[str]) -> None:
    assert data.parse_sources(spec) == expected


@pytest.mark.parametrize("spec", ["", "mimic", "mts-dialog,pubmed"])
def test_parse_sources_rejects_unknown(spec: str) -> None:
    with pytest.raises(UsageError, match="Choose from"):
        data.parse_sources(spec)


def test_vault_source_needs_a_vault(shared: Path) -> None:
    with pytest.raises(UsageError, match="needs a vault"):
        data.build_examples(["vault"], shared)


def test_vault_source_deidentifies_approved_summaries(shared: Path, vault: Any, tmp_path: Path) -> None:
    from noteward.ingest.importer import import_paths

    text = "Zebulon Quarrington has hypertension. He takes lisinopril 10 mg daily. Follow up in 3 months."
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p9", "resource": {"resourceType": "Patient", "id": "p9", "gender": "male",
         "name": [{"family": "Quarrington", "given": ["Zebulon"]}], "birthDate": "1950-02-03"}},
        {"fullUrl": "urn:uuid:d9", "resource": {
            "resourceType": "DocumentReference", "id": "d9", "subject": {"reference": "urn:uuid:p9"},
            "date": "2021-05-06", "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                                             "data": base64.b64encode(text.encode()).decode()}}]}},
    ]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    import_paths(vault, [path])
    patient = vault.patient("p9")
    note = vault.notes(patient.id)[0]
    approved = "Problems:\n- Zebulon Quarrington has hypertension [S1]\nMedications:\nLisinopril 10 mg daily"
    with vault.transaction() as conn:
        conn.execute(
            "INSERT INTO summaries(id, patient_id, created_at, model_id, model_sha256, prompt_version, covers, body,"
            " approved_text, approved_at) VALUES ('sm_t1', ?, '2021-05-07', 'm', 'x', 'grounded-v1', ?, '{}', ?, '2021-05-07')",
            (patient.id, json.dumps({"note_ids": [note.id]}), approved),
        )
    examples = data.build_examples(["vault"], shared, vault=vault)
    assert len(examples) == 1
    ex = examples[0]
    blob = ex.prompt() + ex.target()
    assert "Zebulon" not in blob and "Quarrington" not in blob
    assert {s for s, _, _ in ex.bullets} == {"Problems", "Medications"}
    assert any("lisinopril 10 mg" in t.lower() for _, t, _ in ex.bullets)
    assert data.balance_report(examples)["source"] == {"vault": 1}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("# Medications\n- lisinopril 10 mg oral tablet\n", ["lisinopril 10 mg oral tablet"]),
        ("She is well. He is not. Dose 2.5 mg daily.", ["She is well.", "He is not.", "Dose 2.5 mg daily."]),
        ("  \n\nNo Known Allergies.\n", ["No Known Allergies."]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_dialogue_keeps_speakers() -> None:
    out = split_dialogue("Doctor: How are you? Any pain?\nPatient: No. I am fine.\n[doctor] good")
    assert out == ["Doctor: How are you?", "Doctor: Any pain?", "Patient: No.", "Patient: I am fine.", "Doctor: good"]


def test_best_sources_prefers_overlap() -> None:
    bags = [content_words(s) for s in ["Patient: I take metformin daily.", "Doctor: Any allergies?", "Patient: Penicillin gives me a rash."]]
    assert best_sources("Allergic to penicillin (rash).", bags) == [2]
    assert best_sources("Takes metformin daily; penicillin rash.", bags) == [0, 2]
    assert best_sources("Unrelated words entirely", bags) == []


@pytest.mark.parametrize("source", ["mts-dialog", "aci-bench"])
def test_verified_targets_keep_only_what_the_aligner_accepts(shared: Path, source: str) -> None:
    from itertools import islice

    from noteward.llm.grounding import SourceIndex

    make = data.mts_dialog if source == "mts-dialog" else data.aci_bench
    plain = list(islice(make(shared, 600), 40))
    verified = list(islice(make(shared, 600, verify=True), 40))
    assert verified
    for ex in verified:
        index = SourceIndex({"source": "\n".join(ex.sentences)})
        assert all(index.align(text).supported for _s, text, _ids in ex.bullets), ex.ref
    # the plain set keeps reference sentences the aligner would flag
    flagged = sum(
        not SourceIndex({"source": "\n".join(ex.sentences)}).align(text).supported
        for ex in plain
        for _s, text, _ids in ex.bullets
    )
    assert flagged > 0


def test_visit_examples_are_shaped_like_the_product_prompt(shared: Path) -> None:
    """Whole-visit ACI-Bench examples: the product's own prompt lines, verified new targets."""
    import csv

    from noteward.llm import prompts
    from noteward.llm.grounding import SourceIndex
    from noteward.llm.summarizer import SourceNote, SummaryService, select, similar_words

    visits = list(data.aci_visits(shared, 1496, prompts_per_visit=4))
    rows = {r["encounter_id"]: r for r in csv.DictReader((shared / "aci_bench" / "train.csv").open(encoding="utf-8"))}
    assert len({ex.ref.split(":")[1] for ex in visits}) >= 0.8 * len(rows)  # most visits give one
    by_visit: dict[str, list[data.Example]] = {}
    for ex in visits:
        by_visit.setdefault(ex.ref.split(":")[1], []).append(ex)
        assert ex.source == "aci-bench" and ex.kind.endswith("/visit")
        index = SourceIndex({"source": "\n".join(ex.sentences)})
        assert all(index.align(text).supported for _s, text, _ids in ex.bullets), ex.ref
        assert sum(len(text) + 12 for _s, text, _ids in ex.bullets) <= data.VISIT_TARGET_CHARS
        assert parse_output(prompts.format_target(ex.bullets)) == ex.bullets
    # smaller budgets show fewer lines of the same visit, always a prefix of the larger prompt
    for exs in by_visit.values():
        for big, small in zip(exs, exs[1:], strict=False):
            assert len(small.sentences) < len(big.sentences)
            assert big.sentences[: len(small.sentences)] == small.sentences

    # the product, with the real model's tokenizer, shows a prefix of the same ranked lines
    svc = SummaryService(model_id="smollm2-135m-instruct-q4_1", threads=1, prompt_token_cap=700)
    try:
        checked = 0
        for enc, exs in list(by_visit.items())[:5]:
            sel = select([SourceNote("input", rows[enc]["dialogue"])])
            _prompt, lines, _ids, _n = svc._prompt(sel)
            lines = [" ".join(t.split()) for t in lines]
            longest = exs[0].sentences
            n = min(len(lines), len(longest))
            assert n >= 3 and lines[:n] == longest[:n], enc
            # no target restates a skeleton sentence (the product would drop it as a duplicate)
            skeleton = [t for _s, _u, t, _i in sel.skeleton]
            for ex in exs:
                for _s, text, _ids in ex.bullets:
                    assert all(similar_words(text, s) < 0.8 for s in skeleton), (enc, text)
            checked += 1
        assert checked == 5
    finally:
        svc.close()


def test_visit_prompts_join_the_aci_set_only_when_asked(shared: Path) -> None:
    limits = {"aci-bench": 60}
    without = data.build_examples(["aci-bench"], shared, seed=3, limits=limits)
    with_visits = data.build_examples(["aci-bench"], shared, seed=3, limits=limits, aci_visit_prompts=1)
    assert not any(ex.kind.endswith("/visit") for ex in without)
    visits = [ex for ex in with_visits if ex.kind.endswith("/visit")]
    assert visits and all(ex.ref.endswith(":visit1024") for ex in visits)
    assert len(with_visits) <= 60
