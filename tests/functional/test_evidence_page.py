"""GET /evidence/<rule-id>: every card links its rule's evidence page (``links`` and
``source.url``), an absolute URL from CDS_PUBLIC_BASE_URL or the request; the page is HTML from
the evidence registry and the rule file, with no patient data. Also: hostile FHIR text reaching a
card over HTTP comes out as text."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask
from markdown_it import MarkdownIt

from tests import factories as f
from tests.conftest import REPO

SCENARIO = REPO / "fixtures" / "fhir" / "aih-refractory-pred-aza"
NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")


def refractory_card(app: Flask) -> dict[str, Any]:
    request = json.loads((SCENARIO / "request.json").read_text(encoding="utf-8"))
    response = app.test_client().post("/cds-services/aih-patient-view", json=request)
    assert response.status_code == 200
    [card] = response.get_json()["cards"]
    return dict(card)


def test_card_links_the_evidence_page_under_the_public_base_url(
    app_factory: Callable[..., Flask],
) -> None:
    app = app_factory(clock=lambda: NOW, public_base_url="https://cds.example.org/aih/")
    card = refractory_card(app)
    url = "https://cds.example.org/aih/evidence/aih-refractory"
    assert card["source"]["url"] == url
    assert card["links"] == [
        {"label": "Evidence and background for this card", "url": url, "type": "absolute"}
    ]


def test_without_a_public_base_url_the_link_follows_the_request(
    app_factory: Callable[..., Flask],
) -> None:
    card = refractory_card(app_factory(clock=lambda: NOW))
    assert card["source"]["url"] == "http://localhost/evidence/aih-refractory"


def test_evidence_page_is_html_from_the_registry_without_patient_data(
    app_factory: Callable[..., Flask],
) -> None:
    app = app_factory(clock=lambda: NOW, auth=True)  # no client JWT needed: nothing private
    card = refractory_card_without_auth(app_factory)
    page = app.test_client().get("/evidence/aih-refractory")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert "<h1>Steroid-refractory autoimmune hepatitis</h1>" in html
    # the configured thresholds, not literals
    assert "at least 90 days" in html
    assert "at or above 2\u00d7ULN" in html
    # full citations with identifiers and links
    assert "J Hepatol 2022;76:841-849. doi:10.1016/j.jhep.2021.12.041." in html
    assert 'href="https://doi.org/10.1016/j.jhep.2021.12.041"' in html
    assert "Am J Med 2014;127:1128-1131" in html
    assert "PMID 24979741" in html
    # nothing of the patient the card was about
    for fact in ("2026-05-25", "112 U/L", "Prednisolone 5 mg tablet"):
        assert fact in card["detail"]
        assert fact not in html


def refractory_card_without_auth(app_factory: Callable[..., Flask]) -> dict[str, Any]:
    return refractory_card(app_factory(clock=lambda: NOW))


def test_every_rule_has_an_evidence_page_and_an_index(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(clock=lambda: NOW)
    client = app.test_client()
    rules = app.extensions["aih_cds"].config.rules
    index = client.get("/evidence").get_data(as_text=True)
    for rule_id in rules:
        assert f'href="evidence/{rule_id}"' in index
        page = client.get(f"/evidence/{rule_id}")
        assert page.status_code == 200, rule_id
        assert "<h2>Sources</h2>" in page.get_data(as_text=True)


def test_unknown_rule_is_404(app_factory: Callable[..., Flask]) -> None:
    response = app_factory().test_client().get("/evidence/no-such-rule")
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"


HOSTILE = (
    'CellCept <img src=x onerror="alert(1)"> [click here](https://evil.example/x)'
    " https://evil.example/bare <script>alert(2)</script>"
)


def test_hostile_medication_text_reaches_the_card_as_text(
    app_factory: Callable[..., Flask],
) -> None:
    """A draft order's free text (the drug name on the card) with an image, a link, a script
    and a bare URL: the summary, detail and suggestion labels hold none of them as markup."""
    draft = f.mmf_draft(rxnorm="68149", text=HOSTILE)
    prefetch = f.full_prefetch(patient_resource=f.patient())
    body = f.hook_request("order-sign", drafts=(draft,), prefetch=prefetch)
    response = app_factory().test_client().post("/cds-services/aih-order-sign", json=body)
    assert response.status_code == 200
    cards = [
        c
        for c in response.get_json()["cards"]
        if c["source"]["topic"]["code"] == "mmf-teratogenicity"
    ]
    assert cards
    for card in cards:
        html = MarkdownIt("commonmark", {"html": True}).render(card["detail"])
        assert not re.search(r"<(img|script|a)\b", html), html
        assert "evil.example" in html  # the text is kept, as text
        assert not re.search(r"https?://evil", card["detail"])
        for plain in (card["summary"], *(s["label"] for s in card.get("suggestions", ()))):
            assert not re.search(r"<[a-z/]|\]\(|https?://evil", plain), plain
