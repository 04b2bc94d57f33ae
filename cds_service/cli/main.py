"""``aih-cds``: serve, evaluate a request file, validate the rule configuration, load fixtures."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds_service.cli import feedback as cli_feedback
from cds_service.cli import fhir as cli_fhir
from cds_service.cli import rules as cli_rules
from cds_service.cli import silent as cli_silent
from cds_service.cli import valueset as cli_valueset
from cds_service.cli import whatif as cli_whatif
from cds_service.cli.card_text import format_cards
from cds_service.cli.db import add_db_commands, run_db_command
from cds_service.common.settings import PACKAGE_ROOT, Settings
from cds_service.config.config_errors import ConfigError, ConfigErrors

FIXTURES_DIR = PACKAGE_ROOT.parent / "fixtures" / "fhir"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aih-cds", description="AIH CDS Hooks service")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the service's log lines (evaluate)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the service under gunicorn (settings: cds_service/ops/gunicorn_conf.py)"
    )
    serve.add_argument("--host", help="default: host of CDS_BIND (127.0.0.1)")
    serve.add_argument("--port", type=int, help="default: port of CDS_BIND (8080)")
    serve.add_argument("--workers", type=int, help="default: CDS_WORKERS (2)")
    serve.add_argument("--threads", type=int, help="default: CDS_THREADS (16)")

    evaluate = commands.add_parser("evaluate", help="run one hook request file and print the cards")
    evaluate.add_argument("request", type=Path)
    evaluate.add_argument(
        "--service", help="service id (default: the service for the request's hook)"
    )
    evaluate.add_argument("--now", help="evaluation instant, ISO 8601 (default: now)")
    evaluate.add_argument("--json", action="store_true", help="print the raw CDS Hooks response")
    evaluate.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show start-up and request log lines (default: cards only)",
    )

    rules = commands.add_parser("rules", help="rule configuration")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    validate = rules_commands.add_parser("validate", help="load and check cards/ without starting")
    validate.add_argument("--cards-dir", type=Path)
    cli_rules.register(rules_commands)
    cli_whatif.register(commands)
    cli_feedback.register(commands)
    cli_fhir.register(commands)
    cli_silent.register(commands)
    cli_valueset.register(commands)

    fixtures = commands.add_parser("fixtures", help="scenario charts for FHIR servers")
    fixtures_commands = fixtures.add_subparsers(dest="fixtures_command", required=True)
    load = fixtures_commands.add_parser(
        "load", help="PUT the scenarios' transaction Bundles (stable ids) into a FHIR server"
    )
    load.add_argument("--fhir-server", required=True, help="FHIR base URL")
    load.add_argument("--bearer", help="access token sent as 'Authorization: Bearer ...'")
    load.add_argument(
        "--shift-to-today",
        action="store_true",
        help="move each chart in time so its scenario's 'now' is today (for clients on the real "
        "clock, e.g. the CDS Hooks Sandbox)",
    )
    load.add_argument(
        "directories", nargs="*", type=Path, help="scenario folders (default: fixtures/fhir)"
    )

    demo = commands.add_parser(
        "demo", help="send each demo patient's hook request with and without prefetch"
    )
    demo.add_argument("--fhir-server", help="FHIR base URL holding the demo patients")
    demo.add_argument("--bearer", default="demo-token", help="token for that FHIR server")
    demo.add_argument(
        "--service-url", help="a running service (default: in-process, clock pinned per scenario)"
    )
    demo.add_argument(
        "directories", nargs="*", type=Path, help="scenario folders (default: fixtures/fhir)"
    )

    add_db_commands(commands)

    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ConfigError as exc:
        return _configuration_errors(exc)
    except CliInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path given on the command line: missing, a folder, unreadable
        if isinstance(exc, BrokenPipeError):
            return _closed_pipe()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


def _configuration_errors(exc: ConfigError) -> int:
    """One line per problem (``file:line: field (entry): message``), all of them."""
    errors = exc.errors if isinstance(exc, ConfigErrors) else (exc,)
    for error in errors:
        print(f"configuration error: {error}", file=sys.stderr)
    if len(errors) > 1:
        print(f"{len(errors)} configuration problems: fix them all", file=sys.stderr)
    return 2


class CliInputError(ValueError):
    """A file given on the command line is not what the command needs; the message names it."""


def _closed_pipe() -> int:
    """The reader went away (``aih-cds rules show | head``): stop quietly, as shell tools do.

    stdout is pointed at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE, what a shell reports for a command stopped by a closed pipe


def _run(args: argparse.Namespace) -> int:
    if hasattr(args, "handler"):  # commands registered by their own modules
        return int(args.handler(args))
    if args.command == "serve":
        return _serve(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "fixtures":
        return _load_fixtures(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "db":
        return run_db_command(args)
    return _validate(args)


def _validate(args: argparse.Namespace) -> int:
    from cds_service import load_rules

    overrides = {"cards_dir": args.cards_dir} if args.cards_dir else {}
    settings = Settings.load(overrides)
    config = load_rules(settings)
    enabled = sum(1 for r in config.rules.values() if r.enabled)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"OK: {config.cards_dir}: {len(config.services)} services, {len(config.rules)} rules "
        f"({enabled} enabled), {len(config.terminology.valuesets)} value sets"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from cds_service.cli.demo_run import http_caller, in_process_caller, run_demo, scenario_dirs

    directories = scenario_dirs(args.directories or [FIXTURES_DIR])
    call = http_caller(args.service_url) if args.service_url else in_process_caller()
    differing, compared = run_demo(directories, call, args.fhir_server, args.bearer)
    if args.fhir_server:
        same = compared - differing
        print(
            f"{same} of {compared} scenarios: same cards with and without prefetch"
            f" ({len(directories) - compared} about requests without fhirServer, not compared)"
        )
    return 1 if differing else 0


def _load_fixtures(args: argparse.Namespace) -> int:
    from cds_service.cli.fixtures import bundle_dirs, load_fixtures
    from cds_service.web.runtime import utc_now

    try:
        directories = bundle_dirs(args.directories or [FIXTURES_DIR])
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    failures = 0
    today = utc_now() if args.shift_to_today else None
    for result in load_fixtures(args.fhir_server, directories, args.bearer, today=today):
        failures += not result.ok
        print(f"{'loaded' if result.ok else 'FAILED'} {result.scenario}: {result.message}")
    print(f"{len(directories) - failures} of {len(directories)} scenarios loaded")
    return 1 if failures else 0


def _evaluate(args: argparse.Namespace) -> int:
    from cds_service import create_app

    body = read_request(args.request)
    overrides: dict[str, Any] = {"auth": False, "database_url": "sqlite://"}
    if args.now:
        try:
            fixed = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        except ValueError as exc:
            raise CliInputError(f"--now {args.now!r} is not an ISO 8601 instant") from exc
        fixed = fixed if fixed.tzinfo else fixed.replace(tzinfo=UTC)
        overrides["clock"] = lambda: fixed
    # In-process, unauthenticated and in memory by design: the start-up lines (migrations, the
    # development-mode banner meant for a served process) are noise here unless asked for.
    quiet = not args.verbose
    if quiet:
        logging.disable(logging.CRITICAL)
    try:
        app = create_app(overrides)
        service_id = args.service or _service_for(app, body.get("hook"))
        response = app.test_client().post(f"/cds-services/{service_id}", json=body)
    finally:
        if quiet:
            logging.disable(logging.NOTSET)
    payload = response.get_json()
    if args.json or response.status_code != 200:
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        if response.status_code >= 500 and quiet:
            print("the service failed: run again with -v to see its log", file=sys.stderr)
        return 0 if response.status_code == 200 else 1
    print(format_cards(payload["cards"]))
    return 0


def read_request(path: Path) -> dict[str, Any]:
    """A hook request file, or a :class:`CliInputError` saying what is wrong with it."""
    if not path.exists():
        raise CliInputError(f"{path}: no such file")
    if path.is_dir():
        raise CliInputError(f"{path}: is a folder; give a hook request file (*.json)")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CliInputError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise CliInputError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    if not isinstance(body, dict) or "hook" not in body:
        raise CliInputError(f"{path}: not a CDS Hooks request (a JSON object with a 'hook')")
    return body


def _service_for(app: Any, hook: Any) -> str:
    services = app.extensions["aih_cds"].config.services.values()
    for service in services:
        if service.hook == hook:
            return str(service.id)
    hooks = sorted({s.hook for s in services})
    raise CliInputError(f"no service answers hook {hook!r}; hooks served: {', '.join(hooks)}")


def _serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from cds_service.ops import gunicorn_conf

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in vars(gunicorn_conf).items():
                if name in self.cfg.settings and value is not None:
                    self.cfg.set(name, value)
            host, _, port = gunicorn_conf.bind.rpartition(":")
            self.cfg.set("bind", f"{args.host or host}:{args.port or port}")
            self.cfg.set("workers", args.workers or gunicorn_conf.workers)
            self.cfg.set("threads", args.threads or gunicorn_conf.threads)

        def load(self) -> Any:
            from cds_service import create_app

            # Several workers share one replay cache (the database) unless told otherwise.
            return create_app({"serving_processes": self.cfg.workers})

    _Server().run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
