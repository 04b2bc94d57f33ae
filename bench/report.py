"""Turn raw wrk reports into the figures of issue 7 (ratios, targets) and print them as a table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TARGETS = {
    "throughput_ratio_min": {"large": 0.5, "small": 0.6},  # service req/s over the echo's
    "p99_over_p50_max_at_8": 3.0,  # with the shipped configuration
    "fetch_factor": 1.5,
    "fetch_slack_ms": 10.0,
    "rss_mb_max": 150.0,
    "cold_start_s_max": 2.0,
}


def _figures(run: Mapping[str, Any]) -> dict[str, Any]:
    seconds = run["duration_us"] / 1e6
    latency = run["latency_us"]
    errors = run["errors"]
    return {
        "requests": run["requests"],
        "rps": round(run["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(latency["p50"] / 1000, 2),
        "p90_ms": round(latency["p90"] / 1000, 2),
        "p99_ms": round(latency["p99"] / 1000, 2),
        "max_ms": round(latency["max"] / 1000, 2),
        "errors": sum(errors.values()),
        "non_2xx": errors["status"],
    }


def _median(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median requests/s; errors of every round count."""
    ordered = sorted(rounds, key=lambda f: f["rps"])
    kept = dict(ordered[(len(ordered) - 1) // 2])
    kept["errors"] = sum(f["errors"] for f in rounds)
    kept["non_2xx"] = sum(f["non_2xx"] for f in rounds)
    kept["rps_rounds"] = [f["rps"] for f in rounds]
    return kept


def _ratio(service: Mapping[str, Any], ceiling: Mapping[str, Any]) -> float | None:
    return round(service["rps"] / ceiling["rps"], 3) if ceiling["rps"] else None


def summarise(
    runs: Sequence[Mapping[str, Any]],
    *,
    meta: Mapping[str, Any],
    worker_rss_mb: list[float],
    cold_start_s: float,
) -> dict[str, Any]:
    scenarios: list[dict[str, Any]] = []
    rounds: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for run in runs:
        key = (run["scenario"], run["endpoint"], run["connections"])
        rounds.setdefault(key, []).append(_figures(run))
    by_key = {key: _median(figures) for key, figures in rounds.items()}
    for (name, endpoint, connections), figures in by_key.items():
        if endpoint != "service" or name.startswith("fetch"):
            continue
        echo = by_key[(name, "echo", connections)]
        fast = by_key[(name, "echo-fast", connections)]
        scenarios.append(
            {
                "scenario": name,
                "connections": connections,
                "service": figures,
                "ceiling": echo,
                "ceiling_service_parser": fast,
                "ratio_rps": _ratio(figures, echo),
                "ratio_rps_vs_service_parser": _ratio(figures, fast),
            }
        )
    fetch = []
    for (name, _, connections), figures in by_key.items():
        if not name.startswith("fetch"):
            continue
        queries = {
            n.removeprefix("fhir query "): f
            for (n, e, c), f in by_key.items()
            if e == "fhir" and c == connections
        }
        slowest_key = max(queries, key=lambda k: queries[k]["p50_ms"])
        slowest = queries[slowest_key]
        fetch.append(
            {
                "connections": connections,
                "service": figures,
                "queries": queries,
                "slowest_query": slowest_key,
                "allowed_p50_ms": round(
                    TARGETS["fetch_factor"] * slowest["p50_ms"] + TARGETS["fetch_slack_ms"], 2
                ),
            }
        )
    errors = {
        f"{name} {endpoint} c{connections}": f["errors"]
        for (name, endpoint, connections), f in by_key.items()
        if f["errors"]
    }
    results: dict[str, Any] = {
        "meta": dict(meta),
        "scenarios": scenarios,
        "fetch_path": fetch,
        "worker_rss_mb": worker_rss_mb,
        "cold_start_s": cold_start_s,
        "errors": errors,
    }
    results["targets"] = _targets(results)
    return results


def _target(value: float, wanted: str, met: bool) -> dict[str, Any]:
    return {"value": value, "target": wanted, "met": met}


def _targets(results: Mapping[str, Any]) -> dict[str, Any]:
    """Each target with its measured value (the worst case where there are several) and yes/no."""
    targets: dict[str, Any] = {}
    for size, wanted in TARGETS["throughput_ratio_min"].items():
        ratios = [
            s["ratio_rps"]
            for s in results["scenarios"]
            if s["scenario"].startswith(f"{size} ") and s["ratio_rps"] is not None
        ]
        if ratios:
            worst = min(ratios)
            targets[f"throughput_ratio_{size}"] = _target(worst, f">= {wanted}", worst >= wanted)
    tails = [
        round(f["p99_ms"] / f["p50_ms"], 2)
        for f in [
            *(s["service"] for s in results["scenarios"] if s["connections"] == 8),
            *(f["service"] for f in results["fetch_path"] if f["connections"] == 8),
        ]
        if f["p50_ms"]
    ]
    if tails:
        worst_tail = max(tails)
        limit = TARGETS["p99_over_p50_max_at_8"]
        targets["p99_over_p50_at_8"] = _target(worst_tail, f"<= {limit}", worst_tail <= limit)
    for f in results["fetch_path"]:
        p50, allowed = f["service"]["p50_ms"], f["allowed_p50_ms"]
        targets[f"fetch_path_p50_ms_c{f['connections']}"] = _target(
            p50,
            f"<= 1.5 x slowest query p50 + 10 = {allowed}",
            p50 <= allowed,
        )
    if results["worker_rss_mb"]:
        rss = max(results["worker_rss_mb"])
        targets["rss_mb_per_worker"] = _target(
            rss, f"<= {TARGETS['rss_mb_max']}", rss <= TARGETS["rss_mb_max"]
        )
    cold = results["cold_start_s"]
    targets["cold_start_s"] = _target(
        cold, f"<= {TARGETS['cold_start_s_max']}", cold <= TARGETS["cold_start_s_max"]
    )
    return targets


def _fetch_seconds(meta: Mapping[str, Any]) -> str:
    seconds = meta.get("fetch_path_duration_s_per_run")
    return f", {seconds} s per run" if seconds else ""


def table(results: Mapping[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"AIH CDS benchmark ({meta['mode']}, {meta['duration_s_per_run']} s per run, "
        f"median of {meta.get('rounds', 1)} interleaved rounds, "
        f"{meta['gunicorn_workers']} workers, {meta['gunicorn_config']}"
        f"{_worker_class(meta)}, "
        f"FHIR: {meta['fhir_server']}; load average at the end: {_load(meta)})",
        "",
        "ceiling: POST /bench/echo, json.loads of the same body and a fixed empty answer; "
        "fast ceiling: the same with the service's own parser (orjson where exact)",
        "",
        "| scenario | conns | req/s | p50 ms | p90 ms | p99 ms | ceiling req/s | ceiling p50 ms "
        "| ratio | fast ceiling req/s | ratio to it |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in results["scenarios"]:
        svc, echo, fast = s["service"], s["ceiling"], s["ceiling_service_parser"]
        lines.append(
            f"| {s['scenario']} | {s['connections']} | {svc['rps']} | {svc['p50_ms']} | "
            f"{svc['p90_ms']} | {svc['p99_ms']} | {echo['rps']} | {echo['p50_ms']} | "
            f"{s['ratio_rps']} | {fast['rps']} | {s['ratio_rps_vs_service_parser']} |"
        )
    if results["fetch_path"]:
        lines += [
            "",
            f"| fetch path (patient-view, no prefetch{_fetch_seconds(meta)}) | conns | req/s | "
            "p50 ms | p99 ms | "
            "slowest query | its p50 ms | its p99 ms | allowed p50 ms |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for f in results["fetch_path"]:
            q = f["queries"][f["slowest_query"]]
            svc = f["service"]
            lines.append(
                f"| large patient | {f['connections']} | {svc['rps']} | {svc['p50_ms']} | "
                f"{svc['p99_ms']} | {f['slowest_query']} | {q['p50_ms']} | {q['p99_ms']} | "
                f"{f['allowed_p50_ms']} |"
            )
    lines += [
        "",
        f"RSS per worker (MB): {results['worker_rss_mb']}; "
        f"cold start (process start to first 200 on /readyz): {results['cold_start_s']} s",
        "",
        "| target | value | wanted | met |",
        "|---|---|---|---|",
    ]
    for name, t in results["targets"].items():
        lines.append(f"| {name} | {t['value']} | {t['target']} | {'yes' if t['met'] else 'NO'} |")
    if results["errors"]:
        lines += ["", f"ERRORS: {results['errors']}"]
    return "\n".join(lines)


def _load(meta: Mapping[str, Any]) -> str:
    """The 1-minute load average when the run ended: above ~1 other work shared the cores."""
    load = meta.get("machine", {}).get("load_average_at_end") or ["?"]
    return str(round(load[0], 2)) if isinstance(load[0], float) else str(load[0])


def _worker_class(meta: Mapping[str, Any]) -> str:
    """ " (sync, 1 thread(s) per worker)" when the run recorded them (older results did not)."""
    worker_class, threads = meta.get("gunicorn_worker_class"), meta.get("gunicorn_threads")
    if not worker_class:
        return ""
    return f" ({worker_class}, {threads} thread(s) per worker)" if threads else f" ({worker_class})"


def readme_table(results: Mapping[str, Any]) -> str:
    """The README's short table: one row per scenario (and the fetch path), figures at each
    connection count side by side ("1 / 8"), then the targets met or not."""
    rows: dict[str, list[Mapping[str, Any]]] = {}
    for s in results["scenarios"]:
        size, hook = s["scenario"].split(" ", 1)
        rows.setdefault(f"{size} chart, {hook}, with prefetch", []).append(
            s["service"] | {"ratio": s["ratio_rps"], "connections": s["connections"]}
        )
    for f in results["fetch_path"]:
        rows.setdefault("large chart, patient-view, read from the FHIR server", []).append(
            f["service"] | {"ratio": "-", "connections": f["connections"]}
        )
    conns = sorted({run["connections"] for runs in rows.values() for run in runs})
    shown = " / ".join(str(c) for c in conns)
    lines = [
        f"| request ({shown} connections) | req/s | p50 ms | p99 ms | ratio to the echo ceiling |",
        "|---|---|---|---|---|",
    ]
    for name, runs in rows.items():
        ordered = sorted(runs, key=lambda run: int(run["connections"]))
        cells = [" / ".join(str(r[key]) for r in ordered) for key in ("rps", "p50_ms", "p99_ms")]
        ratio = " / ".join(str(r["ratio"]) for r in ordered)
        lines.append(f"| {name} | {' | '.join(cells)} | {ratio} |")
    met = [f"{name} {'yes' if t['met'] else 'NO'}" for name, t in results["targets"].items()]
    when, load = results["meta"].get("when", ""), _load(results["meta"])
    lines += ["", f"Targets ({when}, load average {load} at the end): " + "; ".join(met) + "."]
    return "\n".join(lines)


def print_table(results: Mapping[str, Any]) -> None:
    print(table(results))
