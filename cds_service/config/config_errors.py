"""Configuration problems: every one of them, each with file, line and a readable field.

The loader does not stop at the first problem: each independent check runs inside
``Problems.collect()``, and ``Problems.raise_if_any`` raises one ``ConfigErrors`` listing them all.
``ConfigError.field`` stays the machine path (``rules.1``, list positions from 0, as marshmallow
gives them); what people read (``str``) counts list positions from 1 (``rules#2``), adds the line
of the file and the offending entry's own name (its display, label, code or id).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

# the entry's own name, in this order of preference
_ENTRY_NAMES = ("display", "label", "code", "id", "key", "valueset")


class ConfigError(ValueError):
    """A configuration file is invalid; ``file`` and ``field`` say where."""

    def __init__(self, file: Path | str, field: str, message: str) -> None:
        super().__init__(f"{file}: {field}: {message}")
        self.file = str(file)
        self.field = field
        self.message = message
        self.line: int | None = None
        self.readable_field = field
        self.entry = ""

    def locate(self) -> None:
        """Find the line, the 1-based field and the entry in the file (when it parses)."""
        self.line, self.readable_field, self.entry = _locate(Path(self.file), self.field)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        entry = f" ({self.entry})" if self.entry else ""
        return f"{where}: {self.readable_field}{entry}: {self.message}"


class ConfigErrors(ConfigError):
    """Several problems at once; ``file``, ``field`` and ``message`` are the first one's."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.file, first.field, first.message)
        self.errors = tuple(errors)

    def __str__(self) -> str:
        if len(self.errors) == 1:
            return str(self.errors[0])
        lines = [f"{len(self.errors)} problems:", *(f"  {e}" for e in self.errors)]
        return "\n".join(lines)


class Problems:
    """Collects ``ConfigError``s so that one run reports all of them."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Run one independent check; a ``ConfigError`` is recorded and the run goes on."""
        try:
            yield
        except ConfigErrors as exc:
            self.errors.extend(exc.errors)
        except ConfigError as exc:
            self.errors.append(exc)

    def add(self, file: Path | str, field: str, message: str) -> None:
        self.errors.append(ConfigError(file, field, message))

    def raise_if_any(self) -> None:
        if self.errors:
            for error in self.errors:
                error.locate()
            raise ConfigErrors(self.errors)


def did_you_mean(name: str, known: Collection[str]) -> str:
    """`` did you mean 'x'?`` for a near miss among ``known``, else ''. A name cut short
    (``azathioprin`` for ``azathioprine-mercaptopurine``) finds its completion; otherwise the
    closest spelling (difflib)."""
    completions = sorted((k for k in known if len(name) >= 4 and k.startswith(name)), key=len)
    if completions:
        return f"; did you mean {completions[0]!r}?"
    # names that share a prefix (value set URLs) are compared by what follows it
    shared = os.path.commonprefix([*known, name]) if len(known) > 1 else ""  # noqa: RUF071 - by character
    tails = {k[len(shared) :]: k for k in known}
    close = difflib.get_close_matches(name[len(shared) :], sorted(tails), n=1, cutoff=0.6)
    close = [tails[c] for c in close]
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(kind: str, name: str, known: Collection[str]) -> str:
    """``unknown value set 'x'; did you mean 'y'?`` (or the list of known names if short)."""
    hint = did_you_mean(name, known)
    if not hint and len(known) <= 12:
        hint = f"; known: {sorted(known)}"
    return f"unknown {kind} {name!r}{hint}"


def _locate(path: Path, field: str) -> tuple[int | None, str, str]:
    """(line, field with 1-based list positions, entry name) of a dotted field path."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))  # JSON files parse as YAML too
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None, field, ""
    if node is None or field in {"", "-"}:
        return None, field, ""
    line = node.start_mark.line + 1
    readable: list[str] = []
    entry = ""
    steps = field.split(".")
    for index, step in enumerate(steps):
        if isinstance(node, yaml.SequenceNode) and step.isdigit() and int(step) < len(node.value):
            node = node.value[int(step)]
            readable[-1:] = [f"{readable[-1] if readable else ''}#{int(step) + 1}"]
            entry = _entry_name(node) or entry
            line = node.start_mark.line + 1
            continue
        match = None
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == step), None)
        if match is None:
            readable += steps[index:]
            break
        readable.append(step)
        line = match[0].start_mark.line + 1
        node = match[1]
    return line, ".".join(readable), entry


def _entry_name(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return json.dumps(node.value, ensure_ascii=False)
    if isinstance(node, yaml.MappingNode):
        values = {k.value: v for k, v in node.value if isinstance(v, yaml.ScalarNode)}
        for name in _ENTRY_NAMES:
            if name in values:
                return f"{name} {json.dumps(values[name].value, ensure_ascii=False)}"
    return ""
