"""The configuration as the service runs it: every default filled in, as plain data."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cds_service.config.configuration import Configuration, RuleConfig, ServiceConfig


def effective_rule(rule: RuleConfig) -> dict[str, Any]:
    return _plain_mapping(
        {
            "id": rule.id,
            "file": rule.file,
            "enabled": rule.enabled,
            "title": rule.title,
            "hooks": sorted(rule.spec.hooks),
            "reads": sorted(kind.value for kind in rule.spec.needs),
            "source": rule.source,
            "parameters": rule.params,
            "outcomes": {
                name: {**outcome, "variables": sorted(rule.spec.variables_for(name))}
                for name, outcome in rule.outcomes.items()
            },
            "suggestions": rule.suggestions,
            "links": rule.links,
            "override_reasons": list(rule.override_reasons),
            "evidence": list(rule.evidence),
        }
    )


def effective_service(service: ServiceConfig) -> dict[str, Any]:
    return _plain_mapping(
        {
            "id": service.id,
            "file": service.file,
            "hook": service.hook,
            "title": service.title,
            "description": service.description,
            "usageRequirements": service.usage_requirements,
            "prefetch": service.prefetch,
            "rules": list(service.rules),
        }
    )


def effective_configuration(config: Configuration) -> dict[str, Any]:
    return {
        "cards_dir": str(config.cards_dir),
        "services": [effective_service(s) for s in config.services.values()],
        "rules": [effective_rule(r) for r in config.rules.values()],
        "terminology": {
            "name_fallback": config.terminology.name_fallback,
            "drug_classes": sorted(config.terminology.drug_classes),
            "analytes": {
                analyte.id: plain(
                    {
                        "valueset": analyte.valueset.id,
                        "unit": analyte.unit,
                        "units": analyte.factors,
                        "default_uln": analyte.default_uln,
                        "default_uln_by_sex": analyte.default_uln_by_sex,
                    }
                )
                for analyte in config.analytes.values()
            },
            "valuesets": sorted(config.terminology.valuesets),
        },
    }


def plain(value: Any) -> Any:
    """Mappings, tuples and Decimals as YAML/JSON-friendly dicts, lists and numbers."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _plain_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): plain(v) for k, v in value.items()}
