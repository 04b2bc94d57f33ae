"""Cards as plain text for a terminal (``aih-cds request`` and ``aih-cds demo``)."""

from __future__ import annotations

from typing import Any


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
