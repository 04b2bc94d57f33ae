"""Value sets that include other value sets (``ValueSet.compose.include.valueSet``).

A class value set (``aih-first-line``) lists the value sets it contains by canonical URL instead
of copying their codes, so a code added once to ``mycophenolate.json`` counts in every class that
includes it. Includes are resolved once, at load; an unknown URL or a cycle is a configuration
error naming the file and the reference.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from cds_service.config.config_errors import Problems, unknown
from cds_service.patient.terminology import ValueSet


@dataclass(frozen=True)
class ValueSetFile:
    path: Path
    own: ValueSet  # the file's own entries (expansion.contains)
    # (field path, canonical URL) of every compose.include[].valueSet[] reference
    includes: tuple[tuple[str, str], ...] = ()


def include_references(compose: Mapping[str, object] | None) -> tuple[tuple[str, str], ...]:
    """The (field, url) pairs of a validated ``compose``; field positions count from 0."""
    if not compose:
        return ()
    includes = compose.get("include")
    return tuple(
        (f"compose.include.{i}.valueSet.{j}", url)
        for i, include in enumerate(includes if isinstance(includes, list) else ())
        for j, url in enumerate(include.get("valueSet") or ())
    )


def compose_valuesets(
    files: Mapping[str, ValueSetFile], problems: Problems, broken_urls: Collection[str] = ()
) -> dict[str, ValueSet | None]:
    """Each value set with its includes resolved (transitively); None where one failed. A
    reference to one of ``broken_urls`` (a file whose problem is reported already) fails
    quietly."""
    by_url: dict[str, str] = {}
    for vs_id, file in files.items():
        url = file.own.url
        if not url:
            continue
        if url in by_url:
            problems.add(file.path, "url", f"{url!r} is also the url of {by_url[url]!r}")
        else:
            by_url[url] = vs_id
    done: dict[str, ValueSet | None] = {}

    def resolve(vs_id: str, chain: tuple[str, ...]) -> ValueSet | None:
        if vs_id in done:
            return done[vs_id]
        file = files[vs_id]
        members: list[ValueSet] = []
        ok = True
        for field, url in file.includes:
            target = by_url.get(url)
            if target is None and url in broken_urls:
                ok = False
            elif target is None:
                problems.add(file.path, field, unknown("value set url", url, by_url))
                ok = False
            elif target in chain:
                cycle = " -> ".join([*chain[chain.index(target) :], target])
                problems.add(file.path, field, f"{url!r} closes an include cycle: {cycle}")
                ok = False
            else:
                member = resolve(target, (*chain, target))
                ok = ok and member is not None
                if member is not None:
                    members.append(member)
        done[vs_id] = file.own.with_members(members) if ok else None
        return done[vs_id]

    for vs_id in files:
        resolve(vs_id, (vs_id,))
    return done
