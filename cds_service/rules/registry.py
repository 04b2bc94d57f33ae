"""Every implemented rule, by id (rule files in cards/rules/ must name one of these)."""

from __future__ import annotations

from collections.abc import Mapping

from cds_service.rules import (
    allopurinol_thiopurine,
    anti_tnf_liver_injury,
    budesonide_cirrhosis,
    mmf_teratogenicity,
    thiopurine_metabolites,
    tpmt_before_thiopurine,
    treatment_response,
    unidentified_draft,
)
from cds_service.rules.base import RuleSpec

REGISTRY: Mapping[str, RuleSpec] = {
    spec.id: spec
    for spec in (
        mmf_teratogenicity.SPEC,
        treatment_response.NONRESPONSE_SPEC,
        treatment_response.INSUFFICIENT_SPEC,
        treatment_response.REFRACTORY_SPEC,
        anti_tnf_liver_injury.SPEC,
        thiopurine_metabolites.SPEC,
        tpmt_before_thiopurine.SPEC,
        allopurinol_thiopurine.SPEC,
        budesonide_cirrhosis.SPEC,
        unidentified_draft.SPEC,
    )
}
