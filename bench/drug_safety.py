"""Prints the time of one order-sign call that triggers the drug-safety rules.

    .venv/bin/python -m bench.drug_safety [--mmf] [--calls N]

Chart: 480 ALT results and 20 thiopurine metabolite panels (500 Observations, the prefetch
_count), an active allopurinol course; draft: azathioprine (or, with --mmf, mycophenolate, for
comparison with the mmf rule alone). In-process Flask test client, no network, no JWTs.
"""

from __future__ import annotations

import argparse
import statistics
import time

from cds_service import create_app
from tests import factories as f
from tests.conftest import deterministic_uuids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mmf", action="store_true", help="draft mycophenolate instead")
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    app = create_app(
        {
            "auth": False,
            "database_url": "sqlite://",
            "patient_hash_key": "bench",
            "clock": lambda: f.NOW,
            "uuid_factory": deterministic_uuids(),
        }
    )
    client = app.test_client()
    observations = tuple(f.alt(40 + i % 30, days_ago=i) for i in range(480)) + tuple(
        f.metabolite_panel(180 + i, 6000, days_ago=10 + i) for i in range(20)
    )
    allopurinol = f.allopurinol(status="active", mid="allo-course", start_days_ago=50)
    prefetch = f.full_prefetch(observations=observations, medication_requests=(allopurinol,))
    draft = f.mmf_draft() if args.mmf else f.azathioprine()
    body = f.hook_request("order-sign", drafts=(draft,), prefetch=prefetch)
    times = []
    for _ in range(args.calls):
        start = time.perf_counter()
        response = client.post("/cds-services/aih-order-sign", json=body)
        times.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise SystemExit(response.get_data(as_text=True))
    rules = [card["source"]["topic"]["code"] for card in response.get_json()["cards"]]
    print(f"cards: {rules}")
    print(
        f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms "
        f"over {len(times)} calls"
    )


if __name__ == "__main__":
    main()
