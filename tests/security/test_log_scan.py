"""The whole-run log scan (tests/log_scan.py) recognises what it must and nothing else."""

from __future__ import annotations

from tests import factories as f
from tests.log_scan import known_secrets
from tests.security.support import SANDBOX_PRIVATE, SPEC_TOKEN, mint


def matches(line: str) -> set[str]:
    return {name for name, pattern in known_secrets().items() if pattern.search(line)}


def test_jwts_are_recognised_wherever_they_appear() -> None:
    token = mint(SANDBOX_PRIVATE, iss="https://ehr.example", aud="https://cds.example")
    assert matches(f"header was Bearer {token}") == {"JWT"}
    assert matches(f"spec token {SPEC_TOKEN}!") == {"JWT"}


def test_patient_ids_and_access_tokens_of_the_test_data_are_recognised() -> None:
    assert f"patient id {f.PATIENT_ID!r}" in matches(f"patient {f.PATIENT_ID} answered")
    assert matches("patient mmf-female-60 answered") == {"patient id 'mmf-female-60'"}
    assert any(name.startswith("access token") for name in matches("some-opaque-fhir-access-token"))


def test_ids_inside_other_words_and_hashes_are_not_leaks() -> None:
    assert matches(f"o{f.PATIENT_ID}0 and mmf-female-600 and hash 4913c6862409") == set()
