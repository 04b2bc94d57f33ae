"""Card text: what is fixed at load time, what is escaped at render time, and summary fitting.

A template in ``cards/`` has three kinds of placeholder:

- ``${param.NAME}`` (or ``${param.NAME|FORMAT}``, FORMATS below): the
  rule's configured parameter, written in at load time, so card text always states the threshold
  the rule used;
- ``${cite.KEY}``: the short citation of a source in ``cards/evidence.yaml`` ("Pape et al.,
  J Hepatol 2022"), written in at load time; an unknown key is a configuration error;
- ``${snippet_name}`` (shared text in ``cards/snippets/``) and ``${variable}`` (what the rule
  found, filled in per card). Values a rule found come from FHIR data and are escaped here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

_STATIC = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<kind>param|cite)\.(?P<name>[A-Za-z0-9_-]+)(?:\|(?P<format>[a-z]+))?\}"
    r"|\{(?P<variable>[_a-z][_a-z0-9]*)\})",
    re.I,
)
# ${param.NAME|FORMAT}: percent (a fraction x 100), weeks and months (a number of days, rounded
# to whole weeks or months: 90 days -> 3 months)
FORMATS = {"percent": Decimal(100), "weeks": 1 / Decimal(7), "months": 1 / Decimal("30.4375")}


class TemplateProblem(ValueError):
    """A placeholder names no parameter, source or format."""


def format_number(value: Any, fmt: str | None = None) -> str:
    number = Decimal(str(value))
    if fmt == "percent":
        number *= FORMATS[fmt]
    elif fmt is not None:
        number = (number * FORMATS[fmt]).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{number.normalize():f}"


def expand(
    text: str,
    *,
    snippets: Mapping[str, str] = {},
    params: Mapping[str, Any] = {},
    cite: Callable[[str], str] | None = None,
) -> str:
    """Write snippets, then parameters and citations into ``text``; ``${variable}`` and ``$$``
    stay for render time. Raises TemplateProblem for an unknown parameter, source or format."""

    def snippet(match: re.Match[str]) -> str:
        name = match.group("variable")
        return snippets[name] if name in snippets else match.group(0)

    def static(match: re.Match[str]) -> str:
        kind, name, fmt = match.group("kind"), match.group("name"), match.group("format")
        if kind is None:
            return match.group(0)
        if fmt is not None and (kind != "param" or fmt not in FORMATS):
            raise TemplateProblem(f"unknown format {fmt!r} in ${{{kind}.{name}|{fmt}}}")
        if kind.lower() == "cite":
            if cite is None:
                raise TemplateProblem("citations are not available here")
            return cite(name)
        if name not in params or not _is_number(params[name]):
            numeric = sorted(k for k, v in params.items() if _is_number(v))
            raise TemplateProblem(f"no numeric parameter {name!r}; numeric: {numeric}")
        return format_number(params[name], fmt)

    return _STATIC.sub(static, _STATIC.sub(snippet, text))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


_NUMBER = re.compile(r"(?<![\w.$/{-])(\d+(?:\.\d+)?)(?![\w.]?\d|-?[A-Za-z])")
_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
_LIST_MARKER = re.compile(r"(?m)^[ \t]*\d+\.(?=[ \t])")  # "1. " numbers a list, not a value


def literal_parameter_numbers(text: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(number, parameter) for each literal number in ``text`` equal to a numeric parameter's
    value (or, for a fraction, its percentage): text that would not follow a configuration
    change. Placeholders are ignored."""
    values: dict[Decimal, list[str]] = {}
    for name, value in _numbers(params, ""):
        number = Decimal(str(value))
        values.setdefault(number.normalize(), []).append(name)
        if 0 < number < 1:
            values.setdefault((number * 100).normalize(), []).append(f"{name}|percent")
    found = []
    for match in _NUMBER.finditer(_LIST_MARKER.sub(" ", _PLACEHOLDER.sub(" ", text))):
        for name in values.get(Decimal(match.group(1)).normalize(), ()):
            found.append((match.group(1), name))
    return found


def _numbers(value: Any, path: str) -> list[tuple[str, Any]]:
    """(dotted name, number) for every number in a parameter value, nested ones included."""
    if _is_number(value):
        return [(path, value)]
    items: list[tuple[Any, Any]]
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    else:
        return []
    return [found for key, item in items for found in _numbers(item, f"{path}.{key}".lstrip("."))]


# Markdown and HTML: backslash-escape the characters that start emphasis, code, links, images
# and tables; write <, > and & as entities (safe in Markdown, in HTML and in raw-HTML Markdown).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]{}|~!#])")
_AUTOLINK = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*):(?=//)|\b(www)\.|@")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Most values (numbers, dates, drug names) hold none of what the escapes change: a value without
# any of these is returned as it is (tests/property checks both paths agree on any text).
_ESCAPE_NEEDED = re.compile(r"[\x00-\x08\x0b-\x1f\x7f&<>\\`*_\[\]{}|~!#@]|://|(?i:www)\.")
_PLAIN_NEEDED = re.compile(r"[\x00-\x1f\x7f<>`&@]|\]\(|://|(?i:www)\.")


def escape_value(value: str) -> str:
    """A value taken from FHIR data, safe to place in Markdown (and in HTML): no tag, link,
    image, emphasis or autolink can come out of it. Line breaks the rule itself put in a value
    (lists of results) are kept; each line's leading "- " list marker too."""
    return _escape_lines(value) if _ESCAPE_NEEDED.search(value) else value


def _escape_lines(value: str) -> str:
    lines = []
    for line in _CONTROL.sub(" ", value).split("\n"):
        bullet = "- " if line.startswith("- ") else ""
        body = line[len(bullet) :]
        body = body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        body = _MARKDOWN_SPECIAL.sub(r"\\\1", body)
        body = _AUTOLINK.sub(_break_autolink, body)
        lines.append(bullet + body)
    return "\n".join(lines)


# < and > become single angle quotation marks (never a tag), a backtick an apostrophe
_PLAIN = str.maketrans({"<": "\u2039", ">": "\u203a", "`": "'", "\n": " ", "\r": " "})


def plain_value(value: str) -> str:
    """A FHIR-sourced value for plain-text fields (summary, suggestion labels): readable as
    text, and still no tag, link or autolink if a client renders it as Markdown or HTML."""
    return _plain_text(value) if _PLAIN_NEEDED.search(value) else value


def _plain_text(value: str) -> str:
    text = _CONTROL.sub(" ", value).translate(_PLAIN)
    text = text.replace("](", "] (").replace("&", "&\u200b")
    return _AUTOLINK.sub(_break_plain_autolink, text)


def _autolink_breaker(colon: str, dot: str, at: str) -> Callable[[re.Match[str]], str]:
    """Replaces the ":" of "scheme://", the "." of "www." and "@" so no autolink can form."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return f"{match.group(1)}{colon}"
        if match.group(2):
            return f"{match.group(2)}{dot}"
        return at

    return replace


_break_autolink = _autolink_breaker("\\:", "\\.", "\\@")  # Markdown escapes
_break_plain_autolink = _autolink_breaker(":\u200b", "\u200b.", "@\u200b")  # zero-width space


def shorten_at_word(text: str, length: int) -> str:
    """``text`` cut to at most ``length`` characters at a word boundary, with an ellipsis."""
    if len(text) <= length:
        return text
    cut = text[: max(length - 1, 0)]
    if " " in cut.strip():
        cut = cut[: cut.rstrip().rfind(" ")]
    return cut.rstrip(" ,;:+-(") + "…"
