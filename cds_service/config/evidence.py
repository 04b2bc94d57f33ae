"""The evidence registry (``cards/evidence.yaml``): one entry per published source.

Cards, evidence pages and rule files cite a source only by its key; the registry gives the
authors, short title, journal, year, volume:pages, DOI/PMID, an optional https link and what the
source is (a trial, a case series, a digest of another entry, a label). A citation is always
formatted from these fields, so the same source reads the same on every card and page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from cds_service.common.validation_errors import first_error

KEY_PATTERN = r"^[a-z0-9][a-z0-9-]*$"


class SourceSchema(Schema):
    class Meta:
        unknown = RAISE

    authors = fields.String(required=True, validate=validate.Length(min=1))
    # how running text cites it; default "<first author> et al., <journal> <year>"
    short = fields.String(validate=validate.Length(min=1))
    title = fields.String(required=True, validate=validate.Length(min=1))
    journal = fields.String(required=True, validate=validate.Length(min=1))
    year = fields.Integer(validate=validate.Range(1900, 2100))
    volume_pages = fields.String(validate=validate.Length(min=1))
    doi = fields.String(validate=validate.Regexp(r"^10\.\d{4,9}/\S+$"))
    pmid = fields.String(validate=validate.Regexp(r"^\d{1,9}$"))
    url = fields.Url(schemes={"https"})
    # what the source is, e.g. "randomised controlled trial (70 patients)" or "blog digest"
    kind = fields.String(required=True, validate=validate.Length(min=1))
    # for a digest, editorial or news item: the registry key of the study it summarises
    digest_of = fields.String(validate=validate.Regexp(KEY_PATTERN))

    @validates_schema
    def _year_or_explained(self, data: Mapping[str, Any], **_: Any) -> None:
        if "year" not in data and "digest_of" not in data and "year" not in data["kind"]:
            raise ValidationError("give the year (or say in kind why it is unknown)", "year")


@dataclass(frozen=True)
class Source:
    key: str
    authors: str
    short: str
    title: str
    journal: str
    kind: str
    year: int | None = None
    volume_pages: str | None = None
    doi: str | None = None
    pmid: str | None = None
    url: str | None = None
    digest_of: str | None = None

    @property
    def href(self) -> str | None:
        if self.url:
            return self.url
        if self.doi:
            return f"https://doi.org/{self.doi}"
        if self.pmid:
            return f"https://pubmed.ncbi.nlm.nih.gov/{self.pmid}/"
        return None

    def citation(self, registry: Mapping[str, Source] | None = None) -> str:
        """The full reference, Vancouver-like, then what the source is."""
        issue = f" {self.year}" if self.year else ""
        if self.volume_pages:
            issue += f";{self.volume_pages}"
        parts = [f"{self.authors.rstrip('.')}. {self.title.rstrip('.')}. {self.journal}{issue}."]
        if self.doi:
            parts.append(f"doi:{self.doi}.")
        if self.pmid:
            parts.append(f"PMID {self.pmid}.")
        kind = self.kind
        if self.digest_of and registry and self.digest_of in registry:
            kind += f", summarising {registry[self.digest_of].short}"
        parts.append(f"({kind})")
        return " ".join(parts)


class RegistryError(ValueError):
    """The registry file is invalid; ``field`` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def registry_from_data(data: Any) -> dict[str, Source]:
    """Validate the parsed ``evidence.yaml`` (``sources: {key: entry}``) into Sources."""
    if not isinstance(data, Mapping) or set(data) != {"sources"}:
        raise RegistryError("-", "expected a mapping with one key, sources")
    entries = data["sources"]
    if not isinstance(entries, Mapping) or not entries:
        raise RegistryError("sources", "expected a non-empty mapping of key -> source")
    registry: dict[str, Source] = {}
    key_ok = validate.Regexp(KEY_PATTERN)
    for key, entry in entries.items():
        try:
            key_ok(str(key))
            loaded = SourceSchema().load(entry if isinstance(entry, Mapping) else {})
        except ValidationError as exc:
            where, message = first_error(
                exc.messages, brackets=False, fallback="-", path=f"sources.{key}"
            )
            raise RegistryError(where, message) from exc
        short = loaded.pop("short", None) or _short(loaded)
        registry[str(key)] = Source(key=str(key), short=short, **loaded)
    for source in registry.values():
        if source.digest_of is not None and source.digest_of not in registry:
            raise RegistryError(
                f"sources.{source.key}.digest_of", f"unknown source {source.digest_of!r}"
            )
    return registry


def _short(entry: Mapping[str, Any]) -> str:
    """ "Pape et al., J Hepatol 2022" from the authors, journal and year."""
    authors = entry["authors"]
    first = authors.split(",")[0].strip()
    surname = first.rsplit(" ", 1)[0] if " " in first else first
    name = f"{surname} et al." if "," in authors else surname
    year = f" {entry['year']}" if "year" in entry else ""
    return f"{name}, {entry['journal']}{year}"
