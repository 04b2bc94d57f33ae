"""Every implemented rule, by id (rule files in cards/rules/ must name one of these)."""

from __future__ import annotations

from collections.abc import Mapping

from cds_service.rules import mmf_teratogenicity
from cds_service.rules.base import RuleSpec

REGISTRY: Mapping[str, RuleSpec] = {spec.id: spec for spec in (mmf_teratogenicity.SPEC,)}
