"""Property-based tests of every importer on a real vault (issue 13, campaign).

Hypothesis writes text folders, CSV files, NDJSON bulk exports and JSON Bundles that mix
valid records with mutated and garbage ones, and imports them. For every example: the
import does not crash or hang (pytest-timeout is the hang guard), every bad record is
reported with its file and line or resource, the good records beside it are imported, and
``--strict`` either commits or changes nothing. Example counts come from the hypothesis
profile (tests/conftest.py: ``ci`` when CI is set, else ``dev``).
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from noteward.core.errors import InputError
from noteward.ingest.fhir import parse_fhir_file
from noteward.ingest.importer import PARSER_FAILED, import_paths, parse_paths
from noteward.ingest.records import ImportReport
from tests.conftest import PASSPHRASE

_ids = itertools.count()


def _uid(prefix: str) -> str:
    """Ids unique across examples, so each example's good records are new to the vault."""
    return f"{prefix}-{next(_ids)}"


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real vault per module: the KDF makes a vault per example too slow."""
    from noteward.store.vault import Vault

    v = Vault.create(tmp_path_factory.mktemp("pvault") / "p.nwv", PASSPHRASE, busy_timeout_ms=2000)
    yield v
    v.close()


def _fresh_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="nw-prop-")


def _no_parser_failure(report: ImportReport) -> None:
    """The per-file safety net in parse_paths must never be what caught a bad record."""
    assert not [p for p in report.problems if PARSER_FAILED in p.reason], [p.to_json() for p in report.problems]


def _import_both_ways(vault: Any, paths: list[Path], **kw: Any) -> ImportReport:
    """--strict first (commits only a clean input, else changes nothing), then plain."""
    before = vault.counts()
    try:
        strict = import_paths(vault, paths, strict=True, **kw)
    except InputError as exc:
        assert exc.exit_code == 4
        assert vault.counts() == before
    else:
        assert strict.committed and not strict.problems
    report = import_paths(vault, paths, **kw)
    assert report.committed
    _no_parser_failure(report)
    return report


# -- text files -------------------------------------------------------------------------

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_file_content = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=400).map(lambda t: t.encode("utf-8")),
    st.text(max_size=300).map(lambda t: t.encode("cp1252", "replace")),
    st.builds(
        lambda name, date, body: f"Patient: {name}\nDate: {date}\nType: Note\n\n{body}".encode(),
        st.text(min_size=1, max_size=30).filter(lambda s: "\n" not in s and "\r" not in s),
        st.text(max_size=20).filter(lambda s: "\n" not in s and "\r" not in s),
        st.text(max_size=200),
    ),
)


@pytest.mark.timeout(120)
@given(files=st.dictionaries(_names.map(lambda n: "n" + n), st.tuples(st.sampled_from([".txt", ".md", "", ".note"]),
                                                                    _file_content), min_size=1, max_size=6))
def test_text_folder_every_file_is_a_note_or_a_problem(vault, files):
    with _fresh_dir() as d:
        folder = Path(d) / "Some Patient"
        folder.mkdir()
        written = {}
        for stem, (suffix, content) in files.items():
            written[stem + suffix] = content
            (folder / (stem + suffix)).write_bytes(content)
        report = _import_both_ways(vault, [folder])
    notes = report.counts["notes"]
    assert notes["imported"] + notes["skipped"] + len(report.problems) == len(written)
    assert {p.file for p in report.problems} <= set(written)
    for p in report.problems:
        assert "binary" in p.reason or "UTF-16" in p.reason or "no patient" in p.reason, p.reason


# -- CSV --------------------------------------------------------------------------------

_cell = st.text(max_size=60)
_row = st.tuples(_cell, _cell, _cell)
# After an unterminated quote the rest of the file is one field until the next quote; rows
# without quotes keep it that way, so the malformed record is the one that starts there.
_unquoted = st.text(alphabet=st.characters(blacklist_characters='",\r\n', blacklist_categories=("Cs",)), max_size=60)
_row_unquoted = st.tuples(_unquoted, _unquoted, _unquoted)


def _csv_text(rows: list[tuple[str, ...]]) -> str:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["patient_id", "text", "date"])
    w.writerows(rows)
    return buf.getvalue()


@pytest.mark.timeout(120)
@given(rows=st.lists(_row, max_size=8))
def test_csv_well_formed_every_row_is_accounted_for(vault, rows):
    with _fresh_dir() as d:
        path = Path(d) / "notes.csv"
        path.write_text(_csv_text(rows), encoding="utf-8", newline="")
        report = _import_both_ways(vault, [path])
    notes = report.counts["notes"]
    assert notes["imported"] + notes["skipped"] + len(report.problems) == len(rows)
    assert all(p.file == "notes.csv" and p.line and p.line >= 2 for p in report.problems)
    assert all("no patient" in p.reason for p in report.problems), [p.reason for p in report.problems]


_BAD_CSV_LINES = st.sampled_from([
    'A9,"never closed,2020-01-01',     # unterminated quote
    'A9,"stray"quote,2020-01-01',      # stray quote
    "A9,too,many,fields,here",         # more fields than the header
])


@pytest.mark.timeout(120)
@given(before=st.lists(_row, max_size=4), bad=_BAD_CSV_LINES, after=st.lists(_row_unquoted, max_size=4))
def test_csv_malformed_row_is_reported_and_rows_before_it_kept(vault, before, bad, after):
    good = [("G" + _uid("c"), "Good note " + _uid("t"), "2020-01-01") for _ in range(2)]
    head = _csv_text(before + good)
    tail = _csv_text(after).split("\n", 1)[1]
    with _fresh_dir() as d:
        path = Path(d) / "bad.csv"
        path.write_text(head + bad + "\r\n" + tail, encoding="utf-8", newline="")
        report = _import_both_ways(vault, [path])
        bad_line = len(io.StringIO(head, newline="").readlines()) + 1
    flagged = [p for p in report.problems if p.line == bad_line]
    assert flagged and flagged[0].file == "bad.csv", [p.to_json() for p in report.problems]
    for pid, _text, _date in good:
        assert vault.patient(pid).note_count == 1


# -- FHIR -------------------------------------------------------------------------------

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
_json = st.recursive(_json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=8)
_dates = st.sampled_from(["2020-01-01", "2019-12-31T23:59:59Z", "2021-06", "1999", "2020-02-29T10:00:00+01:00"])


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode()


@st.composite
def _good_patient_and_doc(draw: st.DrawFn) -> list[dict[str, Any]]:
    pid = _uid("p")
    # note text without control characters (a text/plain attachment full of them is binary)
    text = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=200)) + " " + _uid("note")
    return [
        {"resourceType": "Patient", "id": pid, "birthDate": draw(st.sampled_from(["1970-01-02", "1980"])),
         "name": [{"given": [draw(st.text(max_size=10))], "family": draw(st.text(max_size=10))}]},
        {"resourceType": "Encounter", "id": _uid("e"), "subject": {"reference": f"Patient/{pid}"},
         "period": {"start": draw(_dates)}},
        {"resourceType": "DocumentReference", "id": _uid("d"), "subject": {"reference": f"Patient/{pid}"},
         "date": draw(_dates), "content": [{"attachment": {"contentType": "text/plain", "data": _b64(text)}}]},
        {"resourceType": "Condition", "id": _uid("c"), "subject": {"reference": f"Patient/{pid}"},
         "code": {"text": "Asthma"}, "onsetDateTime": draw(_dates)},
    ]


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid resource with one element replaced by an arbitrary JSON value."""
    res = json.loads(json.dumps(draw(_good_patient_and_doc())[draw(st.integers(0, 3))]))
    path = draw(st.sampled_from([p for p in _paths(res) if p != ("resourceType",)]))
    node = res
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = draw(_json)
    return res


_garbage_line = st.one_of(
    _json.map(json.dumps),
    st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s and s.strip()),
    st.integers(50, 3000).map(lambda n: "[" * n + "]" * n),
)


@pytest.mark.timeout(180)
@given(good=_good_patient_and_doc(), bad=st.lists(st.one_of(_mutated().map(json.dumps), _garbage_line), max_size=5),
       order=st.randoms(use_true_random=False))
def test_ndjson_bad_lines_reported_good_records_imported(vault, good, bad, order):
    lines = [json.dumps(r) for r in good] + bad
    order.shuffle(lines)
    with _fresh_dir() as d:
        path = Path(d) / "export.ndjson"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        batch = parse_fhir_file(path)
        report = _import_both_ways(vault, [path])
    # parse level: every line is exactly one record, one ignored resource or one problem
    records = len(batch.patients) + len(batch.encounters) + len(batch.notes) + len(batch.facts)
    problem_lines = {p.line for p in batch.problems}
    assert len(problem_lines) == len(batch.problems)
    assert records + sum(batch.ignored.values()) + len(problem_lines) == len(lines)
    for n, line in enumerate(lines, start=1):
        try:
            res = json.loads(line)
        except (ValueError, RecursionError):
            res = None
        if not (isinstance(res, dict) and isinstance(res.get("resourceType"), str)):
            assert n in problem_lines, (n, [p.to_json() for p in batch.problems])
    assert all(p.file == "export.ndjson" for p in report.problems)
    # the good patient and everything of theirs is in the vault
    patient = vault.patient(good[0]["id"])
    assert patient.note_count == 1
    assert vault.facts(patient.id)


@pytest.mark.timeout(180)
@given(good=_good_patient_and_doc(), bad=st.lists(st.one_of(_mutated(), _json), max_size=5),
       order=st.randoms(use_true_random=False))
def test_bundle_bad_entries_reported_good_entries_imported(vault, good, bad, order):
    entries: list[Any] = [{"resource": r} for r in good] + [{"resource": b} for b in bad]
    order.shuffle(entries)
    with _fresh_dir() as d:
        path = Path(d) / "bundle.json"
        path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
        batch = parse_fhir_file(path)
        report = _import_both_ways(vault, [path])
    records = len(batch.patients) + len(batch.encounters) + len(batch.notes) + len(batch.facts)
    positions = {p.resource for p in batch.problems}
    assert len(positions) == len(batch.problems)
    assert all(p.resource and p.resource.endswith(tuple(f"entry #{i}" for i in range(1, len(entries) + 1)))
               for p in batch.problems)
    assert records + sum(batch.ignored.values()) + len(positions) == len(entries)
    assert all(p.file == "bundle.json" for p in report.problems)
    assert vault.patient(good[0]["id"]).note_count == 1


@pytest.mark.timeout(120)
@given(content=st.binary(max_size=2000), suffix=st.sampled_from([".json", ".ndjson", ".csv", ".txt"]))
def test_any_bytes_in_any_supported_file_never_crash(vault, content, suffix):
    with _fresh_dir() as d:
        folder = Path(d) / "Any Patient"
        folder.mkdir()
        (folder / ("f" + suffix)).write_bytes(content)
        batch = parse_paths([folder])
        assert not [p for p in batch.problems if PARSER_FAILED in p.reason]
        _import_both_ways(vault, [folder])
