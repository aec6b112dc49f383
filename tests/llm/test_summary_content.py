"""What a clinician reads: dated, current, capped summaries of the shared Synthea patients.

One real vault (the shared Synthea FHIR export imported as a user would, plus one newer
plain-text note for the 15-note patient documenting a penicillin allergy) serves every test.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from noteward import cli
from tests.conftest import PASSPHRASE
from tests.llm.conftest import ADDED_DATE

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

LONG = "79a66c97"  # 708 notes, 1936-1994
ALLERGIC = "a5cb8ce9"  # FHIR allergies recorded 1928; every note says "No Known Allergies."
SMALL = "63ee2253"  # 15 notes, 2013-2022 (plus the added note below)
PREGNANT = "ca15b832"  # 63 notes, many social findings

# Synthea's social and administrative "(finding)"/"(situation)" codes, as a reader names them
SOCIAL = re.compile(
    r"employment|education|criminal|stress|housing|labor force|social contact|isolation"
    r"|violence|intimate partner|abuse|insurance|incarceration|refugee|transport",
    re.IGNORECASE,
)
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def patient(vault: Any, prefix: str) -> Any:
    return next(p for p in vault.patients() if (p.source_id or "").startswith(prefix))


def extractive(vault: Any, prefix: str, **kw: Any) -> Any:
    from noteward.llm.summarizer import SummaryService

    svc = SummaryService(use_model=False, **kw)
    return svc.summarize_patient(vault, patient(vault, prefix).id, save=False)


@pytest.fixture(scope="session")
def long_with_model(content_vault: Any, smollm_runtime: Any) -> Any:
    """The 708-note patient summarized with the real model, default settings."""
    from noteward.llm.summarizer import SummaryService

    svc = SummaryService(
        model_id="smollm2-135m-instruct-q4_1", threads=2, max_new_tokens=96, prompt_token_cap=512
    )
    svc._runtime = smollm_runtime
    try:
        return svc.summarize_patient(content_vault, patient(content_vault, LONG).id, save=False)
    finally:
        svc._runtime = None


def newest_note_date(vault: Any, prefix: str) -> date:
    notes = vault.notes(patient(vault, prefix).id)
    return date.fromisoformat(max(str(n.date)[:10] for n in notes if n.date))


def months_before(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    m += 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(y, m, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


# -- allergies: the newest statement wins, the disagreement is shown ----------------------


@pytest.mark.parametrize("with_model", [False, True], ids=["extractive", "model"])
def test_newer_penicillin_allergy_is_a_conflict_not_no_known_allergies(
    content_vault: Any, summary_service: Any, with_model: bool
) -> None:
    if with_model:
        res = summary_service.summarize_patient(
            content_vault, patient(content_vault, SMALL).id, save=False
        )
    else:
        res = extractive(content_vault, SMALL)
    penicillin = [s for s in res.sentences if "penicillin" in s.text.lower()]
    assert penicillin, [s.text for s in res.sentences]
    assert all(s.section == "Allergies" for s in penicillin), [(s.section, s.text) for s in penicillin]
    flagged = [s for s in penicillin if s.conflicts]
    assert flagged, "the allergy is shown without its conflicting statement"
    s = flagged[0]
    assert s.date == ADDED_DATE and s.origin in ("extract", "fact")
    assert any(re.search(r"no known allergies", c.text, re.I) for c in s.conflicts)
    notes = {n.id: n for n in content_vault.notes(patient(content_vault, SMALL).id)}
    for c in s.conflicts:
        assert c.date is not None and c.date < ADDED_DATE
        assert c.sources and all(src.note_id in notes for src in c.sources)
    # "No Known Allergies" is never shown as the current state, and nothing allergic in Plan
    for x in res.sentences:
        if re.search(r"no known allergies|\bnkda\b", x.text, re.I):
            assert x.conflicts, f"unconflicted {x.text!r} in {x.section}"
        if x.section == "Plan":
            assert not re.search(r"allerg|penicillin", x.text, re.I), x.text


def test_record_allergies_against_newer_no_known_allergies_is_a_conflict(content_vault: Any) -> None:
    """FHIR records a tree nut allergy (1928); every later note says No Known Allergies."""
    res = extractive(content_vault, ALLERGIC)
    allergies = [s for s in res.sentences if s.section == "Allergies"]
    assert allergies and all(s.conflicts for s in allergies), [s.text for s in allergies]
    said = " ".join([s.text for s in allergies] + [c.text for s in allergies for c in s.conflicts])
    assert re.search(r"no known allergies", said, re.I) and re.search(r"tree nut", said, re.I)
    # the newest statement (the 2023 note) is shown with the 1928 record as its conflict
    shown = next(s for s in allergies if re.search(r"no known allergies", s.text, re.I))
    assert re.search(r"no known allergies", shown.text, re.I) and shown.date == "2023-02-05"
    assert any(c.date == "1928-11-23" and re.search("tree nut", c.text, re.I) for c in shown.conflicts)


def test_a_recorded_allergy_stays_on_screen_when_newer_notes_say_no_known_allergies(
    content_vault: Any,
) -> None:
    """A clinician must see a documented allergy as a sentence of its own, never only inside
    the conflict tooltip of "No Known Allergies." (the newer statement does not silently win)."""
    res = extractive(content_vault, ALLERGIC)
    allergies = [s for s in res.sentences if s.section == "Allergies"]
    shown = " ".join(s.text for s in allergies)
    for allergen in ("tree nut", "sulfamethoxazole", "mold"):
        assert re.search(allergen, shown, re.I), (allergen, [s.text for s in allergies])
    for s in allergies:
        if not re.search(r"no known allergies", s.text, re.I):
            assert any(re.search(r"no known allergies", c.text, re.I) for c in s.conflicts), s.text


# -- problems: active vs resolved, no social findings, the current diagnosis ---------------


@pytest.mark.parametrize("prefix", [LONG, ALLERGIC, PREGNANT])
def test_no_social_or_administrative_finding_in_problems(content_vault: Any, prefix: str) -> None:
    res = extractive(content_vault, prefix)
    problems = [s for s in res.sentences if s.section in ("Problems", "Resolved problems")]
    assert problems
    bad = [s.text for s in problems if SOCIAL.search(s.text)]
    assert not bad, bad


def test_model_sentences_keep_social_findings_out_of_problems_too(long_with_model: Any) -> None:
    problems = [s for s in long_with_model.sentences if s.section in ("Problems", "Resolved problems")]
    assert problems
    assert not [s.text for s in problems if SOCIAL.search(s.text)]


def test_problems_show_the_current_diagnosis_and_split_resolved(content_vault: Any) -> None:
    res = extractive(content_vault, LONG)
    active = [s.text.lower() for s in res.sentences if s.section == "Problems"]
    resolved = [s.text.lower() for s in res.sentences if s.section == "Resolved problems"]
    assert any("diabetes mellitus type 2" in t for t in active), active
    # prediabetes was superseded by type 2 diabetes: not listed as a problem of its own
    assert not any(t.startswith("prediabetes") for t in active), active
    assert any("chronic kidney disease stage 4" in t for t in active), active
    for stage in ("stage 1", "stage 2", "stage 3"):
        assert not any(f"chronic kidney disease {stage}" in t for t in active), active
    assert resolved, "no resolved problem shown"
    for s in res.sentences:
        if s.section in ("Problems", "Resolved problems"):
            assert s.origin == "fact" and s.date and ISO_DATE.match(s.date)


def test_medication_change_is_shown_with_its_date(content_vault: Any) -> None:
    """tacrolimus 5 mg/ml injection (to 1990-12-30), then the 1 mg tablet from 1991-10-12."""
    res = extractive(content_vault, LONG, max_sentences=40)
    tac = [s for s in res.sentences if s.section == "Medications" and "tacrolimus" in s.text.lower()]
    assert len(tac) == 1, [s.text for s in res.sentences if s.section == "Medications"]
    assert "→" in tac[0].text and tac[0].date == "1991-10-12" and tac[0].origin == "fact"
    assert tac[0].text.lower().index("injection") < tac[0].text.index("→")
    # a medication the record has stopped is never shown as current: when the newer note
    # still lists it, it is on the stopped line with that note as its conflict
    assert not [s for s in res.sentences if s.section == "Medications" and re.search("epoetin|meperidine", s.text, re.I)]
    stopped = [s for s in res.sentences if s.section == "Stopped medications"]
    assert stopped and re.search("epoetin|meperidine", stopped[0].text, re.I)
    assert any(re.search("epoetin|meperidine", c.text, re.I) for c in stopped[0].conflicts)


_ENDED_STATUS = {"stopped", "completed", "cancelled", "entered-in-error", "inactive", "ended"}


@pytest.mark.parametrize("prefix", [PREGNANT, LONG])
def test_stopped_medications_leave_medications_but_stay_on_screen(content_vault: Any, prefix: str) -> None:
    """Synthea's newest note lists every medication ever ordered (for the 63-note patient:
    Mirena last ordered 2016, amoxicillin 2013), while the record's order status is its state
    when it was exported, newer than any note. Medications lists only current orders; a
    stopped order the newest note still lists is shown on one 'Stopped medications' line,
    each with the note that still lists it as its conflict, never silently dropped."""
    p = patient(content_vault, prefix)
    latest: dict[str, dict[str, Any]] = {}
    for f in content_vault.facts(p.id):
        if f["kind"] == "medication" and f["display"]:
            k = " ".join(str(f["display"]).lower().split())
            if k not in latest or str(f["date"] or "") >= str(latest[k]["date"] or ""):
                latest[k] = f
    stopped = {k for k, f in latest.items() if str(f["status"] or "active").lower() in _ENDED_STATUS}
    assert stopped
    res = extractive(content_vault, prefix, max_sentences=40)
    for s in res.sentences:
        if s.section == "Medications":
            current_part = s.text.split("→")[-1].lower()  # a change names the old strength first
            named = [k for k in stopped if k in current_part and not any(
                k != a and k in a and a in current_part for a in latest if a not in stopped)]
            assert not named, (s.text, named)
    lines = [s for s in res.sentences if s.section == "Stopped medications"]
    if prefix == PREGNANT:
        assert len(lines) == 1, [(s.section, s.text) for s in res.sentences]
        low = lines[0].text.lower()
        for drug in ("mirena", "amoxicillin", "nitrofurantoin", "etonogestrel"):
            assert drug in low
        assert lines[0].origin == "fact" and lines[0].date and ISO_DATE.match(lines[0].date)
        assert len(lines[0].conflicts) >= 4
        assert all(c.date and c.sources for c in lines[0].conflicts)
        assert all("2023-03-22" in c.text for c in lines[0].conflicts)
    assert len(lines) <= 1


def test_a_model_line_naming_a_stopped_order_is_not_current_and_the_cap_keeps_the_stopped_line(
    content_vault: Any,
) -> None:
    """With the model on (3 of 15 lines), the 63-note patient's summary said "Medications:
    Camila 28 day pack" (last ordered 2012) and the cap left the stopped line out."""
    from noteward.llm.composition import Who, compose
    from noteward.llm.selection import SourceNote, select

    p = patient(content_vault, PREGNANT)
    notes = [SourceNote(n.id, n.text, n.date) for n in content_vault.notes(p.id)]
    facts = content_vault.facts(p.id)
    who = Who(p.birth_date, p.sex, p.deceased_date if p.deceased else None)
    comp = compose(select(notes, facts), facts, who=who, model_slots=3, max_sentences=15)
    assert [d.section for d in comp.drafts].count("Stopped medications") == 1
    assert comp.place_model_sentence("Medications", "Camila 28 day pack", "2015-02-18") == "Stopped medications"
    assert comp.place_model_sentence("Medications", "Ibuprofen 400 mg oral tablet", "2022-03-30") == "Medications"


# -- recent findings: inside the window, each dated ----------------------------------------


@pytest.mark.parametrize(("prefix", "months"), [(LONG, None), (LONG, 1), (LONG, 60), (PREGNANT, None), (PREGNANT, 24)])
def test_every_recent_finding_is_inside_the_window(
    content_vault: Any, prefix: str, months: int | None
) -> None:
    kw = {} if months is None else {"recent_months": months}
    res = extractive(content_vault, prefix, **kw)
    newest = newest_note_date(content_vault, prefix)
    start = months_before(newest, months or 12)
    recent = [s for s in res.sentences if s.section == "Recent findings"]
    if months is None and prefix == LONG:
        assert recent, "the newest notes' findings are missing"
    for s in recent:
        assert s.date is not None, s.text
        assert start <= date.fromisoformat(s.date) <= newest, (s.date, s.text)


def test_model_recent_findings_are_inside_the_window(content_vault: Any, long_with_model: Any) -> None:
    newest = newest_note_date(content_vault, LONG)
    for s in long_with_model.sentences:
        if s.section == "Recent findings":
            assert s.date and months_before(newest, 12) <= date.fromisoformat(s.date) <= newest


# -- the cap, the top line, dates and origins ----------------------------------------------


def test_the_cap_is_respected(content_vault: Any, long_with_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert 5 <= len(long_with_model.sentences) <= 15
    assert len(extractive(content_vault, LONG, max_sentences=6).sentences) <= 6
    monkeypatch.setenv("NOTEWARD_SUMMARY_MAX_SENTENCES", "9")
    res = extractive(content_vault, PREGNANT)
    assert 5 <= len(res.sentences) <= 9


def test_top_line_says_who_the_patient_is_and_why_seen(content_vault: Any) -> None:
    res = extractive(content_vault, SMALL)
    top = res.sentences[0]
    assert top.section == "Patient" and top.origin == "fact" and top.date == ADDED_DATE
    assert "11-year-old male" in top.text, top.text
    assert re.search(r"hives|rash", top.text, re.I), top.text  # why seen now (newest note)
    assert sum(1 for s in res.sentences if s.section == "Patient") == 1


def test_json_sentences_have_date_and_origin(
    content_vault: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTEWARD_PASSPHRASE", PASSPHRASE)
    args = [
        "summarize", "--patient", patient(content_vault, LONG).source_id, "--json",
        "--model", "smollm2-135m-instruct-q4_1", "--threads", "2",
        "--recent-months", "6", "--max-sentences", "12",
        "--vault", str(content_vault.path),
    ]
    assert cli.main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["sentences"]) <= 12
    origins = set()
    newest = newest_note_date(content_vault, LONG)
    for s in data["sentences"]:
        assert {"text", "section", "sources", "support", "supported", "date", "origin"} <= set(s)
        assert s["origin"] in ("model", "extract", "fact"), s
        assert s["date"] is not None and ISO_DATE.match(s["date"]), s
        origins.add(s["origin"])
        if s["section"] == "Recent findings":
            assert months_before(newest, 6) <= date.fromisoformat(s["date"]) <= newest
    assert {"fact", "extract"} <= origins


def test_old_saved_summaries_still_load(content_vault: Any, tmp_path: Path) -> None:
    """A summary saved before sentences had dates/origins reads back, labelled with its model."""
    from noteward.core.models import Summary
    from noteward.llm.summarizer import latest_summary

    p = patient(content_vault, PREGNANT)
    old_body = {
        "patient": p.id,
        "model": {"id": "smollm2-135m-instruct-q4_1", "sha256": "ab" * 32},
        "sentences": [
            {"text": "No Known Allergies.", "section": "Allergies",
             "sources": [{"note_id": "nt_gone", "start": 0, "end": 19}], "support": 1.0, "supported": True},
            {"text": "Nitrilite 4000 unt/ml injection", "section": "Medications",
             "sources": [], "support": 0.2, "supported": False},
        ],
        "timings": {"retrieval_ms": 1.0, "prompt_tokens": 10, "ttft_ms": 2.0, "generated_tokens": 3, "total_ms": 9.0},
    }
    with content_vault.transaction() as conn:  # the row exactly as the old code wrote it
        conn.execute(
            "INSERT INTO summaries(id, patient_id, created_at, model_id, model_sha256, prompt_version, covers, body)"
            " VALUES (?,?,?,?,?,?,?,?)",
            ("sm_old0000001", p.id, "2000-01-01T00:00:00Z", "smollm2-135m-instruct-q4_1", "ab" * 32,
             "grounded-v1", json.dumps({"note_ids": ["nt_gone"], "date_range": [None, None]}), json.dumps(old_body)),
        )
    stored = latest_summary(content_vault, p.id)
    assert stored is not None
    s = Summary.from_stored(stored)
    assert s.summary_id == "sm_old0000001" and s.model["id"] == "smollm2-135m-instruct-q4_1"
    assert s.out_of_date is True
    assert [x.text for x in s.sentences] == ["No Known Allergies.", "Nitrilite 4000 unt/ml injection"]
    assert all(x.date is None and x.origin is None and x.conflicts == [] for x in s.sentences)
    assert s.sentences[1].supported is False
    # and it prints, labelled with the model that wrote it
    from io import StringIO

    from noteward.llm.commands import print_summary

    out = StringIO()
    print_summary(s, out=out)
    assert "smollm2-135m-instruct-q4_1" in out.getvalue() and "No Known Allergies." in out.getvalue()


def test_a_model_sentence_naming_a_stopped_medication_carries_the_stop(content_vault: Any) -> None:
    """The model copied 'Nitrofurantoin 5 mg/ml oral suspension' (stopped in 1986) as current."""
    from noteward.llm.composition import compose
    from noteward.llm.selection import SourceNote, select

    p = patient(content_vault, LONG)
    notes = [SourceNote(n.id, n.text, n.date) for n in content_vault.notes(p.id)]
    facts = content_vault.facts(p.id)
    comp = compose(select(notes, facts), facts, model_slots=3)
    stopped = comp.conflicts_for("Nitrofurantoin 5 mg/ml oral suspension")
    assert len(stopped) == 1 and "stopped" in stopped[0].text.lower()
    assert stopped[0].date is not None and stopped[0].date < "1994-11-12"
    assert comp.conflicts_for("lisinopril 10 mg oral tablet") == []  # active in the record


def test_the_cap_keeps_every_active_problem_and_medication_named(content_vault: Any) -> None:
    """Within 15 sentences the 708-note record still names each active condition and order
    (the overflow of a list goes into one line, its items' conflicts with it)."""
    from noteward.llm.grounding import content_words

    p = patient(content_vault, LONG)
    res = extractive(content_vault, LONG)
    assert len(res.sentences) <= 15
    said = set(content_words(" ".join(s.text for s in res.sentences)))
    tag = re.compile(r"\s*\((?:disorder|finding|situation)\)\s*$", re.I)
    for f in content_vault.facts(p.id):
        active = (f["status"] or "").lower() == "active" and not f["end_date"]
        if f["kind"] in ("condition", "medication") and active:
            words = set(content_words(tag.sub("", f["display"]))) - {"due"}  # folded: "X, with Y"
            assert words <= said, f["display"]
    listed = [s for s in res.sentences if s.text.startswith("Also current:")]
    assert listed and any("simvastatin" in c.text for c in listed[0].conflicts)


@pytest.mark.parametrize("prefix", ["3af3708d", "79a66c97"])  # 63ee2253 has no active facts
def test_the_capped_summary_names_every_key_fact_the_eval_counts(content_vault: Any, prefix: str) -> None:
    """`eval summarize`'s Synthea key-fact recall (active conditions and medications) stays
    1.0 for the extractive product summary under the default cap."""
    from noteward.llm.evaluation import _fhir_key_facts, key_facts_found
    from noteward.settings import shared_data_dir

    facts = _fhir_key_facts(shared_data_dir() / "synthea_fhir", prefix)
    res = extractive(content_vault, prefix)
    texts = [s.text for s in res.sentences]
    assert facts
    assert key_facts_found(facts, texts) == len(facts), (facts, texts)


@pytest.mark.parametrize(
    "prefix",
    ["3af3708d", "79a66c97", "63ee2253"],
)
def test_no_administrative_procedure_takes_a_line(content_vault: Any, prefix: str) -> None:
    """Certification, notifications, initial assessments and the like are paperwork: they
    take none of the capped summary's lines."""
    res = extractive(content_vault, prefix)
    admin = re.compile(
        r"certification procedure|\bnotifications\b|initial patient assessment|"
        r"assessment of health and social care needs|medication reconciliation|"
        r"assessment using .* (?:questionnaire|screening)|individualized plan of care",
        re.I,
    )
    assert not [s.text for s in res.sentences if admin.search(s.text)]


# -- what the clinician reads: no coding artefacts, no visit after death -------------------

SEMANTIC_TAG = re.compile(
    r"\((?:disorder|finding|situation|procedure|substance|organism|product|regime/therapy"
    r"|morphologic abnormality)\)",
    re.I,
)
DECEASED = "3af3708d"  # 20 notes; died 1971-10-01, a death-certification note of 1971-10-06


def _cited(vault: Any, span: Any) -> str:
    return vault.note(span.note_id).text[span.start : span.end]


@pytest.mark.parametrize("prefix", [LONG, PREGNANT, ALLERGIC, DECEASED])
def test_no_sentence_shows_a_semantic_tag_and_copies_still_match_their_span(
    content_vault: Any, prefix: str
) -> None:
    """'blood group typing (procedure)' is shown as 'blood group typing': a copied sentence
    differs from the span it cites only by the tag (and spacing, case, final period)."""
    res = extractive(content_vault, prefix, max_sentences=40)
    assert not [s.text for s in res.sentences if SEMANTIC_TAG.search(s.text)]
    for s in res.sentences:
        if s.origin == "extract" and len(s.sources) == 1:
            cited = _cited(content_vault, s.sources[0])

            def key(t: str) -> str:
                t = " ".join(SEMANTIC_TAG.sub(" ", t).split())
                return re.sub(r" ([,.;:])", r"\1", t).lower().rstrip(" .")

            assert key(s.text) == key(cited), (s.text, cited)


def test_a_model_sentence_is_shown_without_its_semantic_tag(
    content_vault: Any, smollm_runtime: Any
) -> None:
    """The default model wrote 'Muscle pain (finding)' and 'Joint pain (finding)' for the
    63-note patient: shown without the tag, still cited to the note that says it, supported."""
    from noteward.llm.summarizer import SummaryService
    from tests.llm.test_summary_wiring import ScriptedRuntime

    svc = SummaryService(model_id="smollm2-135m-instruct-q4_1", threads=2, max_new_tokens=48)
    svc._runtime = ScriptedRuntime(
        smollm_runtime, "Problems:\n- Muscle pain (finding)\n- Joint pain (finding)\n"
    )
    try:
        res = svc.summarize_patient(content_vault, patient(content_vault, PREGNANT).id, save=False)
    finally:
        svc._runtime = None
    model = {s.text: s for s in res.sentences if s.origin == "model"}
    assert set(model) == {"Muscle pain", "Joint pain"}, [s.text for s in res.sentences]
    for text, s in model.items():
        assert s.supported and s.sources
        cited = _cited(content_vault, s.sources[0])
        assert cited.lower() == f"{text.lower()} (finding)", cited


@pytest.mark.parametrize(
    ("prefix", "died", "seen", "after"),
    [
        (LONG, "1994-11-11", "1994-10-15", "1994-11-12"),
        (DECEASED, "1971-10-01", "1971-09-08", "1971-10-06"),
    ],
)
def test_the_top_line_of_a_deceased_patient_has_no_visit_after_death(
    content_vault: Any, prefix: str, died: str, seen: str, after: str
) -> None:
    """Synthea writes a death-certification note after the death date: it is not a visit.
    The top line says the newest note on or before death, and that a later note exists."""
    top = extractive(content_vault, prefix).sentences[0]
    assert top.section == "Patient" and top.origin == "fact"
    assert f"last seen {seen}" in top.text and f"died {died}" in top.text, top.text
    assert f"last seen {after}" not in top.text
    assert f"dated after death ({after})" in top.text, top.text
    assert top.date == seen
    # why seen: that visit's own complaint, cited in a note of that date
    notes = {n.id: n for n in content_vault.notes(patient(content_vault, prefix).id)}
    assert all(str(notes[sp.note_id].date)[:10] == seen for sp in top.sources), top.sources
