"""Override rate per rule by week, drawn with matplotlib (PNG or SVG).

One panel per rule. In each panel the bars are the cards issued that week (active dark, silent
light, the count written on each bar) and the points are the weekly override rate of the active
cards that were answered, with their 95 % Wilson interval; a week with no answer has no point
(not 0 %). Dates read "2 Jun", with the year on the first tick and where it changes.
"""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import date
from typing import Any

import matplotlib as mpl
import matplotlib.dates as mdates
from matplotlib.figure import Figure  # without pyplot: no GUI backend, no global figure state
from matplotlib.ticker import MaxNLocator, PercentFormatter

FORMATS = ("png", "svg")
# Okabe-Ito: distinguishable with the common colour-vision deficiencies
RATE_COLOUR, ACTIVE_BAR, SILENT_BAR = "#D55E00", "#0072B2", "#A6CEE3"
PANEL_HEIGHT, WIDTH = 2.6, 9.0  # inches
MAX_TICKS = 10
STYLE: dict[str, Any] = {"svg.fonttype": "none", "svg.hashsalt": "aih-cds", "font.size": 9}


def override_rate_svg(report: dict[str, Any]) -> str:
    return override_rate_plot(report, "svg").decode("utf-8")


def override_rate_plot(report: dict[str, Any], fmt: str) -> bytes:
    """The figure as ``png`` or ``svg`` bytes (SVG text stays text: searchable, screen-readable)."""
    if fmt not in FORMATS:
        raise ValueError(f"plot format must be one of {FORMATS}, got {fmt!r}")
    with mpl.rc_context(STYLE):  # type: ignore[arg-type]
        figure = _figure(report)
        buffer = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {}
        figure.savefig(buffer, format=fmt, dpi=120, metadata=metadata)
    return buffer.getvalue()


def _figure(report: dict[str, Any]) -> Figure:
    weeks_by_rule: dict[str, dict[date, dict[str, dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for row in report["weekly"]:
        weeks_by_rule[row["rule"]][date.fromisoformat(row["week"])][row["mode"]] = row
    rules = sorted(weeks_by_rule)
    since = f" since {report['since']}" if report.get("since") else ""
    figure = Figure(figsize=(WIDTH, 1.2 + PANEL_HEIGHT * max(1, len(rules))), layout="constrained")
    figure.suptitle(
        f"Override rate per rule by week{since}\n"
        "bars: cards issued (n); points: share of answered active cards overridden, "
        "with 95 % Wilson interval",
        fontsize=10,
    )
    if not rules:
        axes = figure.subplots()
        axes.set_axis_off()
        axes.text(0.5, 0.5, "No cards issued in this period", ha="center", va="center")
        return figure
    all_weeks = sorted({week for weeks in weeks_by_rule.values() for week in weeks})
    panels = figure.subplots(len(rules), 1, sharex=True, squeeze=False)[:, 0]
    for axes, rule in zip(panels, rules, strict=True):
        _panel(axes, rule, weeks_by_rule[rule])
    panels[-1].set_xlabel("week starting (Monday, UTC)")
    _date_axis(panels[-1], all_weeks)
    return figure


def _panel(axes: Any, rule: str, weeks: dict[date, dict[str, dict[str, Any]]]) -> None:
    days = sorted(weeks)
    active = [weeks[d].get("active", {}).get("issued", 0) for d in days]
    silent = [weeks[d].get("silent", {}).get("issued", 0) for d in days]
    counts = axes.twinx()
    counts.set_zorder(axes.get_zorder() - 1)  # bars behind the rate points
    axes.patch.set_visible(False)
    width = 4.5  # days
    counts.bar(days, active, width=width, color=ACTIVE_BAR, alpha=0.35)
    counts.bar(days, silent, width=width, bottom=active, color=SILENT_BAR, alpha=0.6, hatch="//")
    totals = [a + s for a, s in zip(active, silent, strict=True)]
    for day, total, shown in zip(days, totals, active, strict=True):
        if total == shown:
            label = f"n={total}"
        elif shown == 0:
            label = f"n={total} silent"
        else:
            label = f"n={total} ({total - shown} silent)"
        counts.annotate(label, (day, total), ha="center", va="bottom", fontsize=8, color="#333333")
    counts.set_ylim(0, max(totals) * 1.35 + 1)
    counts.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    counts.set_ylabel("cards issued", color="#555555")

    points = [
        (d, weeks[d]["active"])
        for d in days
        if weeks[d].get("active", {}).get("override_rate") is not None
    ]
    if points:
        xs = [d for d, _ in points]
        rates = [row["override_rate"] for _, row in points]
        lows = [row["override_rate"] - row["override_rate_ci95"][0] for _, row in points]
        highs = [row["override_rate_ci95"][1] - row["override_rate"] for _, row in points]
        axes.errorbar(
            xs,
            rates,
            yerr=[lows, highs],
            color=RATE_COLOUR,
            marker="o",
            capsize=3,
            linestyle="none",
        )
    else:
        note = "silent: never shown, so no override rate" if not any(active) else "no answers"
        axes.text(0.01, 0.9, note, transform=axes.transAxes, color="#333333", style="italic")
    axes.set_ylim(-0.03, 1.03)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.yaxis.set_major_locator(MaxNLocator(nbins=5))
    axes.set_ylabel("overridden", color=RATE_COLOUR)
    axes.grid(axis="y", color="#dddddd")
    totals_text = _totals(weeks)
    axes.set_title(f"{rule}  {totals_text}", loc="left", fontsize=10)


def _totals(weeks: dict[date, dict[str, dict[str, Any]]]) -> str:
    answered = sum(w.get("active", {}).get("answered", 0) for w in weeks.values())
    overridden = sum(w.get("active", {}).get("overridden") or 0 for w in weeks.values())
    issued = sum(m.get("issued", 0) for w in weeks.values() for m in w.values())
    if not answered:
        return f"(n={issued}, no answers)"
    return f"(n={issued}, {overridden} of {answered} answered overridden)"


def _date_axis(axes: Any, weeks: list[date]) -> None:
    """A tick on every k-th Monday (at most ten ticks), labelled "2 Jun" or "2 Jun 2026"."""
    span_weeks = (weeks[-1] - weeks[0]).days // 7 + 1
    every = max(1, -(-span_weeks // MAX_TICKS))
    mondays = mdates.WeekdayLocator(byweekday=mdates.MO, interval=every)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(mondays)
    one_year = weeks[0].year == weeks[-1].year
    pattern = "%-d %b" if one_year else "%-d %b %Y"
    axes.xaxis.set_major_formatter(mdates.DateFormatter(pattern))  # type: ignore[no-untyped-call]
    if one_year:
        axes.set_xlabel(f"week starting (Monday, UTC), {weeks[0].year}")
    if len(weeks) == 1:  # one week: a short range so the bar is not a full-width block
        middle = mdates.date2num(weeks[0])  # type: ignore[no-untyped-call]
        axes.set_xlim(middle - 10, middle + 10)
