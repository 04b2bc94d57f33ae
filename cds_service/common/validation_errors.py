"""The problems in a marshmallow error tree, as (field path, message): all, or the first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def first_error(messages: Any, *, brackets: bool, fallback: str, path: str = "") -> tuple[str, str]:
    """The first leaf. List positions read ``a[0]`` with ``brackets`` (request JSON paths), else
    ``a.0`` (configuration fields); ``fallback`` names the root."""
    return all_errors(messages, brackets=brackets, fallback=fallback, path=path)[0]


def all_errors(
    messages: Any, *, brackets: bool = False, fallback: str = "", path: str = ""
) -> list[tuple[str, str]]:
    """Every leaf of a marshmallow error tree as (field path, message), in tree order; paths as
    in ``first_error``."""
    if isinstance(messages, Mapping):
        found: list[tuple[str, str]] = []
        for key, value in messages.items():
            # "_schema" is a whole-object error; "value" is marshmallow's wrapper for Dict values
            if key == "_schema" or (key == "value" and path):
                step = ""
            elif brackets and isinstance(key, int):
                step = f"[{key}]"
            else:
                step = f".{key}" if path else str(key)
            found += all_errors(value, brackets=brackets, fallback=fallback, path=path + step)
        return found
    if isinstance(messages, list) and messages:
        if all(isinstance(m, str) for m in messages):
            return [(path or fallback, "; ".join(messages))]
        return [
            leaf
            for m in messages
            for leaf in all_errors(m, brackets=brackets, fallback=fallback, path=path)
        ]
    return [(path or fallback, str(messages))]
