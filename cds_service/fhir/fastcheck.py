"""A fast proof that a resource is valid R4B, for the common case; pydantic judges the rest.

Validating with the ``fhir.resources`` models costs ~0.3 ms per Observation, nearly all of it in
Python validators that run for every nested element (CodeableConcept, Coding, Quantity, ...). This
module walks the JSON instead, with rules compiled once per model from the models' own metadata:

- every key must be a known element (alias) of that model; ``_x`` primitive extensions,
  ``fhir_comments``, contained resources and anything the compiler does not understand make it
  answer "unproven";
- required elements present, at most one element of each choice group (exactly one if required);
- complex elements are non-empty objects checked recursively, lists non-empty, no nulls;
- primitive values go through pydantic's own validator for the field's exact type
  (``TypeAdapter``), and a value once accepted is remembered per type (bounded, see below).

``proven_valid`` answers True only when pydantic would accept the resource; False means "not
proven", and the caller then runs the full model validation, which decides and names the problem.
So verdicts and messages are exactly those of ``fhir.resources`` (tests/unit/test_fhir_fastcheck.py
checks this against the models on every golden resource and thousands of mutations of them).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fhir_core.types import FhirBase, FhirElementOrResourceBase
from pydantic import TypeAdapter, ValidationError

# Accepted primitive values remembered per type (codes, systems, units, displays, times repeat
# across resources). Bounded: at most this many per type, short values only, forgotten wholesale
# when full, so memory stays at a few MB and nothing lingers for long under varied traffic.
_MAX_REMEMBERED = 4096
_MAX_REMEMBERED_LENGTH = 200
_SCALARS = frozenset({str, bool, int, float})


class _Primitive:
    """One primitive type: pydantic's validator plus the values it already accepted."""

    def __init__(self, annotation: Any) -> None:
        self._adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        self.strings: set[str] = set()  # most values are strings: no key tuple for them
        # (type, value) for the rest: 1, 1.0 and True are equal but may get other verdicts
        self.others: set[tuple[type, Any]] = set()

    def known(self, value: Any) -> bool:
        kind = type(value)
        if kind is str:
            return value in self.strings
        return kind in _SCALARS and (kind, value) in self.others

    def accepts(self, value: Any) -> bool:
        kind = type(value)
        if kind not in _SCALARS:
            return False
        try:
            self._adapter.validate_python(value)
        except ValidationError:
            return False
        if len(self.strings) + len(self.others) >= _MAX_REMEMBERED:
            self.strings.clear()
            self.others.clear()
        if kind is not str:
            self.others.add((kind, value))
        elif len(value) <= _MAX_REMEMBERED_LENGTH:
            self.strings.add(value)
        return True


@dataclass
class _Element:
    many: bool
    primitive: _Primitive | None = None
    model: Any = None  # a FHIRAbstractModel subclass, checked with its own _Checker
    checker: _Checker | None = None  # the model's, looked up on first use (types recurse)


@dataclass
class _Checker:
    resource_type: str
    elements: dict[str, _Element] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    choices: tuple[tuple[frozenset[str], bool], ...] = ()


def proven_valid(model: Any, resource: Mapping[str, Any]) -> bool:
    """True only if ``model.model_validate(resource)`` would succeed (see the module doc)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != model.__resource_type__:
        return False
    return _object_ok(_checker(model), resource, root=True)


def compile_checker(model: Any) -> None:
    """Build the checkers of a model and of every element type it contains (start-up warm)."""
    seen: set[Any] = set()
    pending = [model]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        pending.extend(e.model for e in _checker(current).elements.values() if e.model)


def _object_ok(checker: _Checker, data: dict[str, Any], *, root: bool = False) -> bool:
    # The hot loop of request handling. A single value is checked as it is, not through a
    # one-item tuple (an allocation and a generic iteration per element, measured with
    # callgrind); _value_ok is a native call when compiled.
    elements = checker.elements
    for key, value in data.items():
        element = elements.get(key)
        if element is None:
            if root and key == "resourceType":
                continue  # checked by proven_valid
            return False
        if not element.many:
            if not _value_ok(element, value):
                return False
            continue
        if type(value) is not list or not value:
            return False
        items: list[Any] = value
        for item in items:
            if not _value_ok(element, item):
                return False
    required = checker.required
    if required and not required <= data.keys():  # most element types require nothing
        return False
    for names, required_choice in checker.choices:
        present = len(names.intersection(data))
        if present > 1 or (required_choice and present == 0):
            return False
    return True


def _value_ok(element: _Element, value: Any) -> bool:
    primitive = element.primitive
    if primitive is not None:
        if type(value) is str and value in primitive.strings:
            return True
        return primitive.known(value) or primitive.accepts(value)
    sub = element.checker
    if sub is None:
        sub = element.checker = _checker(element.model)
    return type(value) is dict and bool(value) and _object_ok(sub, value)


# ---------------------------------------------------------------- compiling


@cache
def _checker(model: Any) -> _Checker:
    checker = _Checker(resource_type=model.__resource_type__)
    aliases: dict[str, str] = {}
    required: set[str] = set()
    for name, info in model.model_fields.items():
        alias = info.alias or name
        aliases[name] = alias
        if alias.startswith("_") or alias == "fhir_comments" or info.metadata:
            continue  # never proven here: pydantic decides when such a key is present
        element = _element(info.annotation)
        if element is None:
            continue
        checker.elements[alias] = element
        if info.is_required():
            required.add(alias)
    for name, _extension in model.get_required_fields(None) or ():
        required.add(aliases[name])
    checker.required = frozenset(required)
    choices = []
    for names in (model.get_one_of_many_fields(None) or {}).values():
        extra = model.model_fields[names[0]].json_schema_extra or {}
        choices.append(
            (frozenset(aliases[n] for n in names), extra.get("one_of_many_required") is True)
        )
    checker.choices = tuple(choices)
    if not required <= checker.elements.keys():
        checker.required = frozenset({"\0unprovable"})  # a required element we cannot check
    return checker


def _element(annotation: Any) -> _Element | None:
    inner = _without_none(annotation)
    if inner is None:
        return None
    many = typing.get_origin(inner) in (list, typing.List)  # noqa: UP006 - both spellings occur
    if many:
        # primitive lists may hold nulls (placeholders beside "_x"); nulls are never proven
        inner = _without_none(typing.get_args(inner)[0])
        if inner is None:
            return None
    if isinstance(inner, type) and issubclass(inner, FhirBase):
        if issubclass(inner, FhirElementOrResourceBase):
            return None  # any resource type (contained, Bundle.entry.resource): pydantic decides
        return _Element(many=many, model=inner.get_model_klass())
    if typing.get_origin(inner) in (typing.Union, types.UnionType, list):
        return None
    return _Element(many=many, primitive=_primitive(inner))


def _without_none(annotation: Any) -> Any:
    """``X | None`` -> X; a union of several non-None types -> None (not compiled)."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else None


@cache
def _primitive(annotation: Any) -> _Primitive:
    return _Primitive(annotation)


# ---------------------------------------------------------------- element rules for readers


@dataclass(frozen=True)
class ElementRule:
    """How one element of a model is read (cds_service/fhir/reading.py): an array or not, and
    either a complex type (``model``) or a primitive checked by pydantic's validator."""

    many: bool
    model: Any = None
    primitive: _Primitive | None = None

    def accepts(self, value: Any) -> bool:
        primitive = self.primitive
        return primitive is not None and (primitive.known(value) or primitive.accepts(value))


@cache
def element_rules(model: Any) -> Mapping[str, ElementRule]:
    """The elements of a model this module can check, by JSON name (``_x`` extensions,
    ``fhir_comments`` and resource-typed elements are not among them)."""
    return {
        alias: ElementRule(element.many, element.model, element.primitive)
        for alias, element in _checker(model).elements.items()
    }
