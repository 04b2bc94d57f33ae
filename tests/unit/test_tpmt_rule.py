"""tpmt-before-thiopurine: activity against its own range, phenotype words, new-start trigger."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.config.configuration import Configuration
from tests import factories as f
from tests.rule_harness import card_detail, configuration, decide, outcome

RULE = "tpmt-before-thiopurine"


@pytest.fixture(scope="module")
def config() -> Configuration:
    return configuration()


def order(config: Configuration, *observations: dict[str, Any], **kwargs: Any) -> Any:
    kwargs.setdefault("drafts", (f.azathioprine(),))
    return decide(config, RULE, observations=observations, **kwargs)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4.4, "poor-metabolizer"),  # below 0.3 x 15 = 4.5
        (4.5, "intermediate-metabolizer"),
        (14.9, "intermediate-metabolizer"),
        (15, None),  # at the reference low: normal
        (30, None),
    ],
)
def test_activity_against_its_own_reference_low(
    config: Configuration, value: float, expected: str | None
) -> None:
    assert outcome(order(config, f.tpmt_activity(value, low=15))) == expected


def test_activity_without_range_or_in_another_unit_is_not_interpreted(
    config: Configuration,
) -> None:
    finding = order(config, f.tpmt_activity(3, low=None))
    assert finding.outcome == "uninterpreted-result"
    assert "no reference range low" in finding.variables["deciding"]
    other_unit = f.tpmt_activity(3, low=15)
    other_unit["referenceRange"][0]["low"]["unit"] = "U/g Hb"
    assert outcome(order(config, other_unit)) == "uninterpreted-result"


def test_range_low_without_unit_is_taken_in_the_result_unit(config: Configuration) -> None:
    activity = f.tpmt_activity(10, low=None)
    activity["referenceRange"] = [{"low": {"value": 15}}]
    assert outcome(order(config, activity)) == "intermediate-metabolizer"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Poor metabolizer", "poor-metabolizer"),
        ("TPMT poor metaboliser", "poor-metabolizer"),
        ("Intermediate Metabolizer", "intermediate-metabolizer"),
        ("Normal metabolizer", None),
        ("*1/*3A", "intermediate-metabolizer"),  # rev 2: star alleles are read
        ("Indeterminate", "uninterpreted-result"),
    ],
)
def test_phenotype_words(config: Configuration, text: str, expected: str | None) -> None:
    assert outcome(order(config, f.tpmt_phenotype(text))) == expected


def test_nudt15_result_counts_and_worst_class_wins(config: Configuration) -> None:
    nudt15 = f.tpmt_phenotype("Poor metabolizer", code="100665-9")
    finding = order(config, f.tpmt_activity(20), nudt15)
    assert finding.outcome == "poor-metabolizer"
    assert finding.variables["result_value"] == "Poor metabolizer"


def test_coded_answer_and_interpretation_are_read(config: Configuration) -> None:
    coded = f.observation("79713-4", value_code=("urn:lab", "IM"))
    coded["valueCodeableConcept"]["coding"][0]["display"] = "Intermediate metabolizer"
    assert outcome(order(config, coded)) == "intermediate-metabolizer"
    flagged = f.tpmt_activity(9, low=None)
    flagged["interpretation"] = [{"text": "Intermediate activity"}]
    assert outcome(order(config, flagged)) == "intermediate-metabolizer"


def test_uninterpreted_results_beside_a_decision_are_named_as_gaps(
    config: Configuration,
) -> None:
    finding = order(config, f.tpmt_phenotype("Intermediate metabolizer"), f.tpmt_phenotype("*3C"))
    assert finding.outcome == "intermediate-metabolizer"
    assert any("*3C" in gap for gap in finding.gaps)


def test_no_result_suggests_testing(config: Configuration) -> None:
    finding = order(config, f.alt(30))
    assert finding.outcome == "no-result"
    assert finding.variables["results"] == "- none"


@pytest.mark.parametrize(
    ("course", "expected"),
    [
        ({"status": "active", "start_days_ago": 200}, None),
        ({"status": "completed", "start_days_ago": 300, "end_days_ago": 90}, None),
        ({"status": "completed", "start_days_ago": 300, "end_days_ago": 91}, "no-result"),
        ({"status": "stopped", "start_days_ago": 300}, "no-result"),  # no end date
    ],
    ids=["active", "ended-90-days", "ended-91-days", "stopped-undated"],
)
def test_established_patients_get_no_card(
    config: Configuration, course: dict[str, Any], expected: str | None
) -> None:
    request = f.medication_request(rxnorm="103", display="mercaptopurine", mid="mp", **course)
    assert outcome(order(config, medication_requests=(request,))) == expected


def test_only_thiopurine_drafts_trigger(config: Configuration) -> None:
    assert order(config, drafts=(f.allopurinol(),)) is None
    text_only = f.medication_request(
        rxnorm=None, text="Imuran 50 mg tablet", status="draft", mid="d1", start_days_ago=0
    )
    assert outcome(order(config, drafts=(text_only,))) == "no-result"


# ---------------------------------------------------------------- rev 2: star alleles


@pytest.mark.parametrize(
    ("text", "code", "expected"),
    [
        ("*3A/*3A", "36922-3", "poor-metabolizer"),
        ("TPMT*3A/*3C", "36922-3", "poor-metabolizer"),
        ("TPMT *1/*3A", "36922-3", "intermediate-metabolizer"),
        ("*1/*2", "36922-3", "intermediate-metabolizer"),
        ("*1/*1", "36922-3", None),
        ("TPMT *1/*8", "36922-3", "uninterpreted-result"),  # *8 not in the table
        ("*3A/*8", "36922-3", "intermediate-metabolizer"),  # at least intermediate
        ("NUDT15 *1/*3", "100665-9", "intermediate-metabolizer"),
        ("*3/*3", "100665-9", "poor-metabolizer"),  # gene from the NUDT15 value set
        ("*2/*3", "100665-9", "poor-metabolizer"),
        ("Genotype *1/*3A, intermediate metabolizer", "36922-3", "intermediate-metabolizer"),
    ],
)
def test_star_allele_genotypes(
    config: Configuration, text: str, code: str, expected: str | None
) -> None:
    assert outcome(order(config, f.tpmt_phenotype(text, code=code))) == expected


def test_combined_result_names_each_gene(config: Configuration) -> None:
    combined = f.tpmt_phenotype("TPMT *1/*1; NUDT15 *1/*3", code="93193-1")
    finding = order(config, combined)
    assert finding.outcome == "intermediate-metabolizer"
    assert "NUDT15 *1/*3" in finding.variables["deciding"]
    assert finding.variables["starting_dose"] == "single"
    assert "20-50 %" not in card_detail(finding, config)


def test_tpmt_and_nudt15_both_intermediate_start_at_20_to_50_percent(
    config: Configuration,
) -> None:
    tpmt = f.tpmt_phenotype("*1/*3A", code="36922-3")
    nudt15 = f.tpmt_phenotype("*1/*3", code="100665-9")
    finding = order(config, tpmt, nudt15)
    assert finding.outcome == "intermediate-metabolizer"
    assert finding.variables["starting_dose"] == "both-intermediate"
    assert "start at 20-50 % of the normal dose" in card_detail(finding, config)
    # the percentages are the rule file's parameters, written into the phrase at load time
    # (tests/unit/test_card_content.py changes each stated parameter and checks the text)


def test_allele_table_is_configuration(config: Configuration) -> None:
    table = {
        "TPMT": {"no_function": ["*2", "*3A", "*3B", "*3C", "*4", "*8"], "normal_function": ["*1"]}
    }
    finding = order(
        config,
        f.tpmt_phenotype("*1/*8", code="36922-3"),
        params={"allele_function": table},
    )
    assert outcome(finding) == "intermediate-metabolizer"
