"""What cards say: published citations only, text that follows the configuration, concise and
consistent cards, and FHIR text that can never become markup."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from cds_service.config.card_template import escape_value, plain_value, shorten_at_word
from cds_service.config.cards import SUMMARY_MAX, render_card
from cds_service.config.configuration import (
    SUGGESTION_SHAPES,
    ConfigError,
    Configuration,
    RuleConfig,
    load_configuration,
)
from cds_service.patient.record import DraftOrder
from cds_service.patient.terminology import CodedConcept
from cds_service.rules.base import Finding
from cds_service.rules.registry import REGISTRY
from cds_service.web.evidence_page import rule_page_body

CARDS = Path(__file__).resolve().parents[2] / "cards"
CONFIG = load_configuration(CARDS, REGISTRY)
DRAFT = DraftOrder(
    "MedicationRequest", "d1", CodedConcept(text="Drug"), frozenset({"mycophenolate"}), None
)
# names a clinician cannot look up: project files, research notes, seed digests
INTERNAL = re.compile(
    r"[\w./-]+\.(md|txt|yaml|json|py)\b|\bseeds?\b|§|research note|/work/|shared/", re.I
)


def outcome_findings(rule: RuleConfig, value: str = "V") -> Iterator[Finding]:
    """One finding per outcome and per phrase choice, every variable set to ``value``."""
    for outcome in rule.outcomes:
        names = rule.spec.outcomes[outcome]
        phrases = {n: list(c) for n, c in rule.phrases.items() if n in names}
        rounds = max((len(c) for c in phrases.values()), default=1)
        for index in range(rounds):
            variables = dict.fromkeys(names, value)
            variables |= {n: c[index % len(c)] for n, c in phrases.items()}
            yield Finding(rule.id, outcome, variables, (DRAFT,), ("gap",))


def render(
    rule: RuleConfig, finding: Finding, config: Configuration = CONFIG, **kwargs: Any
) -> dict[str, Any]:
    counter = itertools.count(1)
    card = render_card(
        finding,
        rule,
        patient_id="p1",
        data_gaps=[],
        new_uuid=lambda: f"u{next(counter)}",
        sources=config.sources,
        evidence_url=f"https://cds.example.org/evidence/{rule.id}",
        **kwargs,
    )
    assert card is not None
    return card


def all_cards(config: Configuration = CONFIG, value: str = "V") -> Iterator[dict[str, Any]]:
    for rule in config.rules.values():
        for finding in outcome_findings(rule, value):
            yield render(all_enabled(rule), finding, config)


def all_enabled(rule: RuleConfig) -> RuleConfig:
    """The rule with every outcome enabled, so outcomes off by default are checked too."""
    outcomes = {name: {**o, "enabled": True} for name, o in rule.outcomes.items()}
    return dataclasses.replace(rule, outcomes=outcomes)


def rule_text(config: Configuration, rule_id: str) -> str:
    """Every card of the rule (all outcomes and phrase choices) and its evidence page."""
    rule = all_enabled(config.rules[rule_id])
    cards = [json.dumps(render(rule, f, config)) for f in outcome_findings(rule)]
    return "\n".join(cards) + rule_page_body(rule, config)


# ---------------------------------------------------------------- 1. evidence registry


def test_no_card_or_evidence_page_names_a_project_file_or_research_note() -> None:
    for card in all_cards():
        text = json.dumps(card, ensure_ascii=False)
        assert not INTERNAL.search(text), (card["source"]["topic"]["code"], INTERNAL.search(text))
    for rule in CONFIG.rules.values():
        page = rule_page_body(rule, CONFIG)
        assert not INTERNAL.search(page), (rule.id, INTERNAL.search(page))
    for source in CONFIG.sources.values():
        assert not INTERNAL.search(source.citation(CONFIG.sources)), source.key


def test_every_rule_cites_published_sources_from_the_registry() -> None:
    for rule in CONFIG.rules.values():
        assert rule.evidence, rule.id
        for entry in rule.evidence:
            source = CONFIG.sources[entry["key"]]
            assert source.authors
            assert source.title
            assert source.journal
            assert source.kind
    pape = CONFIG.sources["pape-2022"]
    assert pape.citation() == (
        "Pape S, Snijders RJALM, Gevers TJG, et al. Systematic review of response criteria and"
        " endpoints in autoimmune hepatitis by the International Autoimmune Hepatitis Group."
        " J Hepatol 2022;76:841-849. doi:10.1016/j.jhep.2021.12.041. (International Autoimmune"
        " Hepatitis Group (IAIHG) consensus on response criteria)"
    )
    assert pape.href == "https://doi.org/10.1016/j.jhep.2021.12.041"
    assert CONFIG.sources["chatrath-2014"].pmid == "24979741"


@pytest.fixture
def cards(tmp_path: Path) -> Path:
    target = tmp_path / "cards"
    shutil.copytree(CARDS, target)
    return target


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def load_error(cards: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_configuration(cards, REGISTRY)
    return caught.value


def test_unknown_evidence_key_stops_start_up(cards: Path) -> None:
    rule = cards / "rules" / "budesonide-cirrhosis.yaml"
    edit_yaml(rule, lambda d: d["evidence"].append({"key": "no-such-study", "supports": "x"}))
    error = load_error(cards)
    assert (error.file, error.field) == (str(rule), "evidence.2.key")
    assert "no-such-study" in error.message


def test_unknown_citation_in_a_template_stops_start_up(cards: Path) -> None:
    rule = cards / "rules" / "budesonide-cirrhosis.yaml"
    edit_yaml(
        rule, lambda d: d["outcomes"]["cirrhosis"].update(detail="${cite.smith-1999} ${data_gaps}")
    )
    error = load_error(cards)
    assert error.field == "outcomes.cirrhosis.detail"
    assert "smith-1999" in error.message


def test_a_cited_source_must_be_in_the_rules_evidence_list(cards: Path) -> None:
    rule = cards / "rules" / "budesonide-cirrhosis.yaml"
    edit_yaml(rule, lambda d: d["outcomes"]["cirrhosis"].update(summary="${cite.pape-2022}"))
    assert "not in this rule's evidence list" in load_error(cards).message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("doi", "doi:10.1/x", "String does not match"),
        ("url", "http://example.org/paper", "URL"),
        ("digest_of", "no-such-source", "unknown source"),
        ("kind", None, "Missing data"),
    ],
)
def test_registry_entries_are_validated(
    cards: Path, field: str, value: str | None, message: str
) -> None:
    def change(data: dict[str, Any]) -> None:
        entry = data["sources"]["efe-2025"]
        if value is None:
            del entry[field]
        else:
            entry[field] = value

    edit_yaml(cards / "evidence.yaml", change)
    error = load_error(cards)
    assert error.file.endswith("evidence.yaml")
    assert error.field.startswith("sources.efe-2025")
    assert message.lower() in error.message.lower()


# ---------------------------------------------------------------- 2. text follows configuration

PARAM_PLACEHOLDER = re.compile(r"\$\{param\.([A-Za-z0-9_]+)")


def stated_parameters(rule_id: str) -> set[str]:
    """Numeric parameters the rule file's templates state through ${param.NAME}."""
    text = (CARDS / "rules" / f"{rule_id}.yaml").read_text(encoding="utf-8")
    text += "".join(p.read_text(encoding="utf-8") for p in (CARDS / "snippets").glob("*.md"))
    rule = CONFIG.rules[rule_id]
    return {n for n in PARAM_PLACEHOLDER.findall(text) if n in rule.params}


def changed_value(value: Any) -> list[Any]:
    """Candidate new values, far enough from the old one to change rounded months and weeks."""
    if isinstance(value, Decimal) and value < 1:
        return [Decimal("0.37"), Decimal("0.73")]
    return [value * 3 + 7, value * 2 + 1, value + 1, value - 1]


@pytest.mark.parametrize(
    ("rule_id", "name"),
    sorted((r, n) for r in CONFIG.rules for n in stated_parameters(r)),
)
def test_changing_a_numeric_parameter_changes_the_text(
    cards: Path, rule_id: str, name: str
) -> None:
    before = rule_text(CONFIG, rule_id)
    path = cards / "rules" / f"{rule_id}.yaml"
    original = path.read_text(encoding="utf-8")
    for candidate in changed_value(CONFIG.rules[rule_id].params[name]):
        path.write_text(original, encoding="utf-8")
        number = int(candidate) if candidate == int(candidate) else float(candidate)
        edit_yaml(path, lambda d, n=number: d["parameters"].__setitem__(name, n))
        try:
            config = load_configuration(cards, REGISTRY)
        except ConfigError:
            continue  # outside the parameter's range: try the next value
        assert rule_text(config, rule_id) != before, f"{rule_id}: {name} is not in the text"
        return
    pytest.fail(f"no valid new value for {rule_id}.{name}")


def test_every_rule_states_its_thresholds_from_parameters() -> None:
    """The thresholds named in the issue are placeholders, not literals."""
    stated = {r: stated_parameters(r) for r in CONFIG.rules}
    assert {"warning_alt_multiple", "critical_alt_multiple", "combined_alt_multiple"} <= stated[
        "anti-tnf-liver-injury"
    ]
    assert {"min_combination_days", "alt_uln_multiple"} <= stated["aih-refractory"]
    assert {"max_remaining_fraction", "week4_target_days"} <= stated["aih-nonresponse"]
    assert {"hcg_positive_at_or_above", "age_min_years"} <= stated["mmf-teratogenicity"]


def test_a_literal_number_equal_to_a_parameter_is_a_warning(cards: Path) -> None:
    path = cards / "rules" / "aih-refractory.yaml"
    edit_yaml(
        path,
        lambda d: d["outcomes"]["steroid-refractory"].update(
            summary="ALT at least 2\u00d7ULN despite 90 days of ${combination}"
        ),
    )
    warnings = load_configuration(cards, REGISTRY).warnings
    assert any(
        "summary: literal 90 equals the value of parameter min_combination_days" in w
        for w in warnings
    )
    assert any("literal 2 equals the value of parameter alt_uln_multiple" in w for w in warnings)
    assert CONFIG.warnings == ()  # the bundled configuration states every threshold from params


def test_unrelated_numbers_silence_the_warning(cards: Path) -> None:
    path = cards / "rules" / "tpmt-before-thiopurine.yaml"
    edit_yaml(path, lambda d: d.__setitem__("unrelated_numbers", []))
    (warning,) = load_configuration(cards, REGISTRY).warnings
    assert "literal 30 equals the value of parameter absent_activity_fraction|percent" in warning


# ---------------------------------------------------------------- 3, 6. concise, consistent


def test_summaries_fit_and_long_drug_names_are_cut_at_a_word() -> None:
    rule = CONFIG.rules["mmf-teratogenicity"]
    drug = "Mycophenolate mofetil 500 mg film-coated oral tablet " * 4
    finding = Finding(rule.id, "male-patient", {"drug": drug, "age": "30", "sex": "male"})
    summary = render(rule, finding)["summary"]
    assert len(summary) <= SUMMARY_MAX
    assert summary.startswith("Mycophenolate for a male patient: condoms")  # wording kept
    cut = summary.split("(", 1)[1].split("…")[0]
    assert drug.startswith(cut)
    assert drug[len(cut)] == " "
    assert shorten_at_word("prednisolone + azathioprine", 20) == "prednisolone…"


def test_every_card_links_its_evidence_page_as_source_url() -> None:
    for card in all_cards():
        url = f"https://cds.example.org/evidence/{card['source']['topic']['code']}"
        assert card["source"]["url"] == url
        assert card["links"][0] == {
            "label": "Evidence and background for this card",
            "url": url,
            "type": "absolute",
        }


def test_service_request_suggestions_have_one_shape_across_rules() -> None:
    shapes = set()
    for card in all_cards():
        for suggestion in card.get("suggestions", ()):
            for action in suggestion["actions"]:
                resource = action.get("resource")
                if resource and resource["resourceType"] == "ServiceRequest":
                    shapes.add((resource["status"], resource["intent"], "category" in resource))
    assert shapes == {("draft", "order", True)}
    assert SUGGESTION_SHAPES["ServiceRequest"] == {"status": "draft", "intent": "order"}


def test_a_rule_file_may_not_set_the_shared_suggestion_shape(cards: Path) -> None:
    path = cards / "rules" / "aih-refractory.yaml"
    edit_yaml(
        path,
        lambda d: d["suggestions"]["order-metabolite-panel"]["resource"].update(intent="proposal"),
    )
    error = load_error(cards)
    assert error.field == "suggestions.order-metabolite-panel.resource.intent"


def test_missing_data_section_is_never_none_when_the_rule_reports_a_gap() -> None:
    for card in all_cards():
        missing = card["detail"].split("**Missing or assumed data**")[1]
        assert "- gap" in missing
        assert "none" not in missing


def test_override_reasons_fit_each_outcome() -> None:
    rule = CONFIG.rules["mmf-teratogenicity"]

    def codes(outcome: str) -> set[str]:
        finding = next(f for f in outcome_findings(rule) if f.outcome == outcome)
        return {r["code"] for r in render(rule, finding)["overrideReasons"]}

    assert "pregnancy-ended" in codes("pregnant")
    assert not {"test-already-ordered", "pregnancy-excluded-elsewhere"} & codes("pregnant")
    assert "pregnancy-ended" not in codes("pregnancy-test-needed")
    severe = CONFIG.rules["anti-tnf-liver-injury"]
    finding = next(f for f in outcome_findings(severe) if f.outcome == "severe-injury")
    assert "benefit-outweighs-risk" not in {
        r["code"] for r in render(severe, finding)["overrideReasons"]
    }


# ---------------------------------------------------------------- 4. content corrections


def aih_card(age_group: str) -> str:
    rule = CONFIG.rules["aih-refractory"]
    variables = dict.fromkeys(rule.spec.outcomes["steroid-refractory"], "V")
    finding = Finding(rule.id, "steroid-refractory", variables | {"age_group": age_group})
    detail: str = render(rule, finding)["detail"]
    return detail


def test_paediatric_genetic_testing_only_under_18() -> None:
    assert "genetic testing" in aih_card("child")
    assert "Patient under 18" in aih_card("child")
    assert "genetic testing" not in aih_card("adult")
    assert "genetic testing" not in aih_card("unknown")


def test_second_line_options_carry_their_main_caution() -> None:
    page = rule_page_body(CONFIG.rules["aih-refractory"], CONFIG)
    options = {
        "Mycophenolate mofetil": "teratogenic",
        "Tacrolimus": "trough levels",
        "Cyclosporine": "trough levels",
        "Infliximab": "tuberculosis and hepatitis B",
        "Rituximab": "tuberculosis and hepatitis B",
    }
    for drug, caution in options.items():
        item = page.split(f"<strong>{drug}</strong>")[1].split("</li>")[0]
        assert caution in item, drug
    assert "6 patients, not all strictly steroid-refractory" in page
    assert "Patients under 18 only" in page


def test_budesonide_figure_is_described_as_cohort_wide() -> None:
    rule = CONFIG.rules["budesonide-cirrhosis"]
    finding = next(f for f in outcome_findings(rule) if f.outcome == "cirrhosis")
    detail = " ".join(render(rule, finding)["detail"].split())
    assert "whole first-line cohort" in detail
    assert (
        "not a cirrhosis subgroup) biochemical response was 49 % with budesonide vs 87 %" in detail
    )


# ---------------------------------------------------------------- 5. safe rendering

HOSTILE = (
    '<img src=x onerror="alert(1)"> [click here](https://evil.example/x) ![p](https://evil.example/p.png)'
    " <script>alert(2)</script> <https://evil.example/auto> https://evil.example/bare"
    " www.evil.example mail@evil.example `code` **bold** &lt;b&gt; [ref]: https://evil.example"
)


def html_of(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).render(markdown)


def test_hostile_fhir_text_leaves_no_tag_or_link_in_any_card() -> None:
    for card in all_cards(value=HOSTILE):
        html = html_of(card["detail"])
        assert not re.search(r"<(img|script|a)\b", html), html
        assert "<strong>bold</strong>" not in html
        assert "<code>" not in html
        assert not re.search(r"https?://evil", card["detail"]), "a bare URL could be autolinked"
        assert "www.evil" not in card["detail"]
        assert "mail@evil" not in card["detail"]
        for plain in [card["summary"], *(s["label"] for s in card.get("suggestions", ()))]:
            assert not re.search(r"<[A-Za-z/!?]|\]\(", plain), plain
            assert not re.search(r"https?://evil|www\.evil|mail@evil", plain), plain
            assert not re.search(r"<(img|script|a)\b", html_of(plain))


def test_escaping_keeps_the_text_readable() -> None:
    value = "- ALT 40 U/L (1.0\u00d7ULN)\n- hCG 12 m[IU]/mL"
    assert html_of(escape_value(value)) == (
        "<ul>\n<li>ALT 40 U/L (1.0\u00d7ULN)</li>\n<li>hCG 12 m[IU]/mL</li>\n</ul>\n"
    )
    assert plain_value("TPMT *1/*3A (a < b)") == "TPMT *1/*3A (a \u2039 b)"


def test_configured_text_is_not_escaped() -> None:
    rule: RuleConfig = CONFIG.rules["anti-tnf-liver-injury"]
    phrases: Mapping[str, Mapping[str, str]] = rule.phrases
    assert "\u00d7${reference}" in phrases["criterion"]["alt"]
    card = render(rule, next(outcome_findings(rule)))
    assert card["detail"].startswith("**Possible severe drug-induced liver injury**")
    assert "\u00d7V in the last" in card["detail"]  # the phrase's sign, then the escaped value


# ---------------------------------------------------------------- the golden cards, as shipped

GOLDEN = CARDS.parent / "fixtures" / "fhir"
# what a card says when data it shows was not there; its "Missing or assumed data" must say so
SAYS_MISSING = re.compile(
    r": not measured|not measured since|no pregnancy test or status|Baseline ALT: none|"
    r"No TPMT or NUDT15 result"
)


def golden_cards() -> Iterator[dict[str, Any]]:
    for path in sorted(GOLDEN.glob("*/expected-cards.json")):
        yield from json.loads(path.read_text(encoding="utf-8"))["cards"]


def test_golden_cards_are_concise_and_consistent() -> None:
    cards = list(golden_cards())
    assert len(cards) > 50
    for card in cards:
        decision, missing = card["detail"].split("**Missing or assumed data**")
        assert len(card["summary"]) < 140
        if card["indicator"] != "info":
            assert len(decision) <= 1150, card["summary"]
        if SAYS_MISSING.search(decision):
            assert "- none" not in missing, card["summary"]
        assert card["source"]["url"].endswith(f"/evidence/{card['source']['topic']['code']}")
