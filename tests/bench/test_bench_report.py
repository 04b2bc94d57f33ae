"""bench/report.py: figures, ratios and targets from raw wrk reports."""

from __future__ import annotations

from typing import Any

from bench.report import readme_table, summarise, table


def wrk_report(requests: int, p50_ms: float, *, status_errors: int = 0) -> dict[str, Any]:
    return {
        "requests": requests,
        "duration_us": 5_000_000,
        "bytes": 1,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": status_errors, "timeout": 0},
        "latency_us": {"p50": p50_ms * 1000, "p90": p50_ms * 1500, "p99": p50_ms * 2000}
        | {"max": p50_ms * 3000, "mean": p50_ms * 1000.0},
    }


def runs(service_errors: int = 0) -> list[dict[str, Any]]:
    made = []
    for connections in (1, 8):
        for name in ("large order-sign", "large patient-view"):
            for endpoint, requests, p50 in (
                ("service", 300, 20.0),
                ("echo", 1000, 5.0),
                ("echo-fast", 1500, 4.0),
            ):
                errors = service_errors if endpoint == "service" else 0
                made.append(
                    {"scenario": name, "endpoint": endpoint, "connections": connections}
                    | wrk_report(requests, p50, status_errors=errors)
                )
        made.append(
            {"scenario": "fetch patient-view", "endpoint": "service", "connections": connections}
            | wrk_report(100, 40.0)
        )
        for key, p50 in (("patient", 2.0), ("observations", 30.0)):
            made.append(
                {"scenario": f"fhir query {key}", "endpoint": "fhir", "connections": connections}
                | wrk_report(500, p50)
            )
    return made


def results(service_errors: int = 0) -> dict[str, Any]:
    meta = {
        "mode": "full",
        "duration_s_per_run": 5,
        "gunicorn_workers": 2,
        "gunicorn_config": "x",
        "fhir_server": "y",
    }
    return summarise(runs(service_errors), meta=meta, worker_rss_mb=[90.0, 95.0], cold_start_s=1.2)


def test_ratios_are_service_over_ceiling_on_the_same_body() -> None:
    summary = results()
    first = summary["scenarios"][0]
    assert first["service"]["rps"] == 60.0
    assert first["ratio_rps"] == 0.3
    assert first["ratio_rps_vs_service_parser"] == 0.2
    assert summary["targets"]["throughput_ratio_large"] == {
        "value": 0.3,
        "target": ">= 0.5",
        "met": False,
    }
    assert "throughput_ratio_small" not in summary["targets"]  # no small chart in these runs


def test_tails_at_eight_connections_are_judged_as_p99_over_p50() -> None:
    tail = results()["targets"]["p99_over_p50_at_8"]
    assert tail == {"value": 2.0, "target": "<= 3.0", "met": True}  # wrk_report: p99 = 2 x p50
    made = [
        dict(r) | {"latency_us": dict(r["latency_us"], p99=r["latency_us"]["p50"] * 4)}
        if r["scenario"] == "fetch patient-view" and r["connections"] == 8
        else r
        for r in runs()
    ]
    meta = {"mode": "full", "duration_s_per_run": 5, "gunicorn_workers": 2}
    summary = summarise(made, meta=meta, worker_rss_mb=[], cold_start_s=1.0)
    assert summary["targets"]["p99_over_p50_at_8"] == {
        "value": 4.0,
        "target": "<= 3.0",
        "met": False,
    }


def test_the_fetch_path_is_judged_against_the_slowest_query() -> None:
    summary = results()
    fetch = summary["fetch_path"][0]
    assert fetch["slowest_query"] == "observations"
    assert fetch["allowed_p50_ms"] == 55.0
    assert summary["targets"]["fetch_path_p50_ms_c1"]["met"] is True
    assert summary["targets"]["fetch_path_p50_ms_c1"]["value"] == 40.0


def test_service_errors_are_reported_and_shown() -> None:
    assert results()["errors"] == {}
    failed = results(service_errors=3)
    assert failed["errors"]["large order-sign service c1"] == 3
    assert "ERRORS" in table(failed)


def test_rounds_keep_the_median_and_every_error() -> None:
    made = runs()
    extra = [dict(r) | wrk_report(r["requests"] * 2, 1.0) for r in made]
    extra[0]["errors"] = dict(extra[0]["errors"], status=2)
    slow = [dict(r) | wrk_report(r["requests"] // 2, 50.0) for r in made]
    meta = {"mode": "full", "duration_s_per_run": 5, "gunicorn_workers": 2}
    meta |= {"gunicorn_config": "x", "fhir_server": "y", "rounds": 3}
    summary = summarise(made + extra + slow, meta=meta, worker_rss_mb=[], cold_start_s=1.0)
    first = summary["scenarios"][0]["service"]
    assert first["rps"] == 60.0
    assert first["rps_rounds"] == [60.0, 120.0, 30.0]
    assert first["errors"] == 2
    assert summary["errors"] == {"large order-sign service c1": 2}


def test_every_target_is_shown_with_its_value_and_a_yes_or_no() -> None:
    summary = results()
    shown = table(summary)
    for name, target in summary["targets"].items():
        assert f"| {name} | {target['value']} |" in shown
    readme = readme_table(summary)
    row = "| large chart, order-sign, with prefetch | 60.0 / 60.0 | 20.0 / 20.0 | 40.0 / 40.0 |"
    assert row in readme
    assert "| large chart, patient-view, read from the FHIR server | 20.0 / 20.0 |" in readme
    assert "throughput_ratio_large NO" in readme
    assert "cold_start_s yes" in readme
