"""thiopurine-metabolites: patterns, per-unit thresholds, boundaries and triggers."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from marshmallow import ValidationError

from cds_service.config.configuration import Configuration
from tests import factories as f
from tests.rule_harness import configuration, decide, outcome

RULE = "thiopurine-metabolites"
ACTIVE_AZA = f.azathioprine(100, status="active", start_days_ago=300, mid="aza-course")


@pytest.fixture(scope="module")
def config() -> Configuration:
    return configuration()


def view(config: Configuration, *observations: dict[str, Any], **kwargs: Any) -> Any:
    kwargs.setdefault("medication_requests", (ACTIVE_AZA,))
    return decide(config, RULE, hook="patient-view", observations=observations, **kwargs)


@pytest.mark.parametrize(
    ("tgn", "mmp", "expected"),
    [
        (180, 7000, "shunting"),
        (180, 5700, "low-tgn"),  # 6-MMP high is strictly above 5700
        (234.9, 5701, "shunting"),
        (235, 9000, "high-mmp"),  # 235 is not low; rev 2: high 6-MMP is hepatotoxicity
        (450, 9000, "high-mmp"),  # 450 is not high
        (450.1, 100, "high-tgn"),
        (450.1, 9000, "high-tgn"),  # both high: myelotoxicity first, 6-MMP named
        (300, 5700, None),  # 5700 is not high
        (300, 5701, "high-mmp"),
    ],
)
def test_patterns_and_boundaries(
    config: Configuration, tgn: float, mmp: float, expected: str | None
) -> None:
    assert outcome(view(config, f.tgn(tgn), f.mmp(mmp))) == expected


def test_low_tgn_without_mmp_is_info_and_says_mmp_missing(config: Configuration) -> None:
    finding = view(config, f.tgn(150))
    assert finding.outcome == "low-tgn"
    assert finding.variables["mmp_value"] == "not measured"
    assert any("No 6-MMP result" in gap for gap in finding.gaps)


def test_panel_components_are_read(config: Configuration) -> None:
    assert outcome(view(config, f.metabolite_panel(150, 8000))) == "shunting"


def test_weltzsch_unit_uses_its_own_cutoff_and_never_the_rbc_thresholds(
    config: Configuration,
) -> None:
    assert outcome(view(config, f.tgn(222, unit="pmol/0.2 mL"))) == "low-tgn"
    assert outcome(view(config, f.tgn(223, unit="pmol/0.2 mL"))) is None
    # 230 would be low in pmol/8x10^8 RBC (< 235) but is not low in pmol/0.2 mL
    assert outcome(view(config, f.tgn(230, unit="pmol/0.2 mL"))) is None
    # no high threshold for pmol/0.2 mL: 900 is not classified as high
    assert outcome(view(config, f.tgn(900, unit="pmol/0.2 mL"))) is None
    finding = view(config, f.tgn(180, unit="pmol/0.2 mL"), f.mmp(9000, unit="pmol/0.2 mL"))
    assert finding.outcome == "low-tgn"  # no 6-MMP threshold in this unit: not shunting
    assert any("no 6-MMP threshold" in gap for gap in finding.gaps)


@pytest.mark.parametrize("spelling", ["pmol/8 x 10[8] RBC", "pmol/8x10e8 RBCs", "PMOL/8X10^8 RBC"])
def test_unit_spellings(config: Configuration, spelling: str) -> None:
    assert outcome(view(config, f.tgn(100, unit=spelling))) == "low-tgn"


def test_unknown_unit_gives_no_classification_and_is_logged(
    config: Configuration, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert view(config, f.tgn(100, unit="ng/mL")) is None
    assert "no configured thresholds" in caplog.text


def test_only_the_latest_result_within_180_days_counts(config: Configuration) -> None:
    assert view(config, f.tgn(100, days_ago=181)) is None
    assert outcome(view(config, f.tgn(100, days_ago=180))) == "low-tgn"
    assert view(config, f.tgn(100, days_ago=100), f.tgn(300, days_ago=10)) is None


def test_mmp_paired_only_within_the_pairing_window(config: Configuration) -> None:
    far = view(config, f.tgn(150, days_ago=10), f.mmp(9000, days_ago=20))
    assert far.outcome == "low-tgn"
    near = view(config, f.tgn(150, days_ago=10), f.mmp(9000, days_ago=12))
    assert near.outcome == "shunting"


def test_patient_view_needs_an_active_thiopurine(config: Configuration) -> None:
    ended = f.azathioprine(100, status="completed", start_days_ago=300, mid="old")
    assert view(config, f.tgn(100), medication_requests=(ended,)) is None
    assert view(config, f.tgn(100), medication_requests=()) is None


def test_order_hooks_need_a_thiopurine_draft(config: Configuration) -> None:
    chart = {"observations": (f.tgn(100),), "medication_requests": (ACTIVE_AZA,)}
    assert decide(config, RULE, drafts=(f.allopurinol(),), **chart) is None
    finding = decide(config, RULE, drafts=(f.azathioprine(),), **chart)
    assert finding.outcome == "low-tgn"
    assert "draft order" in finding.variables["therapy"]


def test_card_text_states_allopurinol_already_taken(config: Configuration) -> None:
    allo = f.allopurinol(status="active", start_days_ago=60, mid="allo-course")
    finding = view(config, f.tgn(150), f.mmp(8000), medication_requests=(ACTIVE_AZA, allo))
    assert finding.variables["allopurinol"].startswith("already on allopurinol")


def test_thresholds_are_configuration(config: Configuration) -> None:
    units = [
        {
            "name": "pmol/8x10^8 RBC",
            "spellings": [f.RBC_UNIT],
            "tgn_low_below": 200,
            "tgn_high_above": 400,
            "mmp_high_above": 5700,
        }
    ]
    loaded = config.rules[RULE].spec.parameters().load({"units": units})
    assert view(config, f.tgn(220), params=loaded) is None
    assert outcome(view(config, f.tgn(401), params=loaded)) == "high-tgn"


@pytest.mark.parametrize(
    ("units", "message"),
    [
        ([], "Shorter than minimum"),
        ([{"name": "x", "spellings": ["a"], "tgn_low_below": 5, "tgn_high_above": 4}], "below"),
        ([{"name": "x", "spellings": ["a b"]}, {"name": "y", "spellings": ["AB"]}], "twice"),
    ],
)
def test_bad_thresholds_are_rejected(config: Configuration, units: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config.rules[RULE].spec.parameters().load({"units": units})


# ---------------------------------------------------------------- rev 2


@pytest.mark.parametrize(
    "unit",
    ["pmol/8x10^8 erythrocytes", "PMOL/8X10^8 RBC", "pmol/8 x 10[8] RBC", "pmol/8\u00d710^8 RBC"],
)
def test_unit_spellings_are_configuration_and_normalised(config: Configuration, unit: str) -> None:
    assert outcome(view(config, f.tgn(180, unit=unit))) == "low-tgn"


def remission_labs(alt: float, igg: float, days_ago: int = 20) -> tuple[dict[str, Any], ...]:
    return (f.alt(alt, days_ago), f.igg(igg, days_ago))


@pytest.mark.parametrize(
    ("alt", "igg", "days_ago", "expected"),
    [
        (30, 12, 20, "low-tgn-in-remission"),
        (41, 12, 20, "low-tgn"),  # ALT above ULN: not in remission
        (30, 17, 20, "low-tgn"),  # IgG above ULN
        (30, 12, 121, "low-tgn"),  # remission not recent: not assessable
    ],
    ids=["remission", "alt-high", "igg-high", "stale"],
)
def test_low_tgn_dose_increase_only_outside_remission(
    config: Configuration, alt: float, igg: float, days_ago: int, expected: str
) -> None:
    finding = decide(
        config,
        RULE,
        hook="patient-view",
        observations=(f.tgn(180), *remission_labs(alt, igg, days_ago)),
        medication_requests=(ACTIVE_AZA,),
        conditions=(f.aih_condition(),),
    )
    assert outcome(finding) == expected


def test_in_remission_the_card_is_off_by_default(config: Configuration) -> None:
    rule = config.rules[RULE]
    assert rule.outcomes["low-tgn-in-remission"]["enabled"] is False


def test_without_aih_the_low_tgn_advice_is_unchanged(config: Configuration) -> None:
    finding = view(config, f.tgn(180), *remission_labs(30, 12))
    assert outcome(finding) == "low-tgn"
