"""``GET /evidence/<rule-id>``: a rule's evidence page, HTML, no patient data.

Cards stay short; the full evidence (how the rule decides with the configured thresholds,
options with their figures and cautions, definitions, the full citations from the evidence
registry) is here, linked from every card (``links`` and ``source.url``). The page text is the
rule file's ``evidence_page`` (trusted configuration, still HTML-escaped) in a small Markdown
subset: paragraphs, ``### `` headings, ``- `` and ``1. `` lists, ``**bold**`` and ``*italic*``.
No authentication: the page holds nothing about any patient.
"""

from __future__ import annotations

import html
import re

from flask import Blueprint, Response, current_app

from cds_service.common.errors import NotFound
from cds_service.config.configuration import Configuration, RuleConfig

evidence_bp = Blueprint("evidence", __name__)
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
STYLE = """
body{font:16px/1.5 system-ui,sans-serif;color:#1d2433;background:#f6f7f9;margin:0}
main{max-width:46rem;margin:0 auto;padding:1.5rem 1.25rem 3rem;background:#fff;min-height:100vh}
.kicker{color:#5a6478;font-size:.85rem;text-transform:uppercase;letter-spacing:.04em;margin:0}
h1{font-size:1.6rem;margin:.2rem 0 .4rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #dde1e8;padding-bottom:.2rem}h3{font-size:1.05rem;margin:1.4rem 0 .3rem}
.lead{color:#3b4458}li{margin:.25rem 0}.sources li{margin:.6rem 0}
.supports{color:#3b4458;margin:.15rem 0 0}.note{margin-top:2rem;font-size:.85rem;color:#5a6478}
a{color:#0b5cad}
"""


@evidence_bp.get("/evidence")
def evidence_index() -> Response:
    config = _config()
    items = "".join(
        f'<li><a href="evidence/{html.escape(rule.id)}">{html.escape(rule.title)}</a></li>'
        for rule in sorted(config.rules.values(), key=lambda r: r.title)
    )
    return _page("Evidence pages", f"<h1>Evidence pages</h1><ul>{items}</ul>")


@evidence_bp.get("/evidence/<rule_id>")
def evidence(rule_id: str) -> Response:
    config = _config()
    rule = config.rules.get(rule_id)
    if rule is None:
        raise NotFound(f"no rule {rule_id!r}; see GET /evidence", expression="rule-id")
    return _page(f"Evidence: {rule.title}", rule_page_body(rule, config))


def _config() -> Configuration:
    config: Configuration = current_app.extensions["aih_cds"].config
    return config


def _page(title: str, body: str) -> Response:
    document = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
    response = Response(document, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def rule_page_body(rule: RuleConfig, config: Configuration) -> str:
    """The page body for one rule: its text, then every source with what it supports."""
    sources = []
    for entry in rule.evidence:
        source = config.sources[entry["key"]]
        href = source.href
        link = f' <a href="{html.escape(href)}">{html.escape(href)}</a>' if href else ""
        citation = html.escape(source.citation(config.sources))
        sources.append(
            f'<li id="{html.escape(source.key)}"><div>{citation}{link}</div>'
            f'<p class="supports">{inline(entry["supports"])}</p></li>'
        )
    source_list = f'<h2>Sources</h2><ol class="sources">{"".join(sources)}</ol>' if sources else ""
    return (
        '<p class="kicker">AIH clinical decision support &middot; evidence page</p>'
        f"<h1>{html.escape(rule.title)}</h1>"
        + (f'<p class="lead">{inline(rule.description)}</p>' if rule.description else "")
        + markdown_subset(rule.evidence_page)
        + source_list
        + '<p class="note">This page holds no patient data. Thresholds and windows are the values'
        f" this service is configured with (rule <code>{html.escape(rule.id)}</code>). The options"
        " are evidence to discuss with the treating specialist, not a prescription.</p>"
    )


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_ORDERED = re.compile(r"^\d+\. ")


def inline(text: str) -> str:
    escaped = html.escape(" ".join(text.split()), quote=False)
    return _ITALIC.sub(r"<em>\1</em>", _BOLD.sub(r"<strong>\1</strong>", escaped))


def markdown_subset(text: str) -> str:
    """Blocks separated by blank lines: ``### heading``, a list (every line starts with ``- ``
    or ``1. ``; a line indented under an item continues it) or a paragraph."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.split("\n")
        if block.startswith("### "):
            out.append(f"<h2>{inline(block[4:])}</h2>")
        elif lines[0].startswith("- ") or _ORDERED.match(lines[0]):
            tag = "ul" if lines[0].startswith("- ") else "ol"
            items: list[str] = []
            for line in lines:
                if line.startswith("- ") or _ORDERED.match(line):
                    items.append(line.split(" ", 1)[1])
                elif items:
                    items[-1] += " " + line.strip()
            out.append(f"<{tag}>" + "".join(f"<li>{inline(i)}</li>" for i in items) + f"</{tag}>")
        else:
            out.append(f"<p>{inline(block)}</p>")
    return "".join(out)
