"""Sex for clinical use: who may become pregnant, from the Patient's extensions and gender.

Sources, when present: the HL7 ``patient-sexParameterForClinicalUse`` extension (its ``value``
sub-extension: female-typical / male-typical / specified), the US Core ``us-core-birthsex``
extension (F / M / UNK), and administrative ``gender``. Any source saying female makes the
patient female for the pregnancy check; when another source says male, the disagreement is
stated (the patient is treated as possibly of reproductive potential, the safer reading). All
sources male: male. Otherwise unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SEX_PARAMETER_URL = "http://hl7.org/fhir/StructureDefinition/patient-sexParameterForClinicalUse"
BIRTH_SEX_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
_SEX_PARAMETER = {"female-typical": "female", "male-typical": "male"}
_BIRTH_SEX = {"F": "female", "M": "male"}


@dataclass(frozen=True)
class ClinicalSex:
    sex: str | None  # "female", "male", or None (unknown / other / not recorded)
    reason: str = ""  # why, when the sources disagree


def clinical_sex(patient: Mapping[str, Any] | None, gender: str | None) -> ClinicalSex:
    sources = sex_sources(patient)
    if gender in {"female", "male"}:
        sources.append(("administrative gender", gender))
    values = {value for _, value in sources}
    if "female" in values and "male" in values:
        named = ", ".join(f"{label} {value}" for label, value in sources)
        return ClinicalSex(
            "female", f"The recorded sexes disagree ({named}): treated as possibly pregnant."
        )
    if len(values) == 1:  # all sources agree
        return ClinicalSex(values.pop())
    return ClinicalSex(None)


def sex_sources(patient: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(label, "female" | "male") from the Patient's sex extensions, in document order."""
    found: list[tuple[str, str]] = []
    if not isinstance(patient, Mapping):
        return found
    for extension in patient.get("extension") or ():
        if not isinstance(extension, Mapping):
            continue
        url = extension.get("url")
        if url == SEX_PARAMETER_URL:
            value = _sex_parameter(extension)
            if value:
                found.append(("sex parameter for clinical use", value))
        elif url == BIRTH_SEX_URL:
            code = extension.get("valueCode")
            if isinstance(code, str) and code.strip().upper() in _BIRTH_SEX:
                found.append(("birth sex", _BIRTH_SEX[code.strip().upper()]))
    return found


def _sex_parameter(extension: Mapping[str, Any]) -> str | None:
    concepts = [extension.get("valueCodeableConcept")]
    concepts += [
        sub.get("valueCodeableConcept")
        for sub in extension.get("extension") or ()
        if isinstance(sub, Mapping) and sub.get("url") == "value"
    ]
    for concept in concepts:
        for coding in (concept or {}).get("coding") or () if isinstance(concept, Mapping) else ():
            code = coding.get("code") if isinstance(coding, Mapping) else None
            if isinstance(code, str) and code.strip() in _SEX_PARAMETER:
                return _SEX_PARAMETER[code.strip()]
    return None
