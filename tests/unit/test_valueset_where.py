"""``aih-cds valueset where CODE``: the value sets, classes and rules a code counts in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cds_service.cli.main import main

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def where(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["valueset", "where", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_member_code_is_listed_with_every_class_that_includes_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = where(capsys, "68149", "--json")
    assert code == 0
    found = {m["valueset"]: m for m in json.loads(out)}
    assert set(found) == {"mycophenolate", "aih-first-line"}
    assert found["mycophenolate"]["how"] == "listed"
    assert found["aih-first-line"]["how"] == "included from mycophenolate"
    assert "mmf-teratogenicity" in found["mycophenolate"]["rules"]
    assert {"aih-nonresponse", "aih-insufficient-response", "aih-refractory"} <= set(
        found["aih-first-line"]["rules"]
    )


def test_text_output_names_classes_analytes_and_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = where(capsys, "1742-6", "--system", "urn:oid:2.16.840.1.113883.6.1")
    assert code == 0
    assert "alt (http://loinc.org): listed" in out
    assert "lab analyte: alt" in out
    assert "anti-tnf-liver-injury" in out  # reads ALT by analyte id, not by a parameter


def test_an_icd10_child_code_is_found_below_its_listed_parent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = where(capsys, "k746.9", "--system", "http://hl7.org/fhir/sid/icd-10")
    assert code == 0
    assert "cirrhosis (http://hl7.org/fhir/sid/icd-10): below K746" in out


def test_a_local_code_added_to_the_member_shows_in_the_class_and_a_silent_rule(
    cards: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cards / "valuesets" / "mycophenolate.json"
    data = json.loads(path.read_text())
    data["expansion"]["contains"].append(
        {"system": "urn:oid:1.2.3.999", "code": "LOCAL-MMF", "display": "MMF local"}
    )
    path.write_text(json.dumps(data))
    rule = cards / "rules" / "aih-refractory.yaml"
    rule.write_text(
        rule.read_text().replace("id: aih-refractory\n", "id: aih-refractory\nmode: silent\n", 1)
    )
    assert yaml.safe_load(rule.read_text())["mode"] == "silent"
    code, out, _ = where(capsys, "LOCAL-MMF", "--cards-dir", str(cards))
    assert code == 0
    assert "aih-first-line (urn:oid:1.2.3.999): included from mycophenolate" in out
    assert "aih-refractory (silent)" in out


def test_an_unknown_code_is_a_friendly_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = where(capsys, "6814", "--system", RXNORM)
    assert code == 1
    assert out == ""
    assert "'6814' in http://www.nlm.nih.gov/research/umls/rxnorm is in no value set" in err
    assert "similar codes: 68149 (mycophenolate mofetil)" in err
    assert "Traceback" not in err


def test_every_analyte_a_rule_module_reads_by_name_is_declared() -> None:
    """``valueset where`` lists a rule for a lab only if its spec declares the analyte."""
    import inspect
    import re

    from cds_service.rules.registry import REGISTRY

    for spec in REGISTRY.values():
        source = inspect.getsource(inspect.getmodule(spec.evaluate))  # type: ignore[arg-type]
        for analyte in re.findall(r"lab_series\(\"([a-z0-9-]+)\"\)", source):
            assert analyte in spec.terminology, (spec.id, analyte)
