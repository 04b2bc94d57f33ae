"""Override rate per rule per week as a standalone SVG (no plotting library needed)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 760, 380
LEFT, RIGHT, TOP, BOTTOM = 60, 200, 40, 60
# Okabe-Ito: distinguishable with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def override_rate_svg(report: dict[str, Any]) -> str:
    weekly = [w for w in report["weekly"] if w["override_rate"] is not None]
    weeks = sorted({w["week"] for w in weekly})
    series: dict[str, list[tuple[str, float, int]]] = defaultdict(list)
    for row in weekly:
        series[row["rule"]].append((row["week"], row["override_rate"], row["issued"]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(week: str) -> float:
        if len(weeks) == 1:
            return LEFT + plot_w / 2
        return LEFT + plot_w * weeks.index(week) / (len(weeks) - 1)

    def y(rate: float) -> float:
        return TOP + plot_h * (1 - rate)

    title = "Override rate per rule by week"
    since = f" since {report['since']}" if report.get("since") else ""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="t d" '
        'font-family="sans-serif" font-size="12">',
        f'<title id="t">{escape(title + since)}</title>',
        f'<desc id="d">{escape(_description(series))}</desc>',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{escape(title + since)}</text>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{LEFT + plot_w}" y2="{ty:.1f}" '
            'stroke="#dddddd"/>'
            f'<text x="{LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end">{tick:.0%}</text>'
        )
    for week in weeks:
        parts.append(
            f'<text x="{x(week):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">'
            f"{escape(week)}</text>"
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 14}" text-anchor="middle">'
        "week starting (cards issued that week; rate = overridden / issued)</text>"
    )
    if not series:
        parts.append(
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" '
            'text-anchor="middle">No cards issued in this period</text>'
        )
    for index, (rule, points) in enumerate(sorted(series.items())):
        colour = PALETTE[index % len(PALETTE)]
        coordinates = " ".join(f"{x(w):.1f},{y(r):.1f}" for w, r, _ in points)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coordinates}"/>'
        )
        for week, rate, issued in points:
            label = f"{rule}, week of {week}: {rate:.0%} of {issued} card(s) overridden"
            parts.append(
                f'<circle cx="{x(week):.1f}" cy="{y(rate):.1f}" r="4" fill="{colour}">'
                f"<title>{escape(label)}</title></circle>"
            )
        legend_y = TOP + 16 * index
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 16}" y="{legend_y}" width="12" height="12" '
            f'fill="{colour}"/><text x="{WIDTH - RIGHT + 34}" y="{legend_y + 10}" '
            f"data-rule={quoteattr(rule)}>{escape(rule)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _description(series: dict[str, list[tuple[str, float, int]]]) -> str:
    if not series:
        return "No cards were issued in this period."
    return "; ".join(
        f"{rule}: " + ", ".join(f"{week} {rate:.0%}" for week, rate, _ in points)
        for rule, points in sorted(series.items())
    )
