"""JSON Schema (draft 2020-12) of the ``cards/`` files, generated from the marshmallow schemas.

The loader's schemas are the single source of truth: apispec's marshmallow plugin translates them
(the same converter publishes the request schemas of ``/openapi.json``), so the schema editors and
CI see can never drift from what start-up accepts. Cross-file checks (a value set that must exist,
template variables, outcomes a rule implements) are not expressible in JSON Schema and stay in
``aih-cds rules validate``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields, validate

from cds_service.configuration import (
    RuleFileSchema,
    ServiceSchema,
    TerminologySchema,
    ValueSetSchema,
)
from cds_service.rules.base import RuleSpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:aih-cds:configuration-schema"
_COMPONENTS = "#/components/schemas/"
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


class JsonSchemaGenerator:
    """Marshmallow schemas -> JSON Schema with apispec; nested schemas become ``$defs`` named after
    their class (``OutcomeSchema`` -> ``outcome``). OpenAPI 3.1 schemas are JSON Schema 2020-12
    (null allowed as ``type: [T, "null"]``); 3.0 writes ``nullable: true`` instead."""

    def __init__(self, reserved: Collection[str] = (), openapi_version: str = "3.1.0") -> None:
        self._names: dict[type[Schema], str] = {}
        self._reserved = set(reserved)
        plugin = MarshmallowPlugin(schema_name_resolver=self._name)
        self._spec = APISpec("schemas", "1", openapi_version, plugins=[plugin])
        if plugin.converter is None:  # set by APISpec; None only before that
            raise RuntimeError("apispec did not initialise its marshmallow converter")
        self._converter = plugin.converter
        if openapi_version.startswith("3.1"):  # JSON Schema 2020-12 keywords OpenAPI 3.0 lacks
            self._converter.add_attribute_function(_exclusive_bounds)
            self._converter.add_attribute_function(_property_names)

    def schema(self, schema: Schema | type[Schema]) -> dict[str, Any]:
        generated = self._converter.schema2jsonschema(schema)
        converted: dict[str, Any] = _as_json_schema(generated)
        return converted

    def defs(self) -> dict[str, Any]:
        components = self._spec.to_dict().get("components", {}).get("schemas", {})
        return {name: _as_json_schema(schema) for name, schema in components.items()}

    def _name(self, schema: Schema | type[Schema]) -> str:
        schema_class = schema if isinstance(schema, type) else type(schema)
        known = self._names.get(schema_class)
        if known is not None:
            return known
        name = schema_class.__name__.removesuffix("Schema").lower()
        taken = self._reserved | set(self._names.values())
        while name in taken:
            name += "_"  # two schema classes of the same name in different modules
        self._names[schema_class] = name
        return name


def _exclusive_bounds(_converter: Any, field: fields.Field[Any], ret: dict[str, Any]) -> Any:
    """apispec writes every ``Range`` bound as inclusive; 2020-12 has exclusive bounds."""
    for validator in field.validators:
        if not isinstance(validator, validate.Range):
            continue
        if validator.min is not None and not validator.min_inclusive:
            ret.pop("minimum", None)
            ret["exclusiveMinimum"] = validator.min
        if validator.max is not None and not validator.max_inclusive:
            ret.pop("maximum", None)
            ret["exclusiveMaximum"] = validator.max
    return {}


def _property_names(converter: Any, field: fields.Field[Any], **_: Any) -> Any:
    """The key field of a ``Dict`` (e.g. ``OneOf(["female", "male"])``) as ``propertyNames``."""
    if not isinstance(field, fields.Dict) or field.key_field is None:
        return {}
    keys = dict(converter.field2property(field.key_field))
    keys.pop("type", None)
    return {"propertyNames": keys} if keys else {}


def _as_json_schema(value: Any) -> Any:
    """apispec's output as plain JSON Schema: ``$defs`` references, JSON numbers, ``uri``."""
    if isinstance(value, Mapping):
        converted = {key: _as_json_schema(item) for key, item in value.items()}
        if isinstance(converted.get("$ref"), str):
            converted["$ref"] = converted["$ref"].replace(_COMPONENTS, "#/$defs/")
        if converted.get("format") == "url":
            converted["format"] = "uri"
        return converted
    if isinstance(value, list):
        return [_as_json_schema(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
