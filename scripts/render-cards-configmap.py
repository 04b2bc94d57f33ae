#!/usr/bin/env python3
"""Writes deploy/kubernetes/cards-configmap.yaml from cards/ and the matching volume items in
deploy/kubernetes/deployment.yaml (between the "cards items" markers).

ConfigMap keys cannot hold "/", so rules/x.yaml is stored under the key rules__x.yaml and the
Deployment's volume items put each key back at its path. Run after changing anything in cards/;
`--check` (used by the tests) fails when the committed files are stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CARDS = REPO / "cards"
KUBE = REPO / "deploy" / "kubernetes"
CONFIGMAP = KUBE / "cards-configmap.yaml"
DEPLOYMENT = KUBE / "deployment.yaml"
BEGIN = "# cards items: begin (scripts/render-cards-configmap.py writes this block)"
END = "# cards items: end"
ITEM_INDENT = " " * 12


def card_files() -> list[Path]:
    """Every file the service loads: YAML, value sets and shared card text (snippets/*.md)."""
    return sorted(
        p
        for p in CARDS.rglob("*")
        if p.is_file()
        and (p.suffix in {".yaml", ".json"} or (p.suffix == ".md" and p.parent.name == "snippets"))
    )


def key_for(path: Path) -> str:
    return path.relative_to(CARDS).as_posix().replace("/", "__")


class _Literal(str):
    """Multi-line file contents as YAML literal blocks, so diffs of the ConfigMap stay readable."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


yaml.SafeDumper.add_representer(_Literal, _literal)


def render_configmap() -> str:
    data = {key_for(p): _Literal(p.read_text(encoding="utf-8")) for p in card_files()}
    document = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aih-cds-cards", "labels": {"app.kubernetes.io/name": "aih-cds"}},
        "data": data,
    }
    header = "# Generated from cards/ by scripts/render-cards-configmap.py: do not edit by hand.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)


def render_deployment() -> str:
    text = DEPLOYMENT.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END)
    items = "".join(
        f"{ITEM_INDENT}- {{key: {key_for(p)}, path: {p.relative_to(CARDS).as_posix()}}}\n"
        for p in card_files()
    )
    return text[: start + len(BEGIN)] + "\n" + items + ITEM_INDENT + text[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args()
    wanted = {CONFIGMAP: render_configmap(), DEPLOYMENT: render_deployment()}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(REPO)} is stale: run scripts/render-cards-configmap.py")
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
