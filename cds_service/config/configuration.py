"""Loads and validates ``cards/``: services, rules, value sets and lab/drug terminology.

Every problem is reported, all in one run, with the file, line and field named
(``ConfigErrors``, see ``config_errors``), and stops start-up; the same check runs in
``aih-cds rules validate`` without starting the service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from string import Template
from typing import Any

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from cds_service.common.validation_errors import all_errors
from cds_service.config.card_template import TemplateProblem, expand, literal_parameter_numbers
from cds_service.config.config_errors import (
    ConfigError,
    ConfigErrors,
    Problems,
    did_you_mean,
    unknown,
)
from cds_service.config.evidence import RegistryError, Source, registry_from_data
from cds_service.config.valueset_compose import (
    ValueSetFile,
    compose_valuesets,
    include_references,
)
from cds_service.patient.routes import RoutePolicy
from cds_service.patient.terminology import (
    Analyte,
    DrugClass,
    NameMatcher,
    Terminology,
    ValueSet,
    valueset_from_fhir,
)
from cds_service.patient.units import normalised_factors
from cds_service.rules.base import DataKind, RuleSpec

HOOK_CONTEXT_TOKENS = {
    "patient-view": {"userId", "patientId", "encounterId"},
    "order-select": {"userId", "patientId", "encounterId"},
    "order-sign": {"userId", "patientId", "encounterId"},
}
USER_TOKENS = {
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
}
# what rules read, plus the Medications they reference and the other records of exposure
PREFETCH_TYPES = {kind.value for kind in DataKind} | {
    "Medication",
    "MedicationAdministration",
    "MedicationStatement",
}
INDICATORS = ("info", "warning", "critical")
# silent: cards are rendered, logged and counted but not returned (a new rule's trial run).
RULE_MODES = ("active", "silent")
_TOKEN = re.compile(r"\{\{(.*?)\}\}")


# ---------------------------------------------------------------- schemas


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class CodingSchema(_Strict):
    system = fields.String(required=True, validate=validate.Length(min=1))
    code = fields.String(required=True, validate=validate.Length(min=1))
    display = fields.String(required=True, validate=validate.Length(min=1))


class ServiceSchema(_Strict):
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._-]+$"))
    hook = fields.String(required=True, validate=validate.OneOf(sorted(HOOK_CONTEXT_TOKENS)))
    title = fields.String(required=True)
    description = fields.String(required=True, validate=validate.Length(min=1))
    usageRequirements = fields.String()  # noqa: N815 - spec field name
    prefetch = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    rules = fields.List(fields.String(), required=True)

    @validates_schema
    def _check_prefetch(self, data: Mapping[str, Any], **_: Any) -> None:
        allowed = HOOK_CONTEXT_TOKENS.get(data.get("hook", ""), set())
        for key, template in data.get("prefetch", {}).items():
            for raw_token in _TOKEN.findall(template):
                token = raw_token.strip()
                ok = token in USER_TOKENS or (
                    token.startswith("context.") and token.removeprefix("context.") in allowed
                )
                if not ok:
                    raise ValidationError(
                        f"token {{{{{token}}}}} is not a CDS Hooks 2.0 prefetch token here",
                        f"prefetch.{key}",
                    )
            if prefetch_resource_type(template) not in PREFETCH_TYPES:
                raise ValidationError(
                    f"resource type must be one of {sorted(PREFETCH_TYPES)}", f"prefetch.{key}"
                )


class SourceSchema(_Strict):
    label = fields.String(required=True, validate=validate.Length(min=1))
    url = fields.Url()
    icon = fields.Url()


LINK_TARGETS = ("lab-trend",)  # pages of this service a card may link to, per patient


class LinkSchema(_Strict):
    label = fields.String(required=True, validate=validate.Length(min=1))
    url = fields.Url()
    # a page of this service for the card's patient (e.g. the demo lab-trend view); the link is
    # shown only when that page exists for the patient, so no card links to a missing page
    target = fields.String(validate=validate.OneOf(LINK_TARGETS))
    type = fields.String(load_default="absolute", validate=validate.OneOf(["absolute", "smart"]))
    appContext = fields.String()  # noqa: N815 - spec field name

    @validates_schema
    def _app_context_only_smart(self, data: Mapping[str, Any], **_: Any) -> None:
        if "appContext" in data and data.get("type") != "smart":
            raise ValidationError("appContext is only allowed on smart links", "appContext")
        if ("url" in data) == ("target" in data):
            raise ValidationError("give exactly one of url and target", "url")


class SuggestionSchema(_Strict):
    label = fields.String(required=True, validate=validate.Length(min=1))
    recommended = fields.Boolean(load_default=False)
    action = fields.String(required=True, validate=validate.OneOf(["remove-draft", "create"]))
    description = fields.String(required=True, validate=validate.Length(min=1))
    resource = fields.Dict()

    @validates_schema
    def _resource_for_create(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("action") == "create":
            resource = data.get("resource")
            if not resource or not isinstance(resource.get("resourceType"), str):
                raise ValidationError(
                    "a create suggestion needs a resource with resourceType", "resource"
                )
        elif "resource" in data:
            raise ValidationError("only create suggestions carry a resource", "resource")


class OutcomeSchema(_Strict):
    enabled = fields.Boolean(load_default=True)
    indicator = fields.String(required=True, validate=validate.OneOf(INDICATORS))
    summary = fields.String(required=True, validate=validate.Length(min=1))
    detail = fields.String(required=True, validate=validate.Length(min=1))
    suggestions = fields.List(fields.String(), load_default=list)
    selection_behavior = fields.String(
        load_default="at-most-one", validate=validate.OneOf(["at-most-one", "any"])
    )
    links = fields.List(fields.String(), load_default=list)
    # codes of the rule's override_reasons that fit this outcome (default: all of them)
    override_reasons = fields.List(fields.String(), load_default=None, allow_none=True)


class EvidenceSchema(_Strict):
    key = fields.String(required=True)  # a source in evidence.yaml
    # what this source supports for this rule, shown on the rule's evidence page
    supports = fields.String(required=True, validate=validate.Length(min=1))


class RuleFileSchema(_Strict):
    id = fields.String(required=True)
    enabled = fields.Boolean(load_default=True)
    mode = fields.String(load_default="active", validate=validate.OneOf(RULE_MODES))
    title = fields.String(required=True)
    description = fields.String(load_default="")
    source = fields.Nested(SourceSchema, required=True)
    parameters = fields.Dict(load_default=dict)
    outcomes = fields.Dict(keys=fields.String(), values=fields.Nested(OutcomeSchema), required=True)
    suggestions = fields.Dict(
        keys=fields.String(), values=fields.Nested(SuggestionSchema), load_default=dict
    )
    links = fields.Dict(keys=fields.String(), values=fields.Nested(LinkSchema), load_default=dict)
    override_reasons = fields.List(fields.Nested(CodingSchema), load_default=list)
    evidence = fields.List(fields.Nested(EvidenceSchema), load_default=list)
    # Markdown for GET /evidence/<rule-id>: how the rule decides, background, options; no
    # patient data (only ${param.*}, ${cite.*} and snippets)
    evidence_page = fields.String(load_default="")
    # wording the rule chooses by value: phrases.<variable>.<value> is the text ${variable}
    # shows when the rule sets it to <value> (an unset variable or another value shows nothing)
    # numbers in card text that equal a parameter's value by coincidence (no warning for them)
    unrelated_numbers = fields.List(fields.Decimal(), load_default=list)
    phrases = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.String()),
        load_default=dict,
    )
    # rules whose card is dropped when this rule issues one (one card per clinical question)
    supersedes = fields.List(fields.String(), load_default=list)


class DrugClassSchema(_Strict):
    valueset = fields.String(required=True)
    ingredient_names = fields.List(
        fields.String(validate=validate.Length(min=3)), load_default=list
    )


class AnalyteSchema(_Strict):
    valueset = fields.String(required=True)
    unit = fields.String(required=True)
    units = fields.Dict(keys=fields.String(), values=fields.Decimal(), required=True)
    default_uln = fields.Decimal()
    default_uln_by_sex = fields.Dict(
        keys=fields.String(validate=validate.OneOf(["female", "male"])), values=fields.Decimal()
    )

    @validates_schema
    def _canonical_unit_listed(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("units", {}).get(data.get("unit")) != 1:
            raise ValidationError(
                "the canonical unit must be listed in units with factor 1", "unit"
            )
        for unit, factor in data.get("units", {}).items():
            if factor <= 0:
                raise ValidationError(f"factor for {unit!r} must be > 0", "units")
        try:
            normalised_factors(data.get("units", {}))
        except ValueError as exc:
            raise ValidationError(str(exc), "units") from exc


class RoutesSchema(_Strict):
    classes = fields.List(fields.String(), load_default=list)
    systemic_codes = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    non_systemic_codes = fields.List(
        fields.String(validate=validate.Length(min=1)), load_default=list
    )
    systemic_terms = fields.List(fields.String(validate=validate.Length(min=3)), load_default=list)
    non_systemic_terms = fields.List(
        fields.String(validate=validate.Length(min=3)), load_default=list
    )


class ExposureCoursesSchema(_Strict):
    default_gap_days = fields.Integer(required=True, validate=validate.Range(min=1, max=3650))
    gap_days = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(validate=validate.Range(min=1, max=3650)),
        load_default=dict,
    )


class TerminologySchema(_Strict):
    name_fallback = fields.Boolean(load_default=True)
    exposure_courses = fields.Nested(
        ExposureCoursesSchema, load_default=lambda: {"default_gap_days": 30, "gap_days": {}}
    )
    # ingredient -> brand and biosimilar names; a drug class listing the ingredient among its
    # ingredient_names also matches these names
    brand_names = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String(validate=validate.Length(min=3))),
        load_default=dict,
    )
    routes = fields.Nested(RoutesSchema, load_default=None)
    drug_classes = fields.Dict(
        keys=fields.String(), values=fields.Nested(DrugClassSchema), required=True
    )
    analytes = fields.Dict(keys=fields.String(), values=fields.Nested(AnalyteSchema), required=True)


class ContainsSchema(Schema):
    class Meta:
        unknown = RAISE

    system = fields.String(required=True, validate=validate.Length(min=1))
    code = fields.String(required=True, validate=validate.Length(min=1))
    display = fields.String()
    extension = fields.List(fields.Dict())


class ExpansionSchema(Schema):
    class Meta:
        unknown = RAISE

    timestamp = fields.String()
    contains = fields.List(fields.Nested(ContainsSchema), required=True)


class IncludeSchema(_Strict):
    # canonical URLs (``url``) of other value sets in cards/valuesets/
    valueSet = fields.List(  # noqa: N815 - FHIR element name
        fields.String(validate=validate.Length(min=1)),
        required=True,
        validate=validate.Length(min=1),
    )


class ComposeSchema(_Strict):
    include = fields.List(
        fields.Nested(IncludeSchema), required=True, validate=validate.Length(min=1)
    )


class ValueSetSchema(Schema):
    class Meta:
        unknown = RAISE

    resourceType = fields.String(required=True, validate=validate.Equal("ValueSet"))  # noqa: N815
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9\-.]{1,64}$"))
    url = fields.String()
    name = fields.String()
    title = fields.String()
    status = fields.String()
    description = fields.String()
    # other value sets this one contains; their codes join expansion.contains at load
    compose = fields.Nested(ComposeSchema)
    expansion = fields.Nested(ExpansionSchema, required=True)


# ---------------------------------------------------------------- loaded model


@dataclass(frozen=True)
class RuleConfig:
    id: str
    enabled: bool
    title: str
    source: Mapping[str, Any]
    params: Mapping[str, Any]
    outcomes: Mapping[str, Mapping[str, Any]]
    suggestions: Mapping[str, Mapping[str, Any]]
    links: Mapping[str, Mapping[str, Any]]
    override_reasons: tuple[Mapping[str, str], ...]
    evidence: tuple[Mapping[str, str], ...]
    spec: RuleSpec
    file: str
    supersedes: tuple[str, ...] = ()
    snippets: Mapping[str, str] = field(default_factory=dict)
    mode: str = "active"
    evidence_page: str = ""
    description: str = ""
    phrases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def terminology_read(self) -> set[str]:
        """Value sets, drug classes and analytes the rule names in its parameters or reads by
        name (``RuleSpec.terminology``): the only terminology whose Observations it may read."""
        named = {str(n) for n in self.spec.terminology}
        for _name, _kind, items in terminology_parameters(self.params):
            named.update(items)
        return named


@dataclass(frozen=True)
class ServiceConfig:
    id: str
    hook: str
    title: str
    description: str
    usage_requirements: str | None
    prefetch: Mapping[str, str]
    rules: tuple[str, ...]
    file: str

    def discovery(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"hook": self.hook, "id": self.id, "description": self.description}
        if self.title:
            entry["title"] = self.title
        if self.prefetch:
            entry["prefetch"] = dict(self.prefetch)
        if self.usage_requirements:
            entry["usageRequirements"] = self.usage_requirements
        return entry


@dataclass(frozen=True)
class Configuration:
    services: Mapping[str, ServiceConfig]
    rules: Mapping[str, RuleConfig]
    terminology: Terminology
    analytes: Mapping[str, Analyte]
    cards_dir: Path
    sources: Mapping[str, Source] = field(default_factory=dict)
    # problems that do not stop start-up (e.g. a literal number equal to a parameter's value)
    warnings: tuple[str, ...] = ()


def prefetch_resource_type(template: str) -> str:
    return re.split(r"[/?]", template.strip(), maxsplit=1)[0]


# ---------------------------------------------------------------- loading


def load_configuration(cards_dir: Path, registry: Mapping[str, RuleSpec]) -> Configuration:
    cards_dir = Path(cards_dir)
    if not cards_dir.is_dir():
        raise ConfigError(cards_dir, "-", "configuration directory does not exist")
    problems = Problems()
    valuesets = _load_valuesets(cards_dir / "valuesets", problems)
    loaded_terminology = None
    with problems.collect():
        loaded_terminology = _load_terminology(cards_dir / "terminology.yaml", valuesets, problems)
    snippets: dict[str, str] = {}
    with problems.collect():
        snippets = _load_snippets(cards_dir / "snippets")
    sources: dict[str, Source] | None = None
    with problems.collect():
        sources = _load_sources(cards_dir / EVIDENCE_FILE)
    warnings: list[str] = []
    context = _RuleContext(registry, snippets, sources, warnings, problems)
    rule_paths = sorted((cards_dir / "rules").glob("*.yaml"))
    # a rule whose file has a problem is reported there, not again where it is named
    rule_files = {path.stem for path in rule_paths}
    rules = _load_rules(rule_paths, rule_files, context)
    if loaded_terminology is not None:
        for rule in rules.values():
            _check_terminology_references(rule, *loaded_terminology, problems)
    services = _load_services(cards_dir / "services", rules, rule_files, problems)
    problems.raise_if_any()
    if loaded_terminology is None or sources is None:  # pragma: no cover - reported above
        raise ConfigError(cards_dir, "-", "the terminology or evidence file has a problem")
    return Configuration(services, rules, *loaded_terminology, cards_dir, sources, tuple(warnings))


EVIDENCE_FILE = "evidence.yaml"


def _load_sources(path: Path) -> dict[str, Source]:
    if not path.is_file():
        raise ConfigError(path, "-", "the evidence registry is missing")
    try:
        return registry_from_data(_read_yaml(path))
    except RegistryError as exc:
        raise ConfigError(path, exc.field, exc.message) from exc


_SNIPPET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _load_snippets(directory: Path) -> dict[str, str]:
    """Shared card text (``snippets/<name>.md``), usable as ``${name}`` in every rule's
    templates, so text several rules show (e.g. second-line options) is written once."""
    snippets: dict[str, str] = {}
    for path in sorted(directory.glob("*.md")) if directory.is_dir() else ():
        if not _SNIPPET_NAME.match(path.stem):
            raise ConfigError(path, "-", "snippet file names are lower_case_with_underscores.md")
        text = path.read_text(encoding="utf-8").strip()
        if not text:
            raise ConfigError(path, "-", "snippet is empty")
        snippets[path.stem] = text
    return snippets


# libyaml's parser reads the rule files ~7x faster than PyYAML's own (start-up, `rules
# validate`); a file it refuses is parsed again by PyYAML, whose messages quote the offending line.
_FAST_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=_FAST_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, "-", f"not valid YAML: {exc}") from exc


def _validate(schema: Schema, data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(path, "-", "expected a mapping at the top level")
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise schema_errors(schema, exc, path) from exc
    return loaded


def schema_errors(
    schema: Schema, exc: ValidationError, path: Path, prefix: str = ""
) -> ConfigErrors:
    """Every problem marshmallow found, an unknown field with the nearest known name."""
    errors = []
    for field_name, message in all_errors(exc.messages):
        text = message
        if message == "Unknown field.":
            parent, _, name = field_name.rpartition(".")
            text = "Unknown field" + did_you_mean(name, _field_names(schema, parent))
        where = ".".join(p for p in (prefix, field_name) if p) or "-"
        errors.append(ConfigError(path, where, text))
    return ConfigErrors(errors)


def _field_names(schema: Schema, parent: str) -> list[str]:
    """The field names a (nested) schema allows at ``parent`` (a dotted error path)."""
    current: Any = schema
    for step in [s for s in parent.split(".") if s]:
        current = _inner_schema(current)
        if isinstance(current, Schema):
            current = current.fields.get(step)  # list positions and Dict keys keep it
    current = _inner_schema(current)
    return sorted(current.fields) if isinstance(current, Schema) else []


def _inner_schema(current: Any) -> Any:
    """What a List / Dict / Nested field holds (its schema, when it has one)."""
    if isinstance(current, fields.List):
        current = current.inner
    if isinstance(current, fields.Dict):
        current = current.value_field
    if isinstance(current, fields.Nested):
        current = current.schema
    return current


def _placeholder(vs_id: str) -> ValueSet:
    """Stands in for a value set whose file has a problem (already reported), so that the
    files naming it do not report it as unknown as well."""
    return ValueSet(vs_id, "", vs_id, frozenset())


def _load_valuesets(directory: Path, problems: Problems) -> dict[str, ValueSet]:
    files: dict[str, ValueSetFile] = {}
    broken_urls = []
    paths = sorted(directory.glob("*.json"))
    for path in paths:
        with problems.collect():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ConfigError(path, "-", f"not valid JSON: {exc}") from exc
            loaded = _validate(ValueSetSchema(), data, path)
            if loaded["id"] != path.stem:
                raise ConfigError(path, "id", f"must equal the file name {path.stem!r}")
            files[loaded["id"]] = ValueSetFile(
                path, valueset_from_fhir(loaded), include_references(loaded.get("compose"))
            )
        if path.stem not in files:  # its problem is reported: includes of it fail quietly
            broken_urls.append(_raw_url(path))
    composed = compose_valuesets(files, problems, broken_urls)
    return {path.stem: composed.get(path.stem) or _placeholder(path.stem) for path in paths}


def _raw_url(path: Path) -> str:
    """The ``url`` of a value set file, read without validation ('' when unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    url = data.get("url") if isinstance(data, dict) else None
    return url if isinstance(url, str) else ""


def _load_terminology(
    path: Path, valuesets: Mapping[str, ValueSet], problems: Problems
) -> tuple[Terminology, dict[str, Analyte]]:
    data = _validate(TerminologySchema(), _read_yaml(path), path)

    def valueset(field_name: str, vs_id: str) -> ValueSet:
        if vs_id not in valuesets:
            problems.add(path, field_name, unknown("value set", vs_id, valuesets))
            return _placeholder(vs_id)
        return valuesets[vs_id]

    brands = {k.strip().lower(): v for k, v in data["brand_names"].items()}
    unused = set(brands) - {
        n.strip().lower() for c in data["drug_classes"].values() for n in c["ingredient_names"]
    }
    if unused:
        problems.add(path, "brand_names", f"no drug class names {sorted(unused)}")
    classes = {}
    for cid, c in data["drug_classes"].items():
        ingredient_of = {
            brand: ingredient
            for ingredient in c["ingredient_names"]
            for brand in brands.get(ingredient.strip().lower(), ())
        }
        classes[cid] = DrugClass(
            cid,
            valueset(f"drug_classes.{cid}.valueset", c["valueset"]),
            NameMatcher.of([*c["ingredient_names"], *ingredient_of], ingredient_of),
        )
    analytes = {
        aid: Analyte(
            id=aid,
            valueset=valueset(f"analytes.{aid}.valueset", a["valueset"]),
            unit=a["unit"],
            factors=a["units"],
            default_uln=a.get("default_uln"),
            default_uln_by_sex=a.get("default_uln_by_sex", {}),
        )
        for aid, a in data["analytes"].items()
    }
    courses = data["exposure_courses"]
    for cid in courses["gap_days"]:
        if cid not in classes:
            problems.add(
                path, f"exposure_courses.gap_days.{cid}", unknown("drug class", cid, classes)
            )
    terminology = Terminology(
        valuesets,
        classes,
        data["name_fallback"],
        default_course_gap_days=courses["default_gap_days"],
        course_gap_days_by_class=courses["gap_days"],
        routes=_route_policy(path, data["routes"], classes),
    )
    return terminology, analytes


def _route_policy(
    path: Path, routes: Mapping[str, Any] | None, classes: Mapping[str, DrugClass]
) -> RoutePolicy:
    if routes is None:
        return RoutePolicy()
    for index, cid in enumerate(routes["classes"]):
        if cid not in classes:
            raise ConfigError(path, f"routes.classes.{index}", unknown("drug class", cid, classes))
    return RoutePolicy(
        classes=frozenset(routes["classes"]),
        systemic_codes=frozenset(c.strip() for c in routes["systemic_codes"]),
        non_systemic_codes=frozenset(c.strip() for c in routes["non_systemic_codes"]),
        systemic_terms=tuple(routes["systemic_terms"]),
        non_systemic_terms=tuple(routes["non_systemic_terms"]),
    )


@dataclass(frozen=True)
class _RuleContext:
    """What every rule file is loaded against; ``warnings`` and ``problems`` collect."""

    registry: Mapping[str, RuleSpec]
    snippets: Mapping[str, str]
    sources: Mapping[str, Source] | None  # None: the evidence registry has a problem
    warnings: list[str]
    problems: Problems


def _load_rules(
    paths: Sequence[Path], rule_files: Collection[str], context: _RuleContext
) -> dict[str, RuleConfig]:
    """Every rule file that has no problem; the problems of the others are collected."""
    problems = context.problems
    rules: dict[str, RuleConfig] = {}
    for path in paths:
        before = len(problems.errors)
        with problems.collect():
            rule = _load_rule(path, context)
            if rule is not None and len(problems.errors) == before:
                rules[rule.id] = rule
    _check_supersedes(rules, rule_files, problems)
    return rules


def _load_rule(path: Path, context: _RuleContext) -> RuleConfig | None:
    """The rule of one file, or None when it has a problem (each one is in ``problems``)."""
    registry, snippets, sources = context.registry, context.snippets, context.sources
    warnings, problems = context.warnings, context.problems
    data = _validate(RuleFileSchema(), _read_yaml(path), path)
    rule_id = data["id"]
    if rule_id != path.stem:
        raise ConfigError(path, "id", f"must equal the file name {path.stem!r}")
    spec = registry.get(rule_id)
    if spec is None:
        raise ConfigError(
            path, "id", "no rule of this id is implemented: " + unknown("rule", rule_id, registry)
        )
    clashes = sorted(set(snippets) & {v for vs in spec.outcomes.values() for v in vs})
    if clashes or set(snippets) & spec.common_variables:
        problems.add(path, "-", f"snippet name(s) clash with rule variables: {clashes}")
    if sources is not None:
        with problems.collect():
            _check_evidence(path, data, sources)
    parameters = spec.parameters()
    before = len(problems.errors)
    try:
        params = parameters.load(data["parameters"])
    except ValidationError as exc:
        problems.errors += schema_errors(parameters, exc, path, "parameters").errors
        params = None
    if params is not None and sources is not None:  # else reported already
        warnings += _literal_number_warnings(path, data, params)
        _expand_texts(path, data, snippets, params, sources, problems=problems)
    # templates are checked once expanded; names (suggestions, links, reasons) in any case
    templates = len(problems.errors) == before and params is not None and sources is not None
    _check_outcomes(path, data, spec, frozenset(), problems, templates=templates)
    _check_suggestion_shapes(path, data, problems)
    if params is None:
        return None
    return RuleConfig(
        id=rule_id,
        enabled=data["enabled"],
        title=data["title"],
        source=data["source"],
        params=params,
        outcomes=data["outcomes"],
        suggestions=data["suggestions"],
        links=data["links"],
        override_reasons=tuple(data["override_reasons"]),
        evidence=tuple(data["evidence"]),
        spec=spec,
        file=str(path),
        supersedes=tuple(data["supersedes"]),
        snippets=snippets,
        mode=data["mode"],
        evidence_page=data["evidence_page"],
        description=data["description"],
        phrases=data["phrases"],
    )


def _outcome_texts(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, text) of every card template of a rule file."""
    texts = [
        (f"outcomes.{name}.{part}", outcome[part])
        for name, outcome in data["outcomes"].items()
        for part in ("summary", "detail")
    ]
    texts += [(f"suggestions.{sid}.label", s["label"]) for sid, s in data["suggestions"].items()]
    return texts


def _literal_number_warnings(
    path: Path, data: Mapping[str, Any], params: Mapping[str, Any]
) -> list[str]:
    """A number written into card text that equals a parameter's value probably states that
    parameter, and would go stale when someone changes it: say which placeholder to write."""
    unrelated = {Decimal(n).normalize() for n in data["unrelated_numbers"]}
    return [
        f"{path}: {where}: literal {number} equals the value of parameter {name}; render it"
        " from the parameter (${param.NAME} or a rule variable), or list it in unrelated_numbers"
        for where, text in _outcome_texts(data)
        for number, name in literal_parameter_numbers(text, params)
        if Decimal(number).normalize() not in unrelated
    ]


def _check_evidence(path: Path, data: Mapping[str, Any], sources: Mapping[str, Source]) -> None:
    keys = [e["key"] for e in data["evidence"]]
    for index, key in enumerate(keys):
        if key not in sources:
            raise ConfigError(path, f"evidence.{index}.key", unknown("source", key, sources))
        if keys.index(key) != index:
            raise ConfigError(path, f"evidence.{index}.key", f"{key!r} is listed twice")


def _expand_texts(
    path: Path,
    data: dict[str, Any],
    snippets: Mapping[str, str],
    params: Mapping[str, Any],
    sources: Mapping[str, Source],
    *,
    problems: Problems,
) -> None:
    """Write snippets, ${param.*} and ${cite.*} into every template (in place). A cited source
    must be in the rule's ``evidence`` list, so the rule's evidence page lists it. A template
    with a problem is recorded and left as it is."""
    listed = {e["key"] for e in data["evidence"]}
    cited: list[str] = []

    def cite(key: str) -> str:
        if key not in sources:
            raise TemplateProblem(f"unknown source {key!r} in ${{cite.{key}}}")
        if key not in listed:
            raise TemplateProblem(f"cites {key!r}, which is not in this rule's evidence list")
        cited.append(key)
        return sources[key].short

    def run(where: str, text: str) -> str:
        try:
            return expand(text, snippets=snippets, params=params, cite=cite)
        except TemplateProblem as exc:
            problems.add(path, where, str(exc))
            return text

    for name, choices in data["phrases"].items():
        for value, text in choices.items():
            choices[value] = run(f"phrases.{name}.{value}", text)
    for name, outcome in data["outcomes"].items():
        cited.clear()
        for part in ("summary", "detail"):
            outcome[part] = run(f"outcomes.{name}.{part}", outcome[part])
        # ${evidence} on this outcome's card: the sources its text cites (else all the rule's)
        outcome["cites"] = [e["key"] for e in data["evidence"] if e["key"] in cited]
    for sid, suggestion in data["suggestions"].items():
        suggestion["label"] = run(f"suggestions.{sid}.label", suggestion["label"])
    data["evidence_page"] = run("evidence_page", data["evidence_page"])
    for index, entry in enumerate(data["evidence"]):
        entry["supports"] = run(f"evidence.{index}.supports", entry["supports"])
    leftover = set(Template(data["evidence_page"]).get_identifiers())
    if leftover:
        problems.add(
            path, "evidence_page", f"no patient data on evidence pages: {sorted(leftover)}"
        )


# Every suggested resource of one type has the same shape, whichever rule suggests it: the
# service sets these elements, a rule file may not (docs/rule-authoring.md, "Suggestions").
SUGGESTION_SHAPES: dict[str, dict[str, str]] = {
    "ServiceRequest": {"status": "draft", "intent": "order"},
}
SUGGESTION_REQUIRED: dict[str, tuple[str, ...]] = {"ServiceRequest": ("code", "category")}


def _check_suggestion_shapes(path: Path, data: Mapping[str, Any], problems: Problems) -> None:
    for sid, suggestion in data["suggestions"].items():
        resource = suggestion.get("resource") or {}
        kind = str(resource.get("resourceType"))
        for element in SUGGESTION_SHAPES.get(kind, {}):
            if element in resource:
                problems.add(
                    path,
                    f"suggestions.{sid}.resource.{element}",
                    f"set by the service for every {kind} suggestion; remove it",
                )
        for element in SUGGESTION_REQUIRED.get(kind, ()):
            if element not in resource:
                problems.add(
                    path, f"suggestions.{sid}.resource.{element}", f"required for a {kind}"
                )


def _check_supersedes(
    rules: Mapping[str, RuleConfig], rule_files: Collection[str], problems: Problems
) -> None:
    """Every superseded rule exists, and precedence has no cycle (it must be an order).
    A rule whose own file has a problem (``rule_files`` but not ``rules``) is not named again."""
    for rule in rules.values():
        for index, other in enumerate(rule.supersedes):
            if other == rule.id or other not in rule_files:
                others = set(rule_files) - {rule.id}
                problems.add(
                    rule.file,
                    f"supersedes.{index}",
                    f"no other rule file for {other!r}{did_you_mean(other, others)}",
                )
    for rule in rules.values():
        seen: set[str] = set()
        pending = list(rule.supersedes)
        while pending:
            current = pending.pop()
            if current == rule.id:
                problems.add(rule.file, "supersedes", "precedence forms a cycle")
                break
            if current not in seen and current in rules:
                seen.add(current)
                pending.extend(rules[current].supersedes)


# Parameters that name terminology, by the suffix of their name: (suffixes, kind).
_TERMINOLOGY_PARAMETERS = (
    (("_valueset", "_valuesets"), "value set"),
    (("_analyte",), "analyte"),
    (("_class", "_classes"), "drug class"),
)


def terminology_parameters(params: Mapping[str, Any]) -> Iterator[tuple[str, str, list[str]]]:
    """(parameter, kind, names) of each parameter named ``*_valueset(s)`` / ``*_analyte`` /
    ``*_class(es)``: the value sets, analytes or drug classes a rule reads by configuration."""
    for name, value in params.items():
        for suffixes, kind in _TERMINOLOGY_PARAMETERS:
            if name.endswith(suffixes):
                yield name, kind, [str(v) for v in (value if isinstance(value, list) else [value])]
                break


def _check_terminology_references(
    rule: RuleConfig,
    terminology: Terminology,
    analytes: Mapping[str, Analyte],
    problems: Problems,
) -> None:
    """Every name a terminology parameter gives must be a loaded value set / analyte / drug
    class, so a typo stops start-up instead of failing a request."""
    known_by_kind: dict[str, Collection[str]] = {
        "value set": terminology.valuesets.keys(),
        "analyte": analytes.keys(),
        "drug class": terminology.drug_classes.keys(),
    }
    for name, kind, items in terminology_parameters(rule.params):
        known = known_by_kind[kind]
        for item in items:
            if item not in known:
                problems.add(rule.file, f"parameters.{name}", unknown(kind, item, known))


def _check_outcomes(
    path: Path,
    data: Mapping[str, Any],
    spec: RuleSpec,
    snippet_names: frozenset[str],
    problems: Problems,
    *,
    templates: bool = True,
) -> None:
    """The outcomes the rule implements, the names each one uses, and (``templates``) its
    card text's variables."""
    outcomes = data["outcomes"]
    variables = {v for o in spec.outcomes for v in spec.variables_for(o)}
    for phrase in data["phrases"]:
        if phrase not in variables:
            problems.add(
                path,
                f"phrases.{phrase}",
                "the rule sets no variable of this name" + did_you_mean(phrase, variables),
            )
    for name in spec.outcomes:
        if name not in outcomes:
            problems.add(path, f"outcomes.{name}", "missing (set enabled: false to silence it)")
    for name in outcomes:
        if name not in spec.outcomes:
            problems.add(
                path,
                f"outcomes.{name}",
                "the rule has no such outcome: " + unknown("outcome", name, spec.outcomes),
            )
        else:
            allowed = spec.variables_for(name) | snippet_names
            _check_outcome(path, data, name, allowed if templates else None, problems)


def _check_outcome(
    path: Path,
    data: Mapping[str, Any],
    name: str,
    allowed: frozenset[str] | None,
    problems: Problems,
) -> None:
    """One outcome's names; its templates' variables too unless ``allowed`` is None."""
    where = f"outcomes.{name}"
    outcome = data["outcomes"][name]
    checks: list[tuple[str, str]] = [
        (f"phrases.{phrase}.{value}", text)
        for phrase, choices in data["phrases"].items()
        if allowed is not None and phrase in allowed
        for value, text in choices.items()
    ]
    checks += [(f"{where}.{part}", outcome[part]) for part in ("summary", "detail")]
    for index, sid in enumerate(outcome["suggestions"]):
        if sid not in data["suggestions"]:
            problems.add(
                path,
                f"{where}.suggestions.{index}",
                unknown("suggestion", sid, data["suggestions"]),
            )
        else:
            checks.append((f"suggestions.{sid}.label", data["suggestions"][sid]["label"]))
    for field_name, text in checks:
        if allowed is not None:
            with problems.collect():
                _check_template(path, field_name, text, allowed)
    recommended = [
        s for s in outcome["suggestions"] if data["suggestions"].get(s, {}).get("recommended")
    ]
    if outcome["selection_behavior"] == "at-most-one" and len(recommended) > 1:
        problems.add(path, where, "at-most-one allows only one recommended suggestion (cds-resp-1)")
    for index, lid in enumerate(outcome["links"]):
        if lid not in data["links"]:
            problems.add(path, f"{where}.links.{index}", unknown("link", lid, data["links"]))
    if outcome["indicator"] in {"warning", "critical"} and not data["override_reasons"]:
        problems.add(
            path, "override_reasons", f"required because {where} is {outcome['indicator']}"
        )
    codes = [reason["code"] for reason in data["override_reasons"]]
    for index, code in enumerate(outcome["override_reasons"] or ()):
        if code not in codes:
            problems.add(
                path,
                f"{where}.override_reasons.{index}",
                unknown("override reason code", code, codes),
            )
    if outcome["override_reasons"] == []:
        problems.add(path, f"{where}.override_reasons", "leave it out or name one")


def _check_template(path: Path, where: str, text: str, allowed: frozenset[str]) -> None:
    template = Template(text)
    if not template.is_valid():
        raise ConfigError(
            path, where, "invalid template: use ${name} for variables and $$ for a dollar sign"
        )
    strangers = sorted(set(template.get_identifiers()) - allowed)
    if strangers:
        hints = "".join(did_you_mean(name, allowed) for name in strangers)
        raise ConfigError(
            path,
            where,
            f"unknown variable(s) {strangers}{hints}; available: {sorted(allowed)}",
        )


def _load_services(
    directory: Path,
    rules: Mapping[str, RuleConfig],
    rule_files: Collection[str],
    problems: Problems,
) -> dict[str, ServiceConfig]:
    services: dict[str, ServiceConfig] = {}
    for path in sorted(directory.glob("*.yaml")):
        with problems.collect():
            service = _load_service(path, rules, rule_files, problems)
            if service.id in services:
                raise ConfigError(path, "id", f"duplicate service id {service.id!r}")
            services[service.id] = service
    if not services and not problems.errors:
        raise ConfigError(directory, "-", "no service files (*.yaml) found")
    return services


def _load_service(
    path: Path, rules: Mapping[str, RuleConfig], rule_files: Collection[str], problems: Problems
) -> ServiceConfig:
    data = _validate(ServiceSchema(), _read_yaml(path), path)
    kinds = {prefetch_resource_type(t) for t in data["prefetch"].values()}
    for index, rule_id in enumerate(data["rules"]):
        rule = rules.get(rule_id)
        if rule is None:
            if rule_id not in rule_files:
                problems.add(
                    path,
                    f"rules.{index}",
                    f"no rule file for {rule_id!r}{did_you_mean(rule_id, rule_files)}",
                )
            continue
        if data["hook"] not in rule.spec.hooks:
            problems.add(path, f"rules.{index}", f"{rule_id} does not run on {data['hook']}")
        missing = {k.value for k in rule.spec.needs} - kinds
        if missing:
            problems.add(
                path, "prefetch", f"{rule_id} needs {sorted(missing)}: add a prefetch template"
            )
    return ServiceConfig(
        id=data["id"],
        hook=data["hook"],
        title=data["title"],
        description=data["description"],
        usage_requirements=data.get("usageRequirements"),
        prefetch=data["prefetch"],
        rules=tuple(data["rules"]),
        file=str(path),
    )
