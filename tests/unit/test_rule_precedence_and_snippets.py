"""Rule precedence (``supersedes`` in cards/rules/*.yaml, applied by the engine) and shared card
text (cards/snippets/*.md): validated at load, and what clinicians see as a result."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from cds_service.config.configuration import ConfigError, load_configuration
from cds_service.rules.registry import REGISTRY
from tests import factories as f
from tests.rule_harness import CARDS, TREATMENT_RESPONSE, engine_cards, run_rule

REFRACTORY, INSUFFICIENT, NONRESPONSE = TREATMENT_RESPONSE
ANTI_TNF = "anti-tnf-liver-injury"


@pytest.fixture
def cards(tmp_path: Path) -> Path:
    target = tmp_path / "cards"
    shutil.copytree(CARDS, target)
    return target


def edit_rule(cards: Path, rule_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = cards / "rules" / f"{rule_id}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def load_error(cards: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_configuration(cards, REGISTRY)
    return caught.value


# ---------------------------------------------------------------- supersedes: configuration


def test_bundled_precedence_is_refractory_then_insufficient_then_nonresponse() -> None:
    rules = load_configuration(CARDS, REGISTRY).rules
    assert set(rules[REFRACTORY].supersedes) == {INSUFFICIENT, NONRESPONSE}
    assert set(rules[INSUFFICIENT].supersedes) == {NONRESPONSE}
    assert rules[NONRESPONSE].supersedes == ()
    assert rules[ANTI_TNF].supersedes == ()


@pytest.mark.parametrize(
    ("supersedes", "field"),
    [(["no-such-rule"], "supersedes.0"), ([NONRESPONSE, REFRACTORY], "supersedes.1")],
    ids=["unknown-rule", "itself"],
)
def test_supersedes_must_name_another_rule_file(
    cards: Path, supersedes: list[str], field: str
) -> None:
    edit_rule(cards, REFRACTORY, lambda d: d.update(supersedes=supersedes))
    error = load_error(cards)
    assert error.file.endswith(f"{REFRACTORY}.yaml")
    assert error.field == field


def test_supersedes_must_be_a_list_of_rule_ids(cards: Path) -> None:
    edit_rule(cards, REFRACTORY, lambda d: d.update(supersedes=[{"id": NONRESPONSE}]))
    assert load_error(cards).field.startswith("supersedes")


@pytest.mark.parametrize(
    ("rule", "supersedes"),
    [
        (NONRESPONSE, [REFRACTORY]),  # nonresponse > refractory > nonresponse
        (NONRESPONSE, [INSUFFICIENT]),  # two-rule cycle
        (ANTI_TNF, [ANTI_TNF]),  # trivially itself
    ],
    ids=["three-rule-cycle", "two-rule-cycle", "self"],
)
def test_precedence_cycles_are_rejected(cards: Path, rule: str, supersedes: list[str]) -> None:
    edit_rule(cards, rule, lambda d: d.update(supersedes=supersedes))
    error = load_error(cards)
    assert error.field.startswith("supersedes")


def test_cycle_error_names_a_rule_in_the_cycle(cards: Path) -> None:
    edit_rule(cards, NONRESPONSE, lambda d: d.update(supersedes=[REFRACTORY]))
    error = load_error(cards)
    assert "cycle" in error.message
    assert any(error.file.endswith(f"{r}.yaml") for r in TREATMENT_RESPONSE)


def test_a_chain_without_cycle_loads(cards: Path) -> None:
    edit_rule(cards, NONRESPONSE, lambda d: d.update(supersedes=[ANTI_TNF]))
    rules = load_configuration(cards, REGISTRY).rules
    assert rules[NONRESPONSE].supersedes == (ANTI_TNF,)


# ---------------------------------------------------------------- snippets: configuration


def write_snippet(cards: Path, name: str, text: str) -> Path:
    path = cards / "snippets" / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_snippets_are_loaded_for_every_rule() -> None:
    rules = load_configuration(CARDS, REGISTRY).rules
    for rule in rules.values():
        assert {"aih_second_line_options", "aih_response_definitions"} <= set(rule.snippets)
    assert "59 %" in rules[REFRACTORY].snippets["aih_second_line_options"]


@pytest.mark.parametrize("name", ["Site-Contact.md", "1st_steps.md", "site contact.md"])
def test_snippet_names_must_be_lower_case_identifiers(cards: Path, name: str) -> None:
    path = write_snippet(cards, name, "Call the liver unit.")
    error = load_error(cards)
    assert error.file == str(path)
    assert "lower_case" in error.message


@pytest.mark.parametrize("text", ["", "  \n\n  "], ids=["empty", "whitespace"])
def test_empty_snippet_is_rejected(cards: Path, text: str) -> None:
    path = write_snippet(cards, "site_contact.md", text)
    error = load_error(cards)
    assert error.file == str(path)
    assert "empty" in error.message


@pytest.mark.parametrize("name", ["therapy", "drug", "evidence", "data_gaps"])
def test_snippet_may_not_shadow_a_rule_variable(cards: Path, name: str) -> None:
    write_snippet(cards, f"{name}.md", "shadowing text")
    error = load_error(cards)
    assert "clash" in error.message
    assert "/rules/" in error.file


def test_other_files_in_the_snippet_folder_are_ignored(cards: Path) -> None:
    write_snippet(cards, "README.txt", "")
    assert load_configuration(cards, REGISTRY).rules


def test_unknown_snippet_in_a_template_is_an_unknown_variable(cards: Path) -> None:
    edit_rule(
        cards,
        "mmf-teratogenicity",
        lambda d: d["outcomes"]["male-patient"].update(detail="${no_such_snippet}"),
    )
    error = load_error(cards)
    assert error.field == "outcomes.male-patient.detail"
    assert "unknown variable" in error.message


def test_removing_a_used_snippet_stops_start_up(cards: Path) -> None:
    (cards / "snippets" / "aih_second_line_options.md").unlink()
    error = load_error(cards)
    assert "aih_second_line_options" in error.message


def test_a_new_snippet_is_usable_in_summary_detail_and_labels(
    cards: Path, app_factory: Callable[..., Flask]
) -> None:
    write_snippet(cards, "site_contact.md", "Liver unit on-call: extension 4711.\n")

    def change(data: dict[str, Any]) -> None:
        outcome = data["outcomes"]["pregnancy-test-needed"]
        outcome["detail"] += "\n${site_contact}\n"
        outcome["summary"] = "Exclude pregnancy before ${drug}. ${site_contact}"
        data["suggestions"]["order-serum-hcg"]["label"] = "Order hCG (${site_contact})"

    edit_rule(cards, "mmf-teratogenicity", change)
    app = app_factory(cards_dir=str(cards))
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    (issued,) = engine_cards(app, body)
    card = issued.card
    assert card["detail"].rstrip().endswith("Liver unit on-call: extension 4711.")
    assert "extension 4711" in card["summary"]
    assert "extension 4711" in card["suggestions"][0]["label"]


# ---------------------------------------------------------------- precedence: engine


def early_refractory() -> dict[str, Any]:
    """Day 100 of prednisolone + azathioprine: ALT fell only 5 % by week 4 (non-response) and
    the two latest ALT are >= 2 x ULN after T0 + 90 d (refractory)."""
    return f.on_aih_treatment(
        (200, 105),
        (190, 72),
        (150, 8),
        (150, 3),
        courses=(f.course(f.PREDNISOLONE, 100), f.course(f.AZATHIOPRINE, 100)),
    )


def late_refractory() -> dict[str, Any]:
    """8 months in: ALT still >= 2 x ULN (insufficient response and refractory)."""
    return f.on_aih_treatment((200, 255), (150, 30), (150, 5), extra_observations=(f.igg(12, 5),))


def late_insufficient() -> dict[str, Any]:
    return f.on_aih_treatment((200, 255), (60, 30), (60, 5), extra_observations=(f.igg(12, 5),))


def family(app: Flask, prefetch: dict[str, Any], hook: str = "patient-view") -> list[str]:
    drafts = (f.draft(f.AZATHIOPRINE),) if hook != "patient-view" else ()
    body = f.hook_request(hook, drafts=drafts, prefetch=prefetch)
    return [c.rule_id for c in engine_cards(app, body) if c.rule_id in TREATMENT_RESPONSE]


@pytest.mark.parametrize(
    ("prefetch", "fired", "shown"),
    [
        (early_refractory(), {REFRACTORY, NONRESPONSE}, REFRACTORY),
        (late_refractory(), {REFRACTORY, INSUFFICIENT}, REFRACTORY),
        (late_insufficient(), {INSUFFICIENT}, INSUFFICIENT),
    ],
    ids=["refractory-over-nonresponse", "refractory-over-insufficient", "insufficient-alone"],
)
@pytest.mark.parametrize("hook", ["patient-view", "order-sign", "order-select"])
def test_only_the_highest_treatment_response_card_is_shown(
    app: Flask, prefetch: dict[str, Any], fired: set[str], shown: str, hook: str
) -> None:
    individually = {r for r in TREATMENT_RESPONSE if run_rule(r, prefetch) is not None}
    assert individually == fired, "the scenario meets these rules on its own"
    assert family(app, prefetch, hook) == [shown]


@pytest.mark.parametrize(
    ("prefetch", "lower"),
    [(early_refractory(), NONRESPONSE), (late_refractory(), INSUFFICIENT)],
    ids=["nonresponse", "insufficient"],
)
def test_lower_card_shows_when_the_higher_rule_is_disabled(
    cards: Path, app_factory: Callable[..., Flask], prefetch: dict[str, Any], lower: str
) -> None:
    edit_rule(cards, REFRACTORY, lambda d: d.update(enabled=False))
    assert family(app_factory(cards_dir=str(cards)), prefetch) == [lower]


def test_lower_card_shows_when_the_higher_outcome_is_switched_off(
    cards: Path, app_factory: Callable[..., Flask]
) -> None:
    edit_rule(
        cards, REFRACTORY, lambda d: d["outcomes"]["steroid-refractory"].update(enabled=False)
    )
    assert family(app_factory(cards_dir=str(cards)), late_refractory()) == [INSUFFICIENT]


def test_nonresponse_shows_when_insufficient_and_refractory_are_disabled(
    cards: Path, app_factory: Callable[..., Flask]
) -> None:
    for rule in (REFRACTORY, INSUFFICIENT):
        edit_rule(cards, rule, lambda d: d.update(enabled=False))
    assert family(app_factory(cards_dir=str(cards)), early_refractory()) == [NONRESPONSE]


def test_precedence_leaves_other_rules_alone(app: Flask) -> None:
    prefetch = late_refractory()
    # started before any ALT on record: no baseline, so 150 U/L is judged against the ULN
    prefetch["medicationRequests"]["entry"].append({"resource": f.course(f.INFLIXIMAB, 300)})
    body = f.hook_request("patient-view", prefetch=prefetch)
    rules = [c.rule_id for c in engine_cards(app, body)]
    assert sorted(rules) == sorted([REFRACTORY, ANTI_TNF])


def test_a_site_can_reverse_precedence(cards: Path, app_factory: Callable[..., Flask]) -> None:
    edit_rule(cards, REFRACTORY, lambda d: d.update(supersedes=[NONRESPONSE]))
    edit_rule(cards, INSUFFICIENT, lambda d: d.update(supersedes=[REFRACTORY, NONRESPONSE]))
    assert family(app_factory(cards_dir=str(cards)), late_refractory()) == [INSUFFICIENT]


# ---------------------------------------------------------------- outcome override reasons


def test_outcome_override_reasons_must_name_the_rules_reasons(cards: Path) -> None:
    def typo(data: dict[str, Any]) -> None:
        data["outcomes"]["pregnant"]["override_reasons"] = ["pregnancy-endd"]

    edit_rule(cards, "mmf-teratogenicity", typo)
    error = load_error(cards)
    assert error.field == "outcomes.pregnant.override_reasons.0"
    assert "pregnancy-endd" in error.message
    assert "did you mean 'pregnancy-ended'?" in error.message


def test_a_warning_outcome_cannot_offer_no_override_reason(cards: Path) -> None:
    edit_rule(
        cards,
        "mmf-teratogenicity",
        lambda d: d["outcomes"]["pregnant"].update(override_reasons=[]),
    )
    assert load_error(cards).field == "outcomes.pregnant.override_reasons"


def test_rendered_card_offers_only_the_outcomes_override_reasons(app: Flask) -> None:
    prefetch = f.full_prefetch(conditions=(f.condition("77386006"),))
    body = f.hook_request("order-sign", drafts=(f.mmf_draft(),), prefetch=prefetch)
    [card] = [c.card for c in engine_cards(app, body) if c.rule_id == "mmf-teratogenicity"]
    codes = [reason["code"] for reason in card["overrideReasons"]]
    assert "pregnancy-ended" in codes
    assert "test-already-ordered" not in codes


def test_an_unknown_analyte_parameter_stops_start_up(cards: Path) -> None:
    edit_rule(
        cards,
        "allopurinol-thiopurine",
        lambda d: d["parameters"].update(weight_analyte="body-wieght"),
    )
    error = load_error(cards)
    assert error.field == "parameters.weight_analyte"
    assert "unknown analyte" in error.message
