"""Print how long strict parsing and the JSON limits take on a large realistic request: the walk
of every node (no body given) against the check from the body's bytes (what the service does).

Run from the repository root (it uses the test factories):
.venv/bin/python -m bench.json_limits [observations]
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from cds_service.web.json_limits import JsonLimits, check_limits, parse_json
from tests import factories as f


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4999
    observations = tuple(f.alt(30 + i % 50, days_ago=i % 300 + 1) for i in range(count))
    prefetch = f.full_prefetch(observations=observations)
    body = json.dumps(f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch)).encode()
    limits = JsonLimits(max_depth=64, max_bundle_entries=5000)
    parse: list[float] = []
    walk: list[float] = []
    scan: list[float] = []
    for _ in range(7):
        start = time.perf_counter()
        document = parse_json(body)
        parsed = time.perf_counter()
        check_limits(document, limits)
        walked = time.perf_counter()
        check_limits(document, limits, body)
        parse.append(parsed - start)
        walk.append(walked - parsed)
        scan.append(time.perf_counter() - walked)
    print(
        f"{count} Observations, {len(body) / 1e6:.2f} MB: "
        f"parse median {1000 * statistics.median(parse):.1f} ms, "
        f"limit walk of every node median {1000 * statistics.median(walk):.1f} ms, "
        f"from the bytes and the known Bundles {1000 * statistics.median(scan):.2f} ms"
    )


if __name__ == "__main__":
    main()
