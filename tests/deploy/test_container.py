"""The Dockerfile and compose file, checked statically (no Docker or hadolint on the build
machines): non-root user, health check, no secrets, every copied path exists, rules read-only."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from tests.conftest import REPO

DOCKERFILE = REPO / "deploy" / "Dockerfile"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|HASH_KEY|TRUSTED_ISSUERS|DATABASE_URL", re.I)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile lines joined at trailing backslashes, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, argument = stripped.partition(" ")
            found.append(Instruction(keyword.upper(), argument.strip()))
    return found


def final_stage() -> list[Instruction]:
    parsed = instructions(DOCKERFILE.read_text())
    last_from = max(i for i, ins in enumerate(parsed) if ins.keyword == "FROM")
    return parsed[last_from:]


def test_runs_as_a_non_root_user() -> None:
    users = [ins.argument for ins in final_stage() if ins.keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    last_user = max(i for i, ins in enumerate(final_stage()) if ins.keyword == "USER")
    assert all(ins.keyword not in {"RUN"} for ins in final_stage()[last_user:])


def test_has_a_health_check_on_healthz() -> None:
    checks = [ins.argument for ins in final_stage() if ins.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/healthz" in checks[0]


def test_slim_base_and_gunicorn_configuration() -> None:
    bases = [ins.argument for ins in instructions(DOCKERFILE.read_text()) if ins.keyword == "FROM"]
    assert all("slim" in base for base in bases)
    cmd = next(ins.argument for ins in final_stage() if ins.keyword == "CMD")
    assert '"gunicorn", "-c", "/etc/aih-cds/gunicorn.conf.py"' in cmd


def test_no_secrets_baked_in() -> None:
    for ins in instructions(DOCKERFILE.read_text()):
        if ins.keyword in {"ENV", "ARG"}:
            names = [part.split("=", 1)[0] for part in shlex.split(ins.argument)]
            assert not [n for n in names if SECRET_NAME.search(n)], ins.argument
    assert "CDS_AUTH" not in DOCKERFILE.read_text()  # the image never switches auth off


def test_every_copied_path_exists() -> None:
    for ins in instructions(DOCKERFILE.read_text()):
        if ins.keyword == "COPY" and "--from=" not in ins.argument:
            sources = [p for p in ins.argument.split()[:-1] if not p.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), source


def test_the_parser_sees_what_a_bad_file_would_have() -> None:
    bad = instructions("FROM python:3.11\nENV DB_PASSWORD=x \\\n    OTHER=1\nUSER root\n")
    assert [i.keyword for i in bad] == ["FROM", "ENV", "USER"]
    assert SECRET_NAME.search(bad[1].argument)
    assert bad[2].argument == "root"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    return loaded


def test_compose_mounts_rules_read_only_and_migrates_first() -> None:
    services = compose()["services"]
    cds = services["cds"]
    assert "../cards:/etc/aih-cds/cards:ro" in cds["volumes"]
    assert cds["read_only"] is True
    assert cds["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["aih-cds", "db", "upgrade"]
    for service in ("cds", "migrate"):
        assert services[service]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert all(port.startswith("127.0.0.1:") for port in cds["ports"])
