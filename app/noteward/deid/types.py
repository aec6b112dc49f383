"""De-identification types: Noteward's fixed entity names, detected spans and results.

The entity names cover the 18 HIPAA Safe Harbor identifier types (45 CFR 164.514(b)(2));
``SAFE_HARBOR`` maps each Safe Harbor type to the names that stand for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENTITY_TYPES: tuple[str, ...] = (
    "NAME",
    "DATE",
    "AGE_OVER_89",
    "PHONE",
    "FAX",
    "EMAIL",
    "SSN",
    "MRN",
    "HEALTH_PLAN_ID",
    "ACCOUNT",
    "LICENSE",
    "VEHICLE_ID",
    "DEVICE_ID",
    "URL",
    "IP_ADDRESS",
    "BIOMETRIC_ID",
    "LOCATION",
    "OTHER_ID",
)

# Safe Harbor identifier (A)..(R) -> Noteward entity names.
SAFE_HARBOR: dict[str, tuple[str, ...]] = {
    "A names": ("NAME",),
    "B geographic subdivisions smaller than a state, ZIP codes": ("LOCATION",),
    "C dates (except year) and ages over 89": ("DATE", "AGE_OVER_89"),
    "D telephone numbers": ("PHONE",),
    "E fax numbers": ("FAX",),
    "F email addresses": ("EMAIL",),
    "G social security numbers": ("SSN",),
    "H medical record numbers": ("MRN",),
    "I health plan beneficiary numbers": ("HEALTH_PLAN_ID",),
    "J account numbers": ("ACCOUNT",),
    "K certificate/license numbers": ("LICENSE",),
    "L vehicle identifiers and serial numbers, license plates": ("VEHICLE_ID",),
    "M device identifiers and serial numbers": ("DEVICE_ID",),
    "N web URLs": ("URL",),
    "O IP addresses": ("IP_ADDRESS",),
    "P biometric identifiers": ("BIOMETRIC_ID",),
    "Q full-face photographs and comparable images": (),
    "R any other unique identifying number, characteristic or code": ("OTHER_ID",),
}


@dataclass(frozen=True)
class Entity:
    """One PHI span: ``text[start:end]`` (end-exclusive code-point offsets into the input)."""

    type: str
    start: int
    end: int
    score: float
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
            "text": self.text,
        }


@dataclass(frozen=True)
class Replacement:
    """Where an entity's replacement sits in the anonymized text."""

    type: str
    start: int
    end: int


@dataclass
class DeidResult:
    """Anonymized text plus the entities found (offsets into the *input* text) and where
    each replacement landed in the output (``replacements``, offsets into ``text``)."""

    text: str
    entities: list[Entity]
    replacements: list[Replacement] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "entities": [e.to_json() for e in self.entities]}
