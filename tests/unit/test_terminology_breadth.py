"""Terminology as EHRs send it: ICD-10 hierarchy, brand names, routes, units, comparators, sex."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cds_service.config.configuration import ConfigError, Configuration, load_configuration
from cds_service.patient.clinical_sex import clinical_sex
from cds_service.patient.record import PatientRecord, RecordBuilder, RecordInputs
from cds_service.patient.terminology import CodedConcept
from cds_service.patient.units import normalise_unit, normalised_factors, unit_candidates
from cds_service.rules.mmf_teratogenicity import hcg_verdict
from cds_service.rules.registry import REGISTRY
from tests import factories as f
from tests.rule_harness import CARDS, configuration

CM = "http://hl7.org/fhir/sid/icd-10-cm"
WHO = "http://hl7.org/fhir/sid/icd-10"
LOCAL = "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288"


@pytest.fixture(scope="module")
def config() -> Configuration:
    return configuration()


def build(config: Configuration, **kwargs: Any) -> PatientRecord:
    """A record of the default patient (female, 1994) with these resources."""
    inputs = RecordInputs(f.PATIENT_ID, kwargs.pop("patient", f.patient()), **kwargs)
    return RecordBuilder(config.terminology, config.analytes).build(inputs)


def concept(system: str, code: str) -> CodedConcept:
    return CodedConcept.from_fhir({"coding": [{"system": system, "code": code}]})


# ---------------------------------------------------------------- ICD-10 hierarchy


@pytest.mark.parametrize(
    ("valueset", "system", "code"),
    [
        ("autoimmune-hepatitis", CM, "K75.4"),
        ("autoimmune-hepatitis", CM, "k754"),
        ("autoimmune-hepatitis", WHO, "K75.4"),
        ("autoimmune-hepatitis", "urn:oid:2.16.840.1.113883.6.3", "K754"),
        ("cirrhosis", CM, "K74.60"),
        ("cirrhosis", CM, "K74.69"),
        ("cirrhosis", WHO, "K746"),
        ("cirrhosis", CM, "K70.31"),
        ("pregnancy", CM, "Z33.1"),
        ("pregnancy", CM, "Z3A.20"),
        ("pregnancy", CM, "O26.891"),
        ("pregnancy", WHO, "O268"),
        ("pregnancy", CM, "O9A.111"),
    ],
)
def test_icd10_codes_and_children_match(
    config: Configuration, valueset: str, system: str, code: str
) -> None:
    assert concept(system, code).in_valueset(config.terminology.valueset(valueset))


@pytest.mark.parametrize(
    ("valueset", "system", "code"),
    [
        ("cirrhosis", CM, "K74.0"),  # hepatic fibrosis, not cirrhosis: a sibling, not a child
        ("cirrhosis", CM, "K7"),  # shorter than a category: never a prefix match
        ("pregnancy", CM, "O85"),  # puerperal sepsis: puerperium only
        ("pregnancy", CM, "O90.3"),
        ("pregnancy", CM, "O94"),  # sequelae
        ("pregnancy", CM, "Z33.2"),  # elective termination: Z33.1 only, not Z33's children
        ("autoimmune-hepatitis", "http://snomed.info/sct", "K75.4"),  # the system counts
        ("autoimmune-hepatitis", CM, "K75.41"),  # K75.4 is listed without descendants
    ],
)
def test_icd10_codes_outside_the_value_set_do_not_match(
    config: Configuration, valueset: str, system: str, code: str
) -> None:
    assert not concept(system, code).in_valueset(config.terminology.valueset(valueset))


def test_pregnancy_status_and_answers_by_code_alone(config: Configuration) -> None:
    terms = config.terminology
    assert concept("http://loinc.org", "11449-6").in_valueset(terms.valueset("pregnancy-status"))
    hcg = f.observation("2106-3", value_code=("http://loinc.org", "LA6576-8"))
    negative = f.observation("2106-3", value_code=("http://loinc.org", "LA6577-6"), days_ago=0)
    results = build(config, observations=(hcg, negative)).qualitative_results("hcg")
    assert [(r.positive, r.label) for r in results] == [(True, "Positive"), (False, "Negative")]


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("text", "drug_class", "ingredient"),
    [
        ("Enbrel 50 mg/mL pen", "anti-tnf", "etanercept"),
        ("ENBREL SURECLICK", "anti-tnf", "etanercept"),
        ("INFLECTRA 100 MG IV SOLR", "anti-tnf", "infliximab"),
        ("infliximab-dyyb 100 mg", "anti-tnf", "infliximab"),
        ("Remicade", "aih-second-line", "infliximab"),
        ("Humira Pen 40 mg", "anti-tnf", "adalimumab"),
        ("Imuran 50 mg", "thiopurine", "azathioprine"),
        ("CellCept 500 mg tab", "mycophenolate", "mycophenolate"),
        ("Myfortic 360 mg", "aih-first-line", "mycophenolate"),
        ("Purixan 20 mg/mL", "azathioprine-mercaptopurine", "mercaptopurine"),
        ("Entocort EC 3 mg", "budesonide", "budesonide"),
        ("Zyloprim 100 mg", "allopurinol", "allopurinol"),
    ],
)
def test_brand_names_match_as_whole_words(
    config: Configuration, text: str, drug_class: str, ingredient: str
) -> None:
    medication = CodedConcept.from_fhir({"coding": [{"system": LOCAL, "code": "1"}], "text": text})
    terms = config.terminology
    assert drug_class in terms.classes_of(medication)
    assert terms.short_name(medication, drug_class) == ingredient


@pytest.mark.parametrize("text", ["Enbrelx 50 mg", "xEnbrel", "Humiras", "Remicadex", "Imurans"])
def test_brand_names_inside_other_words_do_not_match(config: Configuration, text: str) -> None:
    medication = CodedConcept.from_fhir({"text": text})
    assert config.terminology.classes_of(medication) == frozenset()


def test_brand_names_must_belong_to_a_configured_ingredient(tmp_path: Path) -> None:
    cards = tmp_path / "cards"
    _copy_cards(cards)
    path = cards / "terminology.yaml"
    path.write_text(
        path.read_text().replace("brand_names:\n", "brand_names:\n  nosuchdrug: [Nosuch]\n")
    )
    with pytest.raises(ConfigError, match="nosuchdrug"):
        load_configuration(cards, REGISTRY)


def _copy_cards(target: Path) -> None:
    import shutil

    shutil.copytree(CARDS, target)


# ---------------------------------------------------------------- routes


def _budesonide(route: dict[str, Any] | None, text: str = "Budesonide") -> dict[str, Any]:
    request = f.medication_request(rxnorm="19831", display="budesonide", text=text)
    if route is not None:
        request["dosageInstruction"] = [{"route": route}]
    return request


@pytest.mark.parametrize(
    "route",
    [
        {"text": "Inhalation"},
        {"coding": [{"system": "http://snomed.info/sct", "code": "447694001"}]},
        {"coding": [{"system": "http://snomed.info/sct", "code": "37161004"}]},
        {"text": "rectal foam"},
        {"text": "Nasal"},
    ],
)
def test_non_systemic_corticosteroid_course_is_kept_but_not_counted(
    config: Configuration, route: dict[str, Any]
) -> None:
    record = build(config, medication_requests=(_budesonide(route),))
    (course,) = record.courses
    assert course.route.kind == "non-systemic"
    assert record.courses_in("aih-first-line") == []
    assert record.courses_in("corticosteroid") == []
    assert {"aih-first-line", "budesonide", "corticosteroid"} <= course.not_counted


@pytest.mark.parametrize(
    ("route", "text", "kind"),
    [
        ({"text": "oral"}, "Budesonide", "systemic"),
        (None, "Entocort EC 3 mg capsule", "systemic"),
        (None, "Budesonide", "unknown"),
    ],
)
def test_systemic_or_unrecorded_route_counts(
    config: Configuration, route: dict[str, Any] | None, text: str, kind: str
) -> None:
    record = build(config, medication_requests=(_budesonide(route, text),))
    (course,) = record.courses
    assert course.route.kind == kind
    assert record.courses_in("aih-first-line") == [course]


def test_inhaled_budesonide_draft_does_not_trigger_budesonide_rules(config: Configuration) -> None:
    draft = _budesonide({"text": "Inhalation"})
    draft["status"] = "draft"
    builder = RecordBuilder(config.terminology, config.analytes)
    (order,) = builder.draft_orders([draft])
    assert "budesonide" not in order.classes
    assert order.route.kind == "non-systemic"


# ---------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("spelling", "other"),
    [
        ("mg/dl", "mg/dL"),
        ("U/l", "U/L"),
        ("\u00b5kat/L", "ukat/L"),  # micro sign
        ("\u03bckat/L", "ukat/L"),  # Greek mu
        (" mg / dL ", "mg/dL"),
        ("\u00b5mol/L", "\u03bcmol/L"),
    ],
)
def test_unit_spellings_normalise_alike(spelling: str, other: str) -> None:
    assert normalise_unit(spelling) == normalise_unit(other)


@pytest.mark.parametrize(("spelling", "other"), [("mg/dL", "g/L"), ("U/L", "ukat/L")])
def test_different_units_stay_different(spelling: str, other: str) -> None:
    assert normalise_unit(spelling) != normalise_unit(other)


def test_spellings_that_normalise_alike_need_the_same_factor() -> None:
    assert normalised_factors({"mg/dL": Decimal("0.01"), "mg/dl": Decimal("0.01")})
    with pytest.raises(ValueError, match="mg/dl"):
        normalised_factors({"mg/dL": Decimal("0.01"), "mg/dl": Decimal(1)})


def test_ucum_code_is_tried_before_unit_text() -> None:
    assert unit_candidates({"unit": "IU/L", "code": "U/L"}) == ["U/L", "IU/L"]
    assert unit_candidates({"unit": "mg/dl"}) == ["mg/dl"]


def _quantity(obs: dict[str, Any], **quantity: Any) -> dict[str, Any]:
    obs["valueQuantity"] = quantity
    return obs


def test_alt_in_microkatal_is_converted(config: Configuration) -> None:
    obs = _quantity(f.observation("1742-6"), value=2.5, unit="\u00b5kat/L")
    (lab,) = build(config, observations=(obs,)).lab_series("alt")
    assert (lab.value, lab.unit, lab.reported_unit) == (Decimal("150.0"), "U/L", "\u00b5kat/L")


def test_igg_unit_text_in_lower_case_is_read(config: Configuration) -> None:
    obs = _quantity(f.observation("2465-3"), value=1850, unit="mg/dl")
    (lab,) = build(config, observations=(obs,)).lab_series("igg")
    assert lab.value == Decimal("18.50")


def test_unknown_ucum_code_falls_back_to_known_unit_text(config: Configuration) -> None:
    obs = _quantity(f.observation("1742-6"), value=80, unit="IU/L", code="IU/L{local}")
    (lab,) = build(config, observations=(obs,)).lab_series("alt")
    assert (lab.value, lab.reported_unit) == (Decimal(80), "IU/L")


def test_unknown_unit_is_named_not_taken_for_missing(config: Configuration) -> None:
    obs = _quantity(f.observation("2465-3", days_ago=3), value=1850, unit="mg%")
    record = build(config, observations=(obs,))
    assert record.lab_series("igg") == []
    text = record.not_measured_text("igg", None, "not measured")
    assert "1850 mg%" in text
    assert "in unit 'mg%', not interpreted" in text
    assert build(config).not_measured_text("igg", None, "not measured") == "not measured"


# ---------------------------------------------------------------- comparators


@pytest.mark.parametrize(
    ("value", "comparator", "verdict"),
    [
        ("5", "<", False),  # "< 5": below 5, negative
        ("3", "<=", False),
        ("5", "<=", None),  # could be exactly 5: not below 5
        ("30", "<", None),  # could be 2 or 29
        ("1000", ">", True),
        ("25", ">=", True),
        ("10", ">", None),  # could be 11 or 1000
        ("3", "", False),
        ("10", "", None),
        ("25", "", True),
    ],
)
def test_hcg_comparators(value: str, comparator: str, verdict: bool | None) -> None:
    assert hcg_verdict(Decimal(value), comparator, Decimal(25), Decimal(5))[0] is verdict


def test_comparator_is_kept_on_the_result(config: Configuration) -> None:
    obs = _quantity(f.observation("1742-6"), value=400, comparator=">", unit="U/L", code="U/L")
    (lab,) = build(config, observations=(obs,)).lab_series("alt")
    assert (lab.value, lab.comparator, lab.reported_label) == (Decimal(400), ">", "> 400 U/L")


# ---------------------------------------------------------------- sex for clinical use

SPCU = "http://hl7.org/fhir/StructureDefinition/patient-sexParameterForClinicalUse"
BIRTH_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"


def _spcu(code: str) -> dict[str, Any]:
    coding = {"system": "http://terminology.hl7.org/CodeSystem/sex-parameter-for-clinical-use"}
    return {
        "url": SPCU,
        "extension": [
            {"url": "value", "valueCodeableConcept": {"coding": [coding | {"code": code}]}}
        ],
    }


@pytest.mark.parametrize(
    ("gender", "extensions", "sex", "disagree"),
    [
        ("female", [], "female", False),
        ("male", [], "male", False),
        ("unknown", [], None, False),
        ("male", [_spcu("female-typical")], "female", True),
        ("female", [_spcu("male-typical")], "female", True),
        ("male", [{"url": BIRTH_SEX, "valueCode": "F"}], "female", True),
        ("male", [{"url": BIRTH_SEX, "valueCode": "M"}], "male", False),
        ("other", [_spcu("male-typical")], "male", False),
        ("female", [{"url": BIRTH_SEX, "valueCode": "UNK"}], "female", False),
    ],
)
def test_sex_for_clinical_use(
    gender: str, extensions: list[dict[str, Any]], sex: str | None, disagree: bool
) -> None:
    patient = f.patient(gender=gender) | {"extension": extensions}
    result = clinical_sex(patient, gender)
    assert result.sex == sex
    assert ("disagree" in result.reason) is disagree


def test_completed_hysterectomy_procedure_is_read(config: Configuration) -> None:
    procedure = {
        "resourceType": "Procedure",
        "id": "proc-1",
        "status": "completed",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "236886002"}]},
        "subject": {"reference": f"Patient/{f.PATIENT_ID}"},
        "performedDateTime": "2020-01-01",
    }
    planned = procedure | {"id": "proc-2", "status": "preparation"}
    record = build(config, procedures=(procedure, planned))
    found = record.completed_procedures_in(
        config.terminology, "not-of-reproductive-potential-procedure"
    )
    assert [p.id for p in found] == ["proc-1"]
