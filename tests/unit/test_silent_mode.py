"""Per-rule ``mode: silent``: cards are rendered, logged and counted but not returned."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from cds_service.config.configuration import ConfigError, load_configuration
from cds_service.ops.metrics import metrics
from cds_service.rules.registry import REGISTRY
from cds_service.storage.store import CardLog
from tests import factories as f
from tests.unit.test_configuration import RULE, edit_yaml


def silent_cards_count(mode: str) -> float:
    child = metrics().cards.labels("aih-order-sign", "mmf-teratogenicity", "warning", mode)
    return float(child._value.get())  # type: ignore[attr-defined]


def call(app: Flask) -> list[dict[str, object]]:
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    response = app.test_client().post("/cds-services/aih-order-sign", json=body)
    assert response.status_code == 200
    returned: list[dict[str, object]] = response.get_json()["cards"]
    return returned


def logged_modes(app: Flask) -> list[str]:
    store = app.extensions["aih_cds"].store
    with store.sessions() as session:
        return list(session.scalars(select(CardLog.mode)))


def test_silent_rule_logs_and_counts_but_returns_nothing(
    cards: Path, app_factory: Callable[..., Flask]
) -> None:
    edit_yaml(cards, RULE, lambda data: data.update(mode="silent"))
    app = app_factory(cards_dir=cards)
    before = silent_cards_count("silent")
    assert call(app) == []
    assert logged_modes(app) == ["silent"]
    assert silent_cards_count("silent") == before + 1


def test_active_rule_is_the_default(app_factory: Callable[..., Flask]) -> None:
    app = app_factory()
    before = silent_cards_count("active")
    assert len(call(app)) == 1
    assert logged_modes(app) == ["active"]
    assert silent_cards_count("active") == before + 1


def test_unknown_mode_names_the_field(cards: Path) -> None:
    edit_yaml(cards, RULE, lambda data: data.update(mode="quiet"))
    with pytest.raises(ConfigError) as caught:
        load_configuration(cards, REGISTRY)
    assert caught.value.field == "mode"
