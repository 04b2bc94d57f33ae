"""POST /bench/echo, the benchmark's ceiling: only with CDS_BENCH_ECHO, same body checks."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask


def test_echo_is_absent_by_default(client) -> None:
    assert client.post("/bench/echo", json={"a": 1}).status_code == 404


def test_echo_parses_the_body_and_answers_no_cards(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(bench_echo=True).test_client()
    answer = client.post("/bench/echo", json={"hook": "patient-view", "prefetch": {}})
    assert answer.status_code == 200
    assert answer.get_json() == {"cards": []}


def test_echo_rejects_what_a_hook_call_rejects(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(bench_echo=True).test_client()
    assert client.post("/bench/echo", data="{", content_type="application/json").status_code == 400
    assert client.post("/bench/echo", data="{}", content_type="text/plain").status_code == 415


def test_echo_parses_with_either_parser(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(bench_echo=True).test_client()
    for query in ("", "?parser=service"):
        answer = client.post(f"/bench/echo{query}", json={"prefetch": {"n": 12345678901234567890}})
        assert answer.get_json() == {"cards": []}
        assert (
            client.post(
                f"/bench/echo{query}", data="[", content_type="application/json"
            ).status_code
            == 400
        )
