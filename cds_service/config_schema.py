"""JSON Schema (draft 2020-12) of the ``cards/`` files, derived from the marshmallow schemas.

The loader's schemas are the single source of truth: this module only translates them, so the
schema editors and CI see can never drift from what start-up accepts. Cross-file checks (a value
set that must exist, template variables, outcomes a rule implements) are not expressible in JSON
Schema and stay in ``aih-cds rules validate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, fields, missing, validate

from cds_service.configuration import (
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
    converter = _Converter()
    defs = {kind: converter.schema(schema_class()) for kind, schema_class in FILE_KINDS.items()}
    defs["rule"] = _with_rule_parameters(defs["rule"], registry, converter)
    defs.update(converter.defs)
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
    rule: dict[str, Any], registry: Mapping[str, RuleSpec], converter: _Converter
) -> dict[str, Any]:
    """``parameters`` depends on ``id``: one if/then branch per implemented rule."""
    branches = []
    for rule_id, spec in sorted(registry.items()):
        parameters = converter.schema(spec.parameters())
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


class _Converter:
    """Marshmallow fields -> JSON Schema; nested schemas become shared ``$defs``."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}
        self._names: dict[type[Schema], str] = {}

    def schema(self, schema: Schema) -> dict[str, Any]:
        properties = {name: self.field(field) for name, field in schema.fields.items()}
        required = sorted(name for name, field in schema.fields.items() if field.required)
        result: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            result["required"] = required
        if schema.unknown == RAISE:
            result["additionalProperties"] = False
        return result

    def field(self, field: fields.Field[Any]) -> dict[str, Any]:
        result = self._type(field)
        for validator in field.validators:
            result.update(_constraint(validator))
        default = field.load_default
        if default is not missing and default is not None and not callable(default):
            result["default"] = _json_value(default)
        description = field.metadata.get("description")
        if description:
            result["description"] = description
        return _nullable(result) if field.allow_none else result

    def _type(self, field: fields.Field[Any]) -> dict[str, Any]:
        if isinstance(field, fields.Nested):
            return {"$ref": f"#/$defs/{self._define(field.schema)}"}
        if isinstance(field, fields.List):
            return {"type": "array", "items": self.field(field.inner)}
        if isinstance(field, fields.Dict):
            result: dict[str, Any] = {"type": "object"}
            if field.value_field is not None:
                result["additionalProperties"] = self.field(field.value_field)
            if field.key_field is not None:
                keys = self.field(field.key_field)
                keys.pop("type", None)
                if keys:
                    result["propertyNames"] = keys
            return result
        return _scalar(field)

    def _define(self, nested: Schema) -> str:
        known = self._names.get(type(nested))
        if known is not None:
            return known
        base = type(nested).__name__.removesuffix("Schema").lower()
        name = base
        while name in self.defs or name in FILE_KINDS:
            name += "_"  # two schema classes of the same name in different modules
        self._names[type(nested)] = name
        self.defs[name] = {}  # reserved before recursing: a schema may nest itself
        self.defs[name] = self.schema(nested)
        return name


def _nullable(result: dict[str, Any]) -> dict[str, Any]:
    """``allow_none`` (also implied by ``load_default=None``): null is a valid value too."""
    if isinstance(result.get("type"), str):
        result["type"] = [result["type"], "null"]
        if "enum" in result:
            result["enum"] = [*result["enum"], None]
        return result
    return {"anyOf": [result, {"type": "null"}]}


def _scalar(field: fields.Field[Any]) -> dict[str, Any]:
    # Order matters: Url is a String, Integer is a Number.
    if isinstance(field, fields.Url):
        return {"type": "string", "format": "uri"}
    if isinstance(field, fields.String):
        return {"type": "string"}
    if isinstance(field, fields.Boolean):
        return {"type": "boolean"}
    if isinstance(field, fields.Integer):
        return {"type": "integer"}
    if isinstance(field, fields.Number):  # Decimal and Float
        return {"type": "number"}
    return {}


def _constraint(validator: Any) -> dict[str, Any]:
    if isinstance(validator, validate.OneOf):
        return {"enum": list(validator.choices)}
    if isinstance(validator, validate.Equal):
        return {"const": validator.comparable}
    if isinstance(validator, validate.Regexp):
        return {"pattern": validator.regex.pattern}
    if isinstance(validator, validate.Length):
        return _bounds(validator.min, validator.max, "minLength", "maxLength")
    if isinstance(validator, validate.Range):
        low = "minimum" if validator.min_inclusive else "exclusiveMinimum"
        high = "maximum" if validator.max_inclusive else "exclusiveMaximum"
        return _bounds(validator.min, validator.max, low, high)
    return {}


def _bounds(low: Any, high: Any, low_name: str, high_name: str) -> dict[str, Any]:
    result = {}
    if low is not None:
        result[low_name] = _json_value(low)
    if high is not None:
        result[high_name] = _json_value(high)
    return result


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
