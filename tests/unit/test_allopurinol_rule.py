"""allopurinol-thiopurine: both directions, both drafted, the reduced-dose ceiling."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.configuration import Configuration
from tests import factories as f
from tests.rule_harness import configuration, decide, outcome

RULE = "allopurinol-thiopurine"


@pytest.fixture(scope="module")
def config() -> Configuration:
    return configuration()


def active_aza(mg: float | None, **kwargs: Any) -> dict[str, Any]:
    return f.azathioprine(mg, status="active", start_days_ago=200, mid="aza-course", **kwargs)


def active_allo() -> dict[str, Any]:
    return f.allopurinol(status="active", start_days_ago=100, mid="allo-course")


@pytest.mark.parametrize(
    ("mg", "expected"),
    [(150, "dose-reduction-needed"), (50.5, "dose-reduction-needed"), (50, "reduced-dose")],
)
def test_allopurinol_draft_with_active_azathioprine(
    config: Configuration, mg: float, expected: str
) -> None:
    finding = decide(config, RULE, drafts=(f.allopurinol(),), medication_requests=(active_aza(mg),))
    assert outcome(finding) == expected
    assert f"{mg:g} mg/day" in finding.variables["dose_checks"]


def test_thiopurine_draft_with_active_allopurinol_checks_the_draft_dose(
    config: Configuration,
) -> None:
    chart = {"medication_requests": (active_allo(),)}
    high = decide(config, RULE, drafts=(f.azathioprine(100),), **chart)
    assert high.outcome == "dose-reduction-needed"
    low = decide(config, RULE, drafts=(f.azathioprine(25, dosages=[f.dosage(25)]),), **chart)
    assert low.outcome == "reduced-dose"
    assert "allopurinol" in low.variables["allopurinol"]


def test_both_drafted_together(config: Configuration) -> None:
    finding = decide(config, RULE, drafts=(f.azathioprine(50), f.allopurinol()))
    assert outcome(finding) == "reduced-dose"


def test_mercaptopurine_has_its_own_ceiling(config: Configuration) -> None:
    def mp(mg: float) -> dict[str, Any]:
        return f.drug_order("103", "mercaptopurine", mid="mp", dosages=[f.dosage(mg)])

    chart = {"medication_requests": (active_allo(),)}
    assert outcome(decide(config, RULE, drafts=(mp(25),), **chart)) == "reduced-dose"
    assert outcome(decide(config, RULE, drafts=(mp(50),), **chart)) == "dose-reduction-needed"


def test_thioguanine_has_no_ceiling_so_always_warns(config: Configuration) -> None:
    tg = f.drug_order("10485", "thioguanine", mid="tg", dosages=[f.dosage(10)])
    finding = decide(config, RULE, drafts=(tg,), medication_requests=(active_allo(),))
    assert finding.outcome == "dose-reduction-needed"
    assert "no reduced-dose ceiling" in finding.variables["dose_checks"]


def test_uncomputable_dose_keeps_the_warning_and_says_why(config: Configuration) -> None:
    tablets = f.azathioprine(None, dosages=[f.dosage(1, "{tbl}")])
    finding = decide(config, RULE, drafts=(tablets,), medication_requests=(active_allo(),))
    assert finding.outcome == "dose-reduction-needed"
    assert any("could not be computed" in gap and "{tbl}" in gap for gap in finding.gaps)


def test_every_active_thiopurine_must_be_reduced(config: Configuration) -> None:
    second = f.drug_order(
        "103", "mercaptopurine", status="active", mid="mp-course", dosages=[f.dosage(75)]
    )
    finding = decide(
        config, RULE, drafts=(f.allopurinol(),), medication_requests=(active_aza(50), second)
    )
    assert finding.outcome == "dose-reduction-needed"


def test_bare_product_code_finds_its_ingredient_through_the_value_set(
    config: Configuration,
) -> None:
    coded_only = f.drug_order("105611", "", mid="imuran", dosages=[f.dosage(50)])
    coded_only["medicationCodeableConcept"]["coding"][0].pop("display")
    finding = decide(config, RULE, drafts=(coded_only,), medication_requests=(active_allo(),))
    assert finding.outcome == "reduced-dose"


@pytest.mark.parametrize(
    ("drafts", "courses"),
    [
        ((), ()),
        (("allopurinol",), ()),
        (("azathioprine",), ()),
        (("allopurinol",), ("ended-aza",)),
        (("mmf",), ("allopurinol",)),
    ],
)
def test_no_card_without_the_pair(
    config: Configuration, drafts: tuple[str, ...], courses: tuple[str, ...]
) -> None:
    make = {
        "allopurinol": f.allopurinol,
        "azathioprine": f.azathioprine,
        "mmf": f.mmf_draft,
        "ended-aza": lambda: f.azathioprine(50, status="completed", start_days_ago=300, mid="old"),
    }
    allo_course = {"allopurinol": active_allo}
    built_drafts = tuple(make[d]() for d in drafts)
    built_courses = tuple((allo_course.get(c) or make[c])() for c in courses)
    assert decide(config, RULE, drafts=built_drafts, medication_requests=built_courses) is None
