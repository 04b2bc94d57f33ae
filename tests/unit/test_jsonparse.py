"""jsonparse.loads is json.loads: same values (types included), same errors and messages."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from cds_service.common import jsonparse
from tests.conftest import REPO

EDGE_CASES = [
    b'{"a":1,"a":2}',
    b'\xef\xbb\xbf{"a":1}',
    b'"\\ud800"',
    b'"\\uDFFF\\uD800"',
    b'"\xed\xa0\x80"',
    b"123456789012345678901234567890",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775809",
    b'{"valueInteger": 99999999999999999999}',
    b"1E400",
    b"[1.7976931348623157e309]",
    b"NaN",
    b"-Infinity",
    b"-0",
    b"-0.0",
    b"0.1",
    b"1e-400",
    b"2.5e-324",
    b'"a\x01b"',
    b'"\t"',
    b'"\xff"',
    b"\x00",
    b"",
    b" ",
    b"[1,]",
    b'{"a":1,}',
    b"{'a': 1}",
    b'{"a":1} x',
    '{"a":"é"}'.encode("utf-16"),
    '{"a":"é"}'.encode("utf-32"),
    b'"\\u00e9\\/\\u0000"',
    b"[" * 5000 + b"]" * 5000,
]


def outcome(parse: Any, raw: bytes) -> tuple[str, str]:
    try:
        return "value", repr(parse(raw))
    except RecursionError:
        return "error", "RecursionError"
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return "error", f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("raw", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_edge_cases_parse_exactly_as_json_loads(raw: bytes) -> None:
    assert outcome(jsonparse.loads, raw) == outcome(json.loads, raw)


def _bodies() -> list[bytes]:
    paths = sorted((REPO / "fixtures" / "fhir").glob("*/request.json"))[:12]
    return [Path(p).read_bytes() for p in paths]


def test_mutated_hook_requests_parse_exactly_as_json_loads() -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible test data
    pieces = [b"NaN", b"1e999", b"\\ud800", b"12345678901234567890", b",", b"\xff", b'"', b"-0"]
    checked = 0
    for body in _bodies():
        for _ in range(150):
            mutant = bytearray(body)
            for _ in range(rng.randint(1, 2)):
                at = rng.randrange(len(mutant))
                if rng.random() < 0.5:
                    mutant[at : at + rng.randint(0, 3)] = rng.choice(pieces)
                else:
                    mutant[at : at + 1] = b""
            raw = bytes(mutant)
            assert outcome(jsonparse.loads, raw) == outcome(json.loads, raw)
            checked += 1
    assert checked >= 1000


def test_numbers_keep_their_type_and_value() -> None:
    rng = random.Random(3)  # noqa: S311 - reproducible test data
    for _ in range(20000):
        literal = rng.choice(
            [
                repr(rng.uniform(-1e6, 1e6)),
                f"{rng.randrange(1, 10)}.{rng.randrange(10**16)}e{rng.randrange(-330, 310)}",
                str(rng.randrange(-(10**18), 10**18)),
                f"0.{rng.randrange(10 ** rng.randrange(1, 30))}",
            ]
        ).encode()
        assert outcome(jsonparse.loads, literal) == outcome(json.loads, literal)
