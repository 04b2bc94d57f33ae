"""``aih-cds``: serve, evaluate a request file, validate the rule configuration."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cds_service.configuration import ConfigError
from cds_service.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aih-cds", description="AIH CDS Hooks service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--threads", type=int, default=4)

    evaluate = commands.add_parser("evaluate", help="run one hook request file and print the cards")
    evaluate.add_argument("request", type=Path)
    evaluate.add_argument(
        "--service", help="service id (default: the service for the request's hook)"
    )
    evaluate.add_argument("--now", help="evaluation instant, ISO 8601 (default: now)")
    evaluate.add_argument("--json", action="store_true", help="print the raw CDS Hooks response")

    rules = commands.add_parser("rules", help="rule configuration")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    validate = rules_commands.add_parser("validate", help="load and check cards/ without starting")
    validate.add_argument("--cards-dir", type=Path)

    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "evaluate":
            return _evaluate(args)
        return _validate(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


def _validate(args: argparse.Namespace) -> int:
    from cds_service import load_rules

    overrides = {"cards_dir": args.cards_dir} if args.cards_dir else {}
    settings = Settings.load(overrides)
    config = load_rules(settings)
    enabled = sum(1 for r in config.rules.values() if r.enabled)
    print(
        f"OK: {config.cards_dir}: {len(config.services)} services, {len(config.rules)} rules "
        f"({enabled} enabled), {len(config.terminology.valuesets)} value sets"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cds_service import create_app

    body = json.loads(args.request.read_text(encoding="utf-8"))
    overrides: dict[str, Any] = {"auth": False, "database_url": "sqlite://"}
    if args.now:
        fixed = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        overrides["clock"] = lambda: fixed
    app = create_app(overrides)
    service_id = args.service or _service_for(app, body.get("hook"))
    response = app.test_client().post(f"/cds-services/{service_id}", json=body)
    payload = response.get_json()
    if args.json or response.status_code != 200:
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0 if response.status_code == 200 else 1
    print(format_cards(payload["cards"]))
    return 0


def _service_for(app: Any, hook: Any) -> str:
    for service in app.extensions["aih_cds"].config.services.values():
        if service.hook == hook:
            return str(service.id)
    raise SystemExit(f"no service answers hook {hook!r}")


def format_cards(cards: list[dict[str, Any]]) -> str:
    if not cards:
        return "No cards."
    blocks = []
    for card in cards:
        topic = card["source"].get("topic", {}).get("code", "?")
        lines = [f"[{card['indicator'].upper()}] {card['summary']}", f"  rule: {topic}"]
        lines += [f"  {line}" for line in card.get("detail", "").splitlines()]
        for suggestion in card.get("suggestions", ()):
            lines.append(f"  suggestion: {suggestion['label']}")
        for reason in card.get("overrideReasons", ()):
            lines.append(f"  override reason: {reason['display']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from cds_service import create_app

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 30)
            self.cfg.set("accesslog", "-")

        def load(self) -> Any:
            # Several workers share one replay cache (the database) unless told otherwise.
            return create_app({"serving_processes": args.workers})

    _Server().run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
