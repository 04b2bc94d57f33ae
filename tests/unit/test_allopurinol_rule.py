"""allopurinol-thiopurine: both directions, both drafted, the reduced-dose ceiling."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.config.configuration import Configuration
from tests import factories as f
from tests.rule_harness import card_detail, configuration, decide, outcome

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


# ---------------------------------------------------------------- rev 2: febuxostat, weight


def febuxostat(**kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("mid", "draft-febux" if kwargs.get("status", "draft") == "draft" else None)
    kwargs.setdefault("dosages", [f.dosage(80)])
    return f.drug_order("73689", "febuxostat", **kwargs)


def weight(kg: float, days_ago: float = 10) -> dict[str, Any]:
    return f.observation("29463-7", value=kg, unit="kg", days_ago=days_ago)


def test_febuxostat_draft_with_azathioprine_is_critical_and_removes_the_febuxostat(
    config: Configuration,
) -> None:
    finding = decide(config, RULE, drafts=(febuxostat(),), medication_requests=(active_aza(25),))
    assert outcome(finding) == "contraindicated"
    assert [d.id for d in finding.drafts] == ["draft-febux"]
    assert "febuxostat" in finding.variables["inhibitor"]


def test_thiopurine_draft_with_active_febuxostat_removes_the_thiopurine(
    config: Configuration,
) -> None:
    active = febuxostat(status="active", start_days_ago=60, mid="febux-course")
    finding = decide(config, RULE, drafts=(f.azathioprine(25),), medication_requests=(active,))
    assert outcome(finding) == "contraindicated"
    assert [d.id for d in finding.drafts] == ["draft-aza"]


def test_febuxostat_by_brand_name_is_recognised(config: Configuration) -> None:
    brand = f.drug_order("999999", "Uloric 40 mg tablet", mid="draft-uloric")
    finding = decide(config, RULE, drafts=(brand,), medication_requests=(active_aza(50),))
    assert outcome(finding) == "contraindicated"


def test_febuxostat_with_thioguanine_is_the_dose_warning_not_the_contraindication(
    config: Configuration,
) -> None:
    tg = f.drug_order("10485", "thioguanine", status="active", mid="tg-course")
    finding = decide(config, RULE, drafts=(febuxostat(),), medication_requests=(tg,))
    assert outcome(finding) == "dose-reduction-needed"


def test_febuxostat_without_a_thiopurine_gives_no_card(config: Configuration) -> None:
    assert decide(config, RULE, drafts=(febuxostat(),)) is None


def test_contraindication_is_configurable(config: Configuration) -> None:
    finding = decide(
        config,
        RULE,
        drafts=(febuxostat(),),
        medication_requests=(active_aza(25),),
        params={"contraindicated_classes": []},
    )
    assert outcome(finding) == "reduced-dose"


@pytest.mark.parametrize(
    ("kg", "mg", "expected"),
    [
        (25, 50, "dose-reduction-needed"),  # 2 mg/kg: the child of the review
        (25, 17.5, "reduced-dose"),  # exactly 0.7 mg/kg
        (25, 18, "dose-reduction-needed"),  # just above 0.7 mg/kg
        (100, 70, "reduced-dose"),  # 0.7 mg/kg, above the absolute 50 mg ceiling
        (100, 71, "dose-reduction-needed"),
    ],
    ids=["child-50mg", "exactly-0.7", "just-above", "adult-70mg", "adult-71mg"],
)
def test_weight_based_ceiling_replaces_the_absolute_one(
    config: Configuration, kg: float, mg: float, expected: str
) -> None:
    finding = decide(
        config,
        RULE,
        drafts=(f.allopurinol(),),
        medication_requests=(active_aza(mg),),
        observations=(weight(kg),),
    )
    assert outcome(finding) == expected
    assert "0.7 mg/kg/day" in finding.variables["dose_checks"]
    assert finding.variables["weight_check"] == "measured"
    assert f"Body weight {kg} kg on" in card_detail(finding, config)
    assert "the reduced-dose ceiling is per kilogram" in card_detail(finding, config)


@pytest.mark.parametrize(("days_ago", "weighed"), [(180, True), (181, False)], ids=str)
def test_weight_must_be_recent(config: Configuration, days_ago: int, weighed: bool) -> None:
    finding = decide(
        config,
        RULE,
        drafts=(f.allopurinol(),),
        medication_requests=(active_aza(50),),
        observations=(weight(25, days_ago),),
    )
    assert outcome(finding) == ("dose-reduction-needed" if weighed else "reduced-dose")
    assert ("no weight-based check was possible" in card_detail(finding, config)) != weighed


def test_child_without_weight_never_gets_the_reduced_dose_info(config: Configuration) -> None:
    child = f.patient(birth_date="2016-05-01")
    finding = decide(
        config,
        RULE,
        patient=child,
        drafts=(f.allopurinol(),),
        medication_requests=(active_aza(50),),
    )
    assert outcome(finding) == "dose-reduction-needed"
    assert finding.variables["weight_check"] == "missing-child"
    detail = card_detail(finding, config)
    assert "no weight-based check was possible" in detail
    assert "a child's dose" in detail
