"""JSON Schema (draft 2020-12) of the ``cards/`` files, generated from the marshmallow schemas.

The loader's schemas are the single source of truth: :mod:`cds_service.common.json_schema`
(apispec's marshmallow plugin) translates them, so the schema editors and CI see can never drift
from what start-up accepts. Cross-file checks (a value set that must exist, template variables,
outcomes a rule implements) are not expressible in JSON Schema and stay in ``aih-cds rules
validate``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema

from cds_service.common.json_schema import JsonSchemaGenerator
from cds_service.config.configuration import (
    RuleFileSchema,
    ServiceSchema,
    TerminologySchema,
    ValueSetSchema,
)
from cds_service.rules.base import RuleSpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:aih-cds:configuration-schema"
FILE_KINDS: Mapping[str, type[Schema]] = {
    "service": ServiceSchema,
    "rule": RuleFileSchema,
    "terminology": TerminologySchema,
    "valueset": ValueSetSchema,
}


def configuration_schema(registry: Mapping[str, RuleSpec]) -> dict[str, Any]:
    """One document: ``$defs`` per file kind; rule files get their rule's parameter schema."""
    generator = JsonSchemaGenerator(reserved=FILE_KINDS)
    defs = {kind: generator.schema(schema_class) for kind, schema_class in FILE_KINDS.items()}
    defs["rule"] = _with_rule_parameters(defs["rule"], registry, generator)
    defs.update(generator.defs())
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "AIH CDS configuration (cards/)",
        "description": (
            "services/*.yaml: #/$defs/service; rules/*.yaml: #/$defs/rule; terminology.yaml: "
            "#/$defs/terminology; valuesets/*.json: #/$defs/valueset. Cross-file references are "
            "checked by `aih-cds rules validate`."
        ),
        "anyOf": [{"$ref": f"#/$defs/{kind}"} for kind in FILE_KINDS],
        "$defs": dict(sorted(defs.items())),
    }


def file_kind_schema(full: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A standalone schema for one file kind (for an editor mapping one glob to one schema)."""
    return {
        "$schema": DIALECT,
        "$id": f"{SCHEMA_ID}:{kind}",
        "$ref": f"#/$defs/{kind}",
        "$defs": full["$defs"],
    }


def _with_rule_parameters(
    rule: dict[str, Any], registry: Mapping[str, RuleSpec], generator: JsonSchemaGenerator
) -> dict[str, Any]:
    """``parameters`` depends on ``id``: one if/then branch per implemented rule."""
    branches = []
    for rule_id, spec in sorted(registry.items()):
        parameters = generator.schema(spec.parameters())
        branches.append(
            {
                "if": {"properties": {"id": {"const": rule_id}}, "required": ["id"]},
                "then": {"properties": {"parameters": parameters}},
            }
        )
    rule = dict(rule)
    rule["properties"] = dict(rule["properties"])
    rule["properties"]["id"] = {**rule["properties"]["id"], "enum": sorted(registry)}
    if branches:
        rule["allOf"] = branches
    return rule
