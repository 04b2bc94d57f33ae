"""Patient charts (FHIR Bundles of one patient's resources) -> the hook request an EHR would send.

Used by the golden-scenario builder, ``aih-cds whatif`` and the demo page: each answers a
service's prefetch templates from a chart exactly as a conformant EHR would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.common.settings import PACKAGE_ROOT
from cds_service.config.configuration import ServiceConfig, prefetch_resource_type

# The golden scenarios double as the demo patients and the what-if baseline.
DEFAULT_SCENARIOS_DIR = PACKAGE_ROOT.parent / "fixtures" / "fhir"
ORDER_HOOKS = frozenset({"order-sign", "order-select"})


@dataclass(frozen=True)
class Chart:
    """One patient's resources plus the draft orders being signed or selected."""

    patient_id: str
    resources: tuple[dict[str, Any], ...]
    drafts: tuple[dict[str, Any], ...] = ()
    selections: tuple[str, ...] = ()

    def hook_request(
        self, service: ServiceConfig, *, hook_instance: str, user_id: str
    ) -> dict[str, Any]:
        context: dict[str, Any] = {"userId": user_id, "patientId": self.patient_id}
        if service.hook in ORDER_HOOKS:
            context["draftOrders"] = {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": r} for r in self.drafts],
            }
        if service.hook == "order-select":
            context["selections"] = list(self.selections) or [
                f"{r['resourceType']}/{r['id']}" for r in self.drafts
            ]
        return {
            "hook": service.hook,
            "hookInstance": hook_instance,
            "context": context,
            "prefetch": prefetch_for(service, list(self.resources)),
        }


@dataclass(frozen=True)
class Scenario:
    """A golden scenario directory: scenario.json, bundle.json, draft.json."""

    name: str
    directory: Path
    description: str
    now: str
    service_id: str
    chart: Chart


def bundle_resources(bundle: Any) -> list[dict[str, Any]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return []
    return [
        entry["resource"]
        for entry in bundle.get("entry") or ()
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
    ]


def charts_in_bundle(bundle: Any) -> list[Chart]:
    """One chart per Patient; MedicationRequests with status ``draft`` become draft orders."""
    resources = bundle_resources(bundle)
    charts = []
    for patient in (r for r in resources if r.get("resourceType") == "Patient"):
        patient_id = str(patient.get("id"))
        own = [patient, *(r for r in resources if _subject_id(r) == patient_id)]
        drafts = tuple(r for r in own if _is_draft_order(r))
        chart = tuple(r for r in own if not _is_draft_order(r))
        charts.append(Chart(patient_id, chart, drafts))
    return charts


def load_scenario(directory: Path) -> Scenario:
    scenario = _read(directory / "scenario.json")
    draft = _read(directory / "draft.json")
    resources = bundle_resources(_read(directory / "bundle.json"))
    patient = next(r for r in resources if r.get("resourceType") == "Patient")
    return Scenario(
        name=directory.name,
        directory=directory,
        description=str(scenario.get("description", "")),
        now=str(scenario["now"]),
        service_id=str(scenario["service"]),
        chart=Chart(
            str(patient["id"]),
            tuple(resources),
            tuple(draft.get("draftOrders", ())),
            tuple(draft.get("selections", ())),
        ),
    )


def scenario_dirs(root: Path = DEFAULT_SCENARIOS_DIR) -> list[Path]:
    """Every directory under ``root`` holding a complete scenario, sorted by name."""
    return sorted(
        p.parent
        for p in root.glob("*/scenario.json")
        if (p.parent / "bundle.json").is_file() and (p.parent / "draft.json").is_file()
    )


def searchset(resources: Sequence[dict[str, Any]], included: Sequence[dict[str, Any]]) -> Any:
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    entries += [{"resource": r, "search": {"mode": "include"}} for r in included]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
    }
    if entries:
        bundle["entry"] = entries
    return bundle


def prefetch_for(service: ServiceConfig, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """What a conformant EHR sends for each of the service's prefetch templates."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    prefetch: dict[str, Any] = {}
    for key, template in service.prefetch.items():
        resource_type = prefetch_resource_type(template)
        if resource_type == "Patient":
            patients = by_type.get("Patient", [])
            prefetch[key] = patients[0] if patients else None
            continue
        included: list[dict[str, Any]] = []
        if "_include=MedicationRequest:medication" in template:
            included = by_type.get("Medication", [])
        prefetch[key] = searchset(by_type.get(resource_type, []), included)
    return prefetch


def stable_hook_instance(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:aih-cds:chart:{name}"))


def _subject_id(resource: dict[str, Any]) -> str | None:
    reference = (resource.get("subject") or resource.get("patient") or {}).get("reference")
    return reference.split("/")[-1] if isinstance(reference, str) else None


def _is_draft_order(resource: dict[str, Any]) -> bool:
    return resource.get("resourceType") == "MedicationRequest" and resource.get("status") == "draft"


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
