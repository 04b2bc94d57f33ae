"""What the thiopurine rules share: which drafts are thiopurines and how therapy is described."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cds_service.patient.record import DraftOrder, MedicationCourse
from cds_service.rules.common import fmt_date

THIOPURINE = "thiopurine"


def thiopurine_drafts(drafts: Iterable[DraftOrder]) -> tuple[DraftOrder, ...]:
    return tuple(d for d in drafts if THIOPURINE in d.classes)


def course_text(course: MedicationCourse, now: datetime) -> str:
    ended = f", ended {fmt_date(course.end)}" if course.end and course.end <= now else ""
    return (
        f"{course.label} ({course.status}, started {fmt_date(course.start)}{ended}; "
        f"{course.dosage.daily_dose.describe()})"
    )


def draft_text(draft: DraftOrder) -> str:
    return f"{draft.label} (draft order; {draft.dosage.daily_dose.describe()})"


def course_lines(
    courses: Iterable[MedicationCourse], drafts: Iterable[DraftOrder], now: datetime
) -> str:
    """Markdown bullets for the courses and draft orders a card is about."""
    lines = [course_text(c, now) for c in courses] + [draft_text(d) for d in drafts]
    return "\n".join(f"- {line}" for line in lines) or "- none on record"
