"""Where a code counts: every value set containing it (directly, through an included value set
or below a listed ICD-10 code), the drug classes and analytes defined by those value sets, and
the rules that read them (``aih-cds valueset where``)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from cds_service.config.configuration import Configuration, RuleConfig
from cds_service.patient.terminology import ValueSet, code_key, normalise_system


@dataclass(frozen=True)
class Membership:
    valueset: str
    title: str
    system: str
    how: str  # "listed", "included from <member>", "below <ancestor>"
    drug_classes: tuple[str, ...]
    analytes: tuple[str, ...]
    rules: tuple[str, ...]  # "rule-id" or "rule-id (silent)" / "(disabled)"

    def as_json(self) -> dict[str, Any]:
        return {
            "valueset": self.valueset,
            "title": self.title,
            "system": self.system,
            "how": self.how,
            "drug_classes": list(self.drug_classes),
            "analytes": list(self.analytes),
            "rules": list(self.rules),
        }


def memberships(config: Configuration, code: str, system: str | None = None) -> list[Membership]:
    """Every value set of ``config`` containing ``code`` (in ``system``, else in any system),
    members before the classes that include them."""
    valuesets = config.terminology.valuesets
    found = []
    for valueset in valuesets.values():
        for candidate in [normalise_system(system)] if system else _systems(valueset):
            if valueset.contains(candidate, code):
                found.append(_membership(config, valueset, candidate, code))
    return sorted(found, key=lambda m: (m.how != "listed", m.valueset, m.system))


def close_codes(config: Configuration, code: str, system: str | None = None) -> list[str]:
    """Up to five codes of the value sets that look like ``code``, with their display."""
    displays: dict[str, str] = {}
    for valueset in config.terminology.valuesets.values():
        for (vs_system, vs_code), display in valueset.displays.items():
            if system is None or vs_system == normalise_system(system):
                displays.setdefault(vs_code, f"{vs_code} ({display or vs_system})")
    close = difflib.get_close_matches(code.strip(), sorted(displays), n=5, cutoff=0.7)
    return [displays[c] for c in close]


def _systems(valueset: ValueSet) -> list[str]:
    return sorted({system for system, _ in valueset.codes | valueset.ancestors})


def _membership(config: Configuration, valueset: ValueSet, system: str, code: str) -> Membership:
    terminology = config.terminology
    classes = tuple(
        sorted(c.id for c in terminology.drug_classes.values() if c.valueset.id == valueset.id)
    )
    analytes = tuple(sorted(a.id for a in config.analytes.values() if a.valueset.id == valueset.id))
    names = {valueset.id, *classes, *analytes}
    rules = tuple(
        _rule_label(rule) for rule in config.rules.values() if names & rule.terminology_read()
    )
    return Membership(
        valueset.id,
        valueset.title,
        system,
        _how(config, valueset, system, code),
        classes,
        analytes,
        rules,
    )


def _how(config: Configuration, valueset: ValueSet, system: str, code: str) -> str:
    if code_key(system, code) in valueset.own_codes:
        return "listed"
    valuesets = config.terminology.valuesets
    for member in valueset.includes:
        if valuesets[member].contains(system, code):
            return f"included from {member}"
    normalised = code_key(system, code)[1]
    ancestor = next(
        (c for s, c in sorted(valueset.ancestors) if s == system and normalised.startswith(c)),
        "",
    )
    return f"below {ancestor}" if ancestor else "listed"


def _rule_label(rule: RuleConfig) -> str:
    if not rule.enabled:
        return f"{rule.id} (disabled)"
    return rule.id if rule.mode == "active" else f"{rule.id} ({rule.mode})"
