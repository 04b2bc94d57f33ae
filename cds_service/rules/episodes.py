"""Medication orders chained into episodes: consecutive courses of one class with short gaps.

A course with an end date (``boundsPeriod.end``) was last taken on that date; an open course
(active or on-hold, no end in the past) is still taken now; a completed or stopped request with no
end date is one exposure on its start date (one completed request per infusion is how infusions
are usually ordered). Courses whose start follows the latest exposure of the chain so far by less
than ``gap_days`` join the chain; a longer gap starts a new episode.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cds_service.patient.record import MedicationCourse


def last_exposure(course: MedicationCourse, now: datetime) -> datetime | None:
    """When the drug of this course was last taken (None: the course has no start date)."""
    if course.start is None:
        return None
    if course.exposures:  # a dose series (record.py): last taken at its latest dose
        return min(course.exposures[-1].when, now)
    if course.is_active(now):
        return now
    if course.end is not None:
        return min(course.end, now)
    return course.start  # completed or stopped without an end: one exposure on its start


@dataclass(frozen=True)
class Episode:
    """A chain of courses; ``start`` is the first start, ``last`` the latest exposure."""

    start: datetime
    last: datetime
    members: tuple[MedicationCourse, ...]

    def open_now(self, now: datetime) -> bool:
        return any(c.is_active(now) for c in self.members)

    def current(self, now: datetime, ended_within_days: int) -> bool:
        """Open now, or last taken at most ``ended_within_days`` ago."""
        return self.open_now(now) or now - self.last <= timedelta(days=ended_within_days)


def episodes(courses: Iterable[MedicationCourse], gap_days: int, now: datetime) -> list[Episode]:
    """Chains of the dated courses (up to a day after now), oldest first."""
    dated = sorted(
        (c for c in courses if c.start is not None and c.start <= now + timedelta(days=1)),
        key=lambda c: c.start or now,
    )
    gap = timedelta(days=gap_days)
    chains: list[Episode] = []
    for course in dated:
        start = course.start or now
        last = last_exposure(course, now) or start
        if chains and start - chains[-1].last < gap:
            previous = chains[-1]
            chains[-1] = Episode(
                previous.start, max(previous.last, last), (*previous.members, course)
            )
        else:
            chains.append(Episode(start, last, (course,)))
    return chains
