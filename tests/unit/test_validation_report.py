"""``aih-cds rules validate`` lists every problem of a configuration in one run: file, line,
fields with list positions from 1, the offending entry and "did you mean" for unknown names;
thresholds are checked against each other and against plausible bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from marshmallow import Schema, fields, validate

from cds_service.cli.main import main
from cds_service.config.configuration import ConfigError, load_configuration
from cds_service.rules.registry import REGISTRY


def replace_line(path: Path, old: str, new: str) -> int:
    """Replace the one line ``old`` (stripped) with ``new``; return its 1-based number."""
    lines = path.read_text().splitlines(keepends=True)
    numbers = [i for i, line in enumerate(lines) if line.strip() == old]
    assert len(numbers) == 1, (path, old, numbers)
    indent = lines[numbers[0]][: len(lines[numbers[0]]) - len(lines[numbers[0]].lstrip())]
    lines[numbers[0]] = f"{indent}{new}\n"
    path.write_text("".join(lines))
    return numbers[0] + 1


def validate_cards(cards: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["rules", "validate", "--cards-dir", str(cards)])
    return code, capsys.readouterr().err.splitlines()


def test_every_problem_of_several_files_is_listed_with_its_line(
    cards: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = cards / "services" / "aih-order-sign.yaml"
    service_line = replace_line(service, "- aih-refractory", "- aih-refractori")
    anti_tnf = cards / "rules" / "anti-tnf-liver-injury.yaml"
    warning_line = replace_line(
        anti_tnf,
        next(
            line.strip()
            for line in anti_tnf.read_text().splitlines()
            if line.strip().startswith("warning_alt_multiple:")
        ),
        "warning_alt_multiple: 30",
    )
    mmf = cards / "rules" / "mmf-teratogenicity.yaml"
    text = mmf.read_text()
    mmf.write_text(text.replace("\n  age_max_years:", "\n  age_max_year:", 1))
    terminology = cards / "terminology.yaml"
    terminology.write_text(
        terminology.read_text().replace("valueset: mycophenolate\n", "valueset: mycophenolat\n", 1)
    )
    valueset = cards / "valuesets" / "mycophenolate.json"
    data = json.loads(valueset.read_text())
    del data["expansion"]["contains"][2]["code"]
    valueset.write_text(json.dumps(data, indent=2))

    code, lines = validate_cards(cards, capsys)

    assert code == 2
    assert lines[-1] == "5 configuration problems: fix them all"
    problems = lines[:-1]
    assert all(line.startswith("configuration error: ") for line in problems)
    assert (
        f'{service}:{service_line}: rules#2 ("aih-refractori"): no rule file for '
        "'aih-refractori'; did you mean 'aih-refractory'?"
    ) in "\n".join(problems)
    assert (
        f"{anti_tnf}:{warning_line}: parameters.warning_alt_multiple: must be below "
        "critical_alt_multiple (5)"
    ) in "\n".join(problems)
    assert any(
        f"{mmf}:" in p
        and "parameters.age_max_year: Unknown field; did you mean 'age_max_years'?" in p
        for p in problems
    )
    assert any(f"{terminology}:" in p and "did you mean 'mycophenolate'?" in p for p in problems)
    json_lines = valueset.read_text().splitlines()
    display_at = next(i for i, t in enumerate(json_lines) if '"mycophenolate sodium"' in t)
    entry_line = max(i for i in range(display_at) if json_lines[i].strip() == "{") + 1
    assert (
        f'{valueset}:{entry_line}: expansion.contains#3.code (display "mycophenolate sodium"): '
        "Missing data for required field."
    ) in "\n".join(problems)
    # the broken mycophenolate file is reported once, not again by the classes including it
    assert not any("aih-first-line.json" in p for p in problems)


def report_after_edits(cards: Path, rule_id: str, *edits: tuple[str, str]) -> str:
    """Apply text edits (old, new: first occurrence) to a rule file; the load error's report."""
    rule = cards / "rules" / f"{rule_id}.yaml"
    text = rule.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    rule.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_configuration(cards, REGISTRY)
    return str(caught.value)


@pytest.mark.parametrize(
    ("rule_id", "edits", "expected"),
    [
        (
            "mmf-teratogenicity",
            (
                ("override_reasons: [pregnancy-ended,", "override_reasons: [pregnancy-endd,"),
                ("  age_min_years: 12", "  age_min_years: 12\n  hcg_cutoff: 5"),
            ),
            (
                "parameters.hcg_cutoff: Unknown field",
                "'pregnancy-endd'; did you mean 'pregnancy-ended'?",
            ),
        ),
        (  # a misspelt parameter and a crossed threshold, reported together
            "anti-tnf-liver-injury",
            (
                ("\n  critical_alt_multiple:", "\n  critical_alt_multipel:"),
                ("\n  warning_alt_multiple: 3", "\n  warning_alt_multiple: 30"),
            ),
            (
                "did you mean 'critical_alt_multiple'?",
                "parameters.warning_alt_multiple: must be below critical_alt_multiple (5)",
            ),
        ),
    ],
)
def test_several_problems_in_one_rule_file_are_all_reported(
    cards: Path,
    rule_id: str,
    edits: tuple[tuple[str, str], ...],
    expected: tuple[str, ...],
) -> None:
    report = report_after_edits(cards, rule_id, *edits)
    for text in expected:
        assert text in report


@pytest.mark.parametrize(
    ("rule", "parameter", "value", "message"),
    [
        ("anti-tnf-liver-injury", "warning_alt_multiple", 5, "below critical_alt_multiple"),
        ("anti-tnf-liver-injury", "combined_alt_multiple", 6, "not exceed critical_alt_multiple"),
        ("anti-tnf-liver-injury", "critical_alt_multiple", 500, "less than or equal to 50"),
        ("aih-insufficient-response", "measured_after_days", 182, "below assess_from_days"),
        ("aih-nonresponse", "week4_target_days", 50, "week4_window_start_days <="),
        ("mmf-teratogenicity", "hcg_positive_at_or_above", 2500, "less than or equal to 100"),
        ("mmf-teratogenicity", "hcg_negative_below", 30, "not exceed hcg_positive_at_or_above"),
    ],
)
def test_thresholds_are_checked_against_each_other_and_their_bounds(
    cards: Path, rule: str, parameter: str, value: int, message: str
) -> None:
    path = cards / "rules" / f"{rule}.yaml"
    text = path.read_text()
    marker = "\nparameters:\n"
    assert marker in text
    path.write_text(text.replace(marker, f"{marker}  {parameter}: {value}\n", 1))
    if text.count(f"\n  {parameter}:"):  # the file sets it already: drop the old line
        lines = path.read_text().splitlines(keepends=True)
        first = next(i for i, line in enumerate(lines) if line.startswith(f"  {parameter}:"))
        second = next(
            i for i, line in enumerate(lines) if line.startswith(f"  {parameter}:") and i > first
        )
        del lines[second]
        path.write_text("".join(lines))
    with pytest.raises(ConfigError) as caught:
        load_configuration(cards, REGISTRY)
    assert caught.value.field == f"parameters.{parameter}"
    assert message in caught.value.message


def _numeric_fields(schema: Schema, prefix: str = "") -> list[tuple[str, fields.Field]]:  # type: ignore[type-arg]
    found = []
    for name, field in schema.fields.items():
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested):
            found += _numeric_fields(inner.schema, f"{prefix}{name}.")
        elif isinstance(inner, fields.Number):
            found.append((prefix + name, inner))
    return found


@pytest.mark.parametrize("rule_id", sorted(REGISTRY))
def test_every_numeric_parameter_has_plausible_bounds(rule_id: str) -> None:
    """Both a lower and an upper bound: a typing error (500 for 5) stops start-up, and
    ``rules show`` prints the range beside the parameter."""
    for name, field in _numeric_fields(REGISTRY[rule_id].parameters()):
        ranges = [v for v in field.validators if isinstance(v, validate.Range)]
        assert any(r.min is not None and r.max is not None for r in ranges), (rule_id, name)


def test_a_single_problem_keeps_the_one_line_format(
    cards: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = cards / "services" / "aih-order-sign.yaml"
    line = replace_line(service, "- aih-refractory", "- no-such-rule")
    code, lines = validate_cards(cards, capsys)
    assert code == 2
    assert lines == [
        f'configuration error: {service}:{line}: rules#2 ("no-such-rule"): no rule file for '
        "'no-such-rule'"
    ]
