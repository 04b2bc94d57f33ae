"""Demo patients: the golden scenario charts, shaped for the demo EHR page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cds_service.common.date_shift import days_between, shift_resources
from cds_service.common.fhirdates import age_in_years, parse_fhir_date, parse_fhir_datetime
from cds_service.informatics.charts import Chart, Scenario, load_scenario, scenario_dirs
from cds_service.patient.record import PatientRecord, RecordBuilder, RecordInputs

CHART_ANALYTES = ("alt", "ast", "igg")


@dataclass(frozen=True)
class Story:
    """A featured demo story: one per rule family, each patient with a name of its own.

    The golden scenarios reuse a few synthetic names ("Alex Golden" in about thirty); ``name``
    renames the patient on the demo page only (the chart sent to the service is unchanged).
    ``order`` is the catalogue order to draft for the story's order-sign card."""

    scenario: str
    title: str
    name: str | None = None
    order: str | None = None


FEATURED = (
    Story("mmf-pregnant-status", "Mycophenolate ordered in pregnancy", order="mmf"),
    Story("aih-nonresponse-week-4", "No response to prednisolone at week 4"),
    Story("aih-relapse-on-maintenance", "Relapse on maintenance: insufficient response"),
    Story("aih-refractory-pred-mmf", "Refractory AIH on prednisolone and mycophenolate"),
    Story("tnf-crohns-alt-3x", "ALT 3 x ULN on infliximab"),
    Story("thio-shunting-view", "Thiopurine metabolites: 6-MMP shunting"),
    Story(
        "allo-draft-full-dose", "Allopurinol added to full-dose azathioprine", order="allopurinol"
    ),
    Story(
        "tpmt-poor-activity",
        "Azathioprine with absent TPMT activity",
        "Priya Golden",
        "azathioprine",
    ),
    Story("bud-cirrhosis-oral", "Oral budesonide in cirrhosis", "Hope Golden", "budesonide"),
)
STORIES = {story.scenario: story for story in FEATURED}


@dataclass(frozen=True)
class DemoPatient:
    scenario: Scenario

    @property
    def id(self) -> str:
        return self.scenario.chart.patient_id

    def chart_on(self, now: datetime) -> Chart:
        """The chart moved in time so the scenario's ``now`` falls on ``now``'s day: the demo
        shows the same story, and earns the same cards, on any day (see date_shift)."""
        chart = self.scenario.chart
        return replace(chart, resources=shift_resources(chart.resources, self._shift(now)))

    def resource(self, now: datetime) -> Mapping[str, Any]:
        """The Patient alone, moved like the chart (listing patients moves no other resource)."""
        patient = next(r for r in self.scenario.chart.resources if r["resourceType"] == "Patient")
        return shift_resources([patient], self._shift(now))[0]

    def _shift(self, now: datetime) -> int:
        return days_between(parse_fhir_datetime(self.scenario.now) or now, now)

    def summary(self, now: datetime) -> dict[str, Any]:
        patient = self.resource(now)
        born = parse_fhir_date(patient.get("birthDate"))
        story = STORIES.get(self.scenario.name)
        return {
            "id": self.id,
            "name": (story.name if story else None) or display_name(patient),
            "story": {"title": story.title, "order": story.order} if story else None,
            "gender": patient.get("gender", "unknown"),
            "birthDate": patient.get("birthDate"),
            "age": age_in_years(born, now.date()) if born else None,
            "scenario": self.scenario.name,
            "description": self.scenario.description,
        }


def load_demo_patients(root: Path) -> dict[str, DemoPatient]:
    patients = (DemoPatient(load_scenario(d)) for d in scenario_dirs(root))
    return {p.id: p for p in patients}


def patient_view_model(
    patient: DemoPatient, builder: RecordBuilder, now: datetime
) -> dict[str, Any]:
    """Lab history in canonical units with the ULN each result was judged against, treatment
    courses and conditions: read through the service's own record builder and terminology."""
    record = builder.build(record_inputs(patient.chart_on(now)))
    return {
        **patient.summary(now),
        "labs": {analyte: _series(record, analyte, builder) for analyte in CHART_ANALYTES},
        "courses": [
            {
                "id": course.id,
                "label": course.label,
                "status": course.status,
                "classes": sorted(course.classes),
                "start": _iso(course.start),
                "end": _iso(course.end),
            }
            for course in record.courses
        ],
        "conditions": [
            {
                "label": condition.concept.label(),
                "active": condition.active,
                "onset": _iso(condition.onset),
            }
            for condition in record.conditions
        ],
        "skipped": record.skipped_summary() if record.skipped else None,
    }


def record_inputs(chart: Chart) -> RecordInputs:
    def of(kind: str) -> list[dict[str, Any]]:
        return [r for r in chart.resources if r.get("resourceType") == kind]

    patients = of("Patient")
    return RecordInputs(
        patient_id=chart.patient_id,
        patient=patients[0] if patients else None,
        observations=of("Observation"),
        medication_requests=of("MedicationRequest"),
        medications=of("Medication"),
        conditions=of("Condition"),
    )


def _series(record: PatientRecord, analyte: str, builder: RecordBuilder) -> dict[str, Any]:
    config = builder.analytes.get(analyte)
    return {
        "unit": config.unit if config else "",
        "default_uln": float(config.default_uln) if config and config.default_uln else None,
        "points": [
            {
                "id": result.id,
                "when": _iso(result.when),
                "value": float(result.value),
                "uln": float(result.uln) if result.uln is not None else None,
                "uln_source": result.uln_source,
                "reported": f"{result.reported_value} {result.reported_unit}",
            }
            for result in record.lab_series(analyte)
            if result.when is not None
        ],
    }


def display_name(patient: Mapping[str, Any]) -> str:
    for name in patient.get("name") or ():
        given = " ".join(name.get("given") or ())
        text = name.get("text") or f"{given} {name.get('family', '')}".strip()
        if text:
            return str(text)
    return str(patient.get("id", "unnamed"))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
