"""Kubernetes manifests, offline: strict Kubernetes JSON schemas (kubernetes-validate ships
them), probes, read-only rules, settings that exist, a Secret of placeholders only, and the
rules ConfigMap in step with cards/ and loadable as a configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cds_service.common.settings import ENV_PREFIX, Settings
from cds_service.config.configuration import load_configuration
from cds_service.rules.registry import REGISTRY
from tests.conftest import REPO

KUBE = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30"  # the oldest release the manifests must work on
NEWEST = kubernetes_validate.utils.latest_version()  # the newest schemas the package bundles
MANIFESTS = sorted(p for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")
SETTING_NAMES = {ENV_PREFIX + name.upper() for name in Settings.__dataclass_fields__} - {
    "CDS_EXTRA"
}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for path in MANIFESTS:
        for doc in documents(path):
            found.setdefault(doc["kind"], []).append(doc)
    return found


def named(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in by_kind()[kind] if d["metadata"]["name"] == name)


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, NEWEST])
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path: Path, version: str) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_can_fail() -> None:
    service = documents(KUBE / "service.yaml")[0]
    service["spec"]["portz"] = service["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == [p.name for p in MANIFESTS]


def test_every_kind_the_issue_asks_for_is_there() -> None:
    kinds = by_kind()
    for kind in (
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
        "NetworkPolicy",
    ):
        assert kind in kinds, kind


def test_deployment_probes_security_and_read_only_rules() -> None:
    pod = named("Deployment", "aih-cds")["spec"]["template"]["spec"]
    cds = next(c for c in pod["containers"] if c["name"] == "cds")
    assert cds["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert cds["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert cds["securityContext"]["readOnlyRootFilesystem"] is True
    mount = next(m for m in cds["volumeMounts"] if m["name"] == "cards")
    assert mount == {"name": "cards", "mountPath": "/etc/aih-cds/cards", "readOnly": True}
    assert {"name": "CDS_DATABASE_MIGRATE", "value": "off"} in cds["env"]
    assert pod["initContainers"][0]["command"] == ["aih-cds", "db", "upgrade"]
    selector = named("Service", "aih-cds")["spec"]["selector"]
    assert selector.items() <= pod_labels().items()
    assert named("PodDisruptionBudget", "aih-cds")["spec"]["selector"]["matchLabels"] == selector


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = named("Deployment", "aih-cds")["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def test_settings_and_secret_name_only_real_settings() -> None:
    settings = named("ConfigMap", "aih-cds-settings")["data"]
    secret = named("Secret", "aih-cds-secrets")["stringData"]
    assert set(settings) | set(secret) <= SETTING_NAMES
    Settings.load(environ={**settings, **secret})  # values the service accepts


def test_secret_template_holds_placeholders_only() -> None:
    secret = named("Secret", "aih-cds-secrets")["stringData"]
    assert "REPLACE_ME" in secret["CDS_DATABASE_URL"]
    assert secret["CDS_PATIENT_HASH_KEY"] == "REPLACE_ME"
    text = (KUBE / "secret.yaml").read_text()
    assert "PRIVATE KEY" not in text
    assert '"d":' not in text  # no private JWK parts


def test_rules_configmap_is_in_step_with_cards() -> None:
    script = REPO / "scripts" / "render-cards-configmap.py"
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_mounted_rules_load_as_a_configuration(tmp_path: Path) -> None:
    """Lay the ConfigMap out as the kubelet would (items: key -> path) and load it."""
    data = named("ConfigMap", "aih-cds-cards")["data"]
    pod = named("Deployment", "aih-cds")["spec"]["template"]["spec"]
    items = next(v for v in pod["volumes"] if v["name"] == "cards")["configMap"]["items"]
    assert sorted(i["key"] for i in items) == sorted(data)
    for item in items:
        target = tmp_path / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[item["key"]])
    bundled = load_configuration(REPO / "cards", REGISTRY)
    mounted = load_configuration(tmp_path, REGISTRY)
    assert sorted(mounted.rules) == sorted(bundled.rules)
    assert sorted(mounted.services) == sorted(bundled.services)
