"""Retrieval fixtures: real vaults filled by the real importer, real MiniLM embeddings.

The notes below are written for these tests (no shared data needed). They are chosen so
that some queries match by keyword and others only by meaning: the words "heart",
"attack", "sugar" and "tobacco" appear nowhere in them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSPHRASE

NOTES: dict[str, list[tuple[str, str]]] = {
    "MRN-A": [
        ("2024-01-10", "Chief Complaint:\nChest pain radiating to the left arm for two days.\n\n"
                       "History of Present Illness:\nAdmitted last year for an acute myocardial infarction, "
                       "treated with a coronary stent.\n\n"
                       "Medications:\nwarfarin 5 mg daily; atorvastatin 40 mg nightly.\n\n"
                       "Plan:\nCheck INR in one week. Cardiology follow-up."),
        ("2024-03-02", "Assessment:\nType 2 diabetes mellitus, poorly controlled, HbA1c 9.1%.\n\n"
                       "Plan:\nStart metformin 500 mg twice daily. Diabetic foot exam at next visit."),
    ],
    "MRN-B": [
        ("2024-02-14", "Chief Complaint:\nShortness of breath and wheezing at night.\n\n"
                       "Assessment:\nAsthma exacerbation after a viral infection.\n\n"
                       "Plan:\nAlbuterol inhaler as needed; inhaled steroid twice daily."),
        ("2024-04-01", "Allergies:\nPenicillin causes hives.\n\n"
                       "Medications:\nwarfarin 2 mg daily for atrial fibrillation."),
    ],
    "MRN-C": [
        ("2024-05-20", "Social History:\nWorks as a carpenter. Smokes one pack of cigarettes per day "
                       "for twenty years.\n\nPlan:\nCounselled on smoking cessation; nicotine patch prescribed."),
    ],
}

EXTRA_NOTE = ("MRN-A", "2024-06-15",
              "Assessment:\nGout flare in the right big toe.\n\nPlan:\nColchicine 0.6 mg; "
              "reduce purine-rich food.")


def write_notes(folder: Path, notes: dict[str, list[tuple[str, str]]]) -> Path:
    """Write notes as text files with a header block, one folder per patient."""
    for mrn, items in notes.items():
        for i, (date, body) in enumerate(items):
            d = folder / mrn
            d.mkdir(parents=True, exist_ok=True)
            (d / f"note-{date}-{i}.txt").write_text(
                f"Patient: Patient {mrn[-1]}\nPatient-ID: {mrn}\nDate: {date}\nType: Progress note\n\n{body}",
                encoding="utf-8",
            )
    return folder


def import_notes(vault: Any, folder: Path) -> Any:
    from noteward.ingest.importer import import_paths

    return import_paths(vault, [folder], strict=True)


@pytest.fixture(scope="session")
def embedder() -> Any:
    """The real all-MiniLM-L6-v2, loaded once for the session."""
    from noteward.retrieval.embeddings import get_embedder

    e = get_embedder()
    e.load()
    return e


@pytest.fixture(scope="session")
def indexed_vault(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    """A vault with the NOTES imported and embedded; tests using it must only read."""
    from noteward.retrieval.index import index_vault
    from noteward.store.vault import Vault

    base = tmp_path_factory.mktemp("retrieval")
    v = Vault.create(base / "vault" / "shared.nwv", PASSPHRASE, busy_timeout_ms=2000)
    import_notes(v, write_notes(base / "notes", NOTES))
    index_vault(v, embedder=embedder)
    yield v
    v.close()


@pytest.fixture
def filled_vault(vault: Any, tmp_path: Path) -> Any:
    """A fresh vault (function scope) with the NOTES imported, not yet embedded."""
    import_notes(vault, write_notes(tmp_path / "notes", NOTES))
    return vault


def patient_id(vault: Any, mrn: str) -> str:
    return str(vault.patient(mrn).id)
