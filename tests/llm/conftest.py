"""Session-scoped model fixtures for the llm tests (loaded lazily, once)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PASSPHRASE, require_shared


@pytest.fixture(scope="session")
def smollm_runtime() -> Iterator[Any]:
    """The real SmolLM2 GGUF on its owner thread (2 threads at most: the machine is shared)."""
    from noteward.llm.runtime import ModelRuntime

    rt = ModelRuntime("smollm2-135m-instruct-q4_1", threads=2, n_ctx=2048).start()
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def summary_service(smollm_runtime: Any) -> Iterator[Any]:
    """A SummaryService sharing the session's runtime, with a small model budget."""
    from noteward.llm.summarizer import SummaryService

    svc = SummaryService(
        model_id="smollm2-135m-instruct-q4_1", threads=2, max_new_tokens=48, prompt_token_cap=512
    )
    svc._runtime = smollm_runtime
    yield svc
    svc._runtime = None  # the runtime fixture closes it


# -- the real vault of the shared Synthea patients (summary content and wiring tests) ----

ADDED_DATE = "2022-09-14"
ADDED_NOTE = f"""Patient-ID: 63ee2253-bdd5-da55-2ad2-b4984d0ad700
Date: {ADDED_DATE}
Type: Progress note

{ADDED_DATE}

# Chief Complaint
Itchy rash and hives two days after starting amoxicillin.

# History of Present Illness
Denis399 is an 11 year-old male seen for hives that began two days after starting amoxicillin for sinusitis.

# Allergies
Penicillin allergy: hives after amoxicillin.

# Medications
ibuprofen 100 mg oral tablet

# Assessment and Plan
Allergic reaction to penicillin with hives. Amoxicillin stopped.
Penicillin allergy added to the allergy list; avoid penicillins.
Cetirizine 5 mg daily for 5 days.
"""


@pytest.fixture(scope="session")
def content_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from noteward.ingest.importer import import_paths
    from noteward.store.vault import Vault

    src = require_shared("synthea_fhir")
    base = tmp_path_factory.mktemp("content_vault")
    v = Vault.create(base / "content.nwv", PASSPHRASE, busy_timeout_ms=2000)
    import_paths(v, [src])
    added = base / "added"
    added.mkdir()
    (added / f"{ADDED_DATE}.txt").write_text(ADDED_NOTE, encoding="utf-8")
    report = import_paths(v, [added])
    assert report.counts["notes"]["imported"] == 1
    yield v
    v.close()
