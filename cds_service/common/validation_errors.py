"""The first problem in a marshmallow error tree, as (field path, message)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def first_error(messages: Any, *, brackets: bool, fallback: str, path: str = "") -> tuple[str, str]:
    """Walk to the first leaf. List positions read ``a[0]`` with ``brackets`` (request JSON
    paths), else ``a.0`` (configuration fields); ``fallback`` names the root."""
    if isinstance(messages, Mapping):
        key, value = next(iter(messages.items()))
        # "_schema" is a whole-object error; "value" is marshmallow's wrapper for Dict values
        if key == "_schema" or (key == "value" and path):
            step = ""
        elif brackets and isinstance(key, int):
            step = f"[{key}]"
        else:
            step = f".{key}" if path else str(key)
        return first_error(value, brackets=brackets, fallback=fallback, path=path + step)
    if isinstance(messages, list) and messages:
        if all(isinstance(m, str) for m in messages):
            return path or fallback, "; ".join(messages)
        return first_error(messages[0], brackets=brackets, fallback=fallback, path=path)
    return path or fallback, str(messages)


def all_errors(messages: Any, *, path: str = "") -> list[tuple[str, str]]:
    """Every leaf of a marshmallow error tree as (field path, message), positions ``a.0``."""
    if isinstance(messages, Mapping):
        found: list[tuple[str, str]] = []
        for key, value in messages.items():
            # as in first_error: "_schema" is the object itself, "value" wraps a Dict's values
            if key == "_schema" or (key == "value" and path):
                step = path
            else:
                step = f"{path}.{key}" if path else str(key)
            found += all_errors(value, path=step)
        return found
    if isinstance(messages, list) and messages:
        if all(isinstance(m, str) for m in messages):
            return [(path, "; ".join(messages))]
        return [leaf for m in messages for leaf in all_errors(m, path=path)]
    return [(path, str(messages))]
