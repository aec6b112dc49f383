"""Clinical meaning survives: drugs, diseases, doses, lab values, eponyms, "Dr." alone."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deid.conftest import covering

SURVIVES = [
    ("Hx of Parkinson disease, on carbidopa/levodopa.", "Parkinson"),
    ("Parkinson's disease, stable.", "Parkinson's"),
    ("Foley catheter placed, draining clear urine.", "Foley"),
    ("foley placed at 0300", "foley"),
    ("Crohn disease flare, started prednisone 40 mg daily.", "Crohn"),
    ("Hodgkin lymphoma in remission.", "Hodgkin"),
    ("Alzheimer's dementia, on donepezil.", "Alzheimer's"),
    ("Positive Babinski sign on the left.", "Babinski"),
    ("Glasgow Coma Scale 15.", "Glasgow"),
    ("Dr. reviewed the chart.", "Dr."),
    ("Acetaminophen 325 MG Oral Tablet", "Acetaminophen 325 MG Oral Tablet"),
    ("lisinopril 10 MG Oral Tablet", "lisinopril 10 MG Oral Tablet"),
    ("Hemoglobin A1c 7.2%, LDL 130 mg/dL.", "7.2%"),
    ("BP 120/80, HR 72, SpO2 98% RA.", "120/80"),
    ("Motor strength 5/5 throughout.", "5/5"),
    ("Pain 7/10, improved.", "7/10"),
    ("Take 1/2 tab at bedtime.", "1/2"),
    ("Heparin 5000 units subq q8h", "5000 units"),
    ("Diabetes mellitus type 2 (disorder)", "Diabetes mellitus type 2"),
    ("Essential hypertension, controlled.", "Essential hypertension"),
    ("Metformin 500 MG Oral Tablet twice daily", "Metformin"),
    ("Chronic obstructive pulmonary disease", "Chronic obstructive pulmonary disease"),
    ("He was diagnosed back in 2021.", "2021"),
    ("Stevens-Johnson syndrome after lamotrigine.", "Stevens-Johnson"),
    ("Stevens-Johnson hx noted, no rash today.", "Johnson"),
    # what is left of a span once an insurer's name is trimmed is no place
    ("Patient comes from a low socioeconomic background.\n\nPatient currently has Cigna Health.\n", "Health"),
    ("Patient currently has Blue Cross Blue Shield.", "Shield"),
    # RxNorm dose forms after a product name: the trained NER took "Pack" for a place
    ("Jolivette 28 Day Pack", "Pack"),
    ("Sprintec 28 Day Pack started.", "Pack"),
    ("Fluticasone 50 MCG/ACTUAT Nasal Spray", "Spray"),
    ("WBC 12.3, platelets 250, creatinine 1.1.", "12.3"),
]


@pytest.mark.parametrize("text,needle", SURVIVES)
def test_clinical_text_survives(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == []


def test_dr_alone_survives_but_the_name_does_not(deid: Any) -> None:
    res = deid.anonymize("Dr. Foley removed the foley catheter.")
    assert res.text == "Dr. [NAME] removed the foley catheter."
