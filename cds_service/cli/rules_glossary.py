"""What each rule parameter means and its unit, for ``aih-cds rules show``.

The allowed range is not written here: it is read from the parameter schema's validators, so it
is always the range the loader enforces. A parameter missing from this glossary is shown with
"(no description)" and a test fails, so a new parameter gets its line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, fields, validate

DAYS, FRACTION, ULN = "days", "fraction (0-1)", "x upper limit of normal"
VALUESET, CLASS, TERMS = "value set id", "drug class id", "words (case-insensitive)"

# name -> (meaning, unit); names shared by several rules mean the same thing in each.
GLOSSARY: Mapping[str, tuple[str, str]] = {
    # mmf-teratogenicity
    "age_min_years": ("youngest age treated as of reproductive potential", "years"),
    "age_max_years": ("age from which a patient is no longer of reproductive potential", "years"),
    "unknown_sex_may_be_pregnant": ("unknown or other sex may be pregnant", "yes/no"),
    "male_card": ("show the contraception card for male patients", "yes/no"),
    "male_age_min_years": ("youngest male patient given the contraception card", "years"),
    "pregnancy_lookback_days": ("a pregnancy recorded this recently counts", DAYS),
    "negative_test_window_days": ("a negative pregnancy test this recent is enough", DAYS),
    "continuing_therapy_window_days": (
        "mycophenolate active or ended this recently is continuing therapy, not a new start",
        DAYS,
    ),
    "hcg_positive_at_or_above": ("hCG at or above this is a positive test", "mIU/mL"),
    "hcg_negative_below": ("hCG below this is a negative test", "mIU/mL"),
    "pregnancy_status_valueset": ("observations that record pregnancy status", VALUESET),
    "pregnant_answer_valueset": ("answers that mean pregnant", VALUESET),
    "not_pregnant_answer_valueset": ("answers that mean not pregnant", VALUESET),
    "pregnancy_condition_valueset": ("conditions that mean pregnant", VALUESET),
    "not_of_reproductive_potential_valueset": (
        "conditions that rule out reproductive potential",
        VALUESET,
    ),
    # treatment response (aih-nonresponse, aih-insufficient-response, aih-refractory)
    "aih_condition_valueset": ("conditions that mean autoimmune hepatitis", VALUESET),
    "first_line_class": ("first-line treatment whose start is day 0 (T0)", CLASS),
    "baseline_window_days": (
        "the baseline ALT is the latest in this many days before the start",
        DAYS,
    ),
    "order_trigger_classes": ("orders of these classes trigger the card", CLASS),
    "pr_decrease_fraction": ("ALT fall from baseline that counts as partial response", FRACTION),
    "cr_sustained_results": ("consecutive normal ALT results that make complete response", "count"),
    "metabolite_drug_class": ("class whose metabolite results are shown", CLASS),
    "metabolite_valuesets": ("thiopurine metabolite results shown on the card", VALUESET),
    "metabolite_lookback_days": ("metabolite results this recent are shown", DAYS),
    "alt_results_shown": ("most recent ALT results listed on the card", "count"),
    "assess_from_days": ("the card is possible from T0 plus this many days", DAYS),
    "assess_until_days": ("the card is possible until T0 plus this many days", DAYS),
    "week4_target_days": ("day after T0 of the week-4 ALT", DAYS),
    "week4_window_start_days": ("the week-4 ALT is measured from this day after T0", DAYS),
    "week4_window_end_days": ("... until this day after T0", DAYS),
    "max_remaining_fraction": ("week-4 ALT above this share of baseline is non-response", FRACTION),
    "measured_after_days": ("only results after T0 plus this many days count", DAYS),
    "include_ast": ("read AST as well as ALT when present", "yes/no"),
    "steroid_classes": ("classes that count as steroids", CLASS),
    "immunosuppressant_classes": ("classes that count as the steroid-sparing agent", CLASS),
    "min_combination_days": ("steroid with the agent this long before refractoriness", DAYS),
    "alt_uln_multiple": ("each recent ALT at or above this multiple of its ULN", ULN),
    "results_required": ("most recent ALT results that must meet the multiple", "count"),
    "results_after_days": ("those results are all measured after T0 plus this many days", DAYS),
    # anti-tnf-liver-injury
    "drug_class": ("the drug class the rule watches", CLASS),
    "course_recency_days": ("courses active now or ended this recently count", DAYS),
    "critical_alt_multiple": ("any recent ALT at or above this is critical", ULN),
    "recent_window_days": ("ALT results this recent are read", DAYS),
    "combined_alt_multiple": ("ALT at or above this, with bilirubin, is critical", ULN),
    "combined_bilirubin_multiple": ("total bilirubin above this, with ALT, is critical", ULN),
    "combined_max_days_apart": ("ALT and bilirubin measured at most this far apart", DAYS),
    "warning_alt_multiple": ("latest ALT at or above this is a warning", ULN),
    "persistent_min_days_apart": ("two raised ALT results this far apart are persistent", DAYS),
    "removal_hooks": ("hooks whose card offers to remove the order", "hook names"),
    # thiopurine-metabolites
    "lookback_days": ("a 6-TGN result this recent is read", DAYS),
    "mmp_pairing_days": ("a 6-MMP this close to the 6-TGN is read with it", DAYS),
    "tgn_valueset": ("6-TGN results", VALUESET),
    "mmp_valueset": ("6-MMP results", VALUESET),
    "allopurinol_class": ("the allopurinol class", CLASS),
    "units": ("thresholds per reporting unit and its spellings", "per unit"),
    # tpmt-before-thiopurine
    "established_window_days": ("a thiopurine course this recent means no card", DAYS),
    "absent_activity_fraction": (
        "TPMT activity below this share of the lab's lower limit is absent",
        FRACTION,
    ),
    "activity_valueset": ("TPMT activity results", VALUESET),
    "genotype_phenotype_valuesets": ("TPMT/NUDT15 genotype or phenotype results", VALUESET),
    "poor_terms": ("words that mean poor metabolizer", TERMS),
    "intermediate_terms": ("words that mean intermediate metabolizer", TERMS),
    "normal_terms": ("words that mean normal metabolizer", TERMS),
    # allopurinol-thiopurine
    "reduced_dose_ceilings": ("highest thiopurine dose per day that counts as reduced", "mg/day"),
    # budesonide-cirrhosis
    "cirrhosis_valueset": ("conditions that mean cirrhosis", VALUESET),
    "oral_codes": ("product codes that mean oral budesonide", "codes"),
    "non_systemic_terms": ("words that mean inhaled, nasal, topical or rectal", TERMS),
    "oral_terms": ("words that mean oral", TERMS),
    # clinical revision 2 and the reading policy
    "allele_function": ("star allele -> function, per gene (CPIC allele-function table)", "table"),
    "valueset_genes": ("which gene each TPMT/NUDT15 value set reports", "value set id -> gene"),
    "combined_intermediate_min_percent": (
        "starting dose, lower bound, for TPMT and NUDT15 both intermediate",
        "% of the usual dose",
    ),
    "combined_intermediate_max_percent": (
        "starting dose, upper bound, for TPMT and NUDT15 both intermediate",
        "% of the usual dose",
    ),
    "child_age_years": ("below this age the weight-based dose ceiling applies", "years"),
    "contraindicated_classes": ("inhibitors contraindicated with a thiopurine", CLASS),
    "contraindicated_with_class": ("the thiopurine class they are contraindicated with", CLASS),
    "inhibitor_classes": ("xanthine-oxidase inhibitor classes that need a dose reduction", CLASS),
    "weight_analyte": ("analyte that records body weight", "analyte id"),
    "weight_lookback_days": ("a body weight this recent is used for the dose ceiling", DAYS),
    "counts_as_cirrhosis_valuesets": ("conditions that count like cirrhosis", VALUESET),
    "decompensated_valuesets": ("conditions that mean decompensated liver disease", VALUESET),
    "cr_igg_within_days": (
        "IgG this close to a normal ALT documents a complete response",
        DAYS,
    ),
    "current_within_days": ("an episode last taken this recently is current", DAYS),
    "episode_gap_days": ("a longer gap between courses starts a new treatment episode", DAYS),
    "exclude_other_indications": (
        "leave out courses ordered for another condition",
        "yes/no",
    ),
    "non_systemic_codes": ("product codes of non-systemic forms (not AIH treatment)", "codes"),
    "recent_days": ("results older than this are history only", DAYS),
    "relapse_alt_uln_multiple": ("ALT above this after a complete response is a relapse", ULN),
    "not_after_complete_response": (
        "no steroid-refractory card after a documented complete response",
        "yes/no",
    ),
    "withdraw_on_later_response": (
        "withdraw non-response once a later ALT shows the fall",
        "yes/no",
    ),
    "withdraw_remaining_fraction": (
        "a later ALT at or below this fraction of baseline withdraws non-response",
        FRACTION,
    ),
    "exposure_gap_days": ("anti-TNF orders this close chain into one course", DAYS),
    "falling_alt_no_card": ("no card while ALT falls below a raised baseline", "yes/no"),
    "raised_baseline_relative": (
        "judge ALT as multiples of a baseline above ULN (pre-existing liver disease)",
        "yes/no",
    ),
    "not_of_reproductive_potential_procedure_valueset": (
        "procedures that rule out reproductive potential (hysterectomy, oophorectomy)",
        VALUESET,
    ),
    "postpartum_note_days": ("after a pregnancy ends, add the breastfeeding note this long", DAYS),
    "pregnancy_ended_valueset": (
        "conditions that record a delivery or pregnancy outcome",
        VALUESET,
    ),
    "remission_recent_days": ("ALT and IgG this recent decide biochemical remission", DAYS),
    "child_below_years": ("below this age the card adds the paediatric note", "years"),
    "checks": ("the safety checks named when a draft's drug cannot be identified", "text"),
}
NO_DESCRIPTION = ("(no description)", "")


def described_parameters(schema: Schema, values: Mapping[str, Any]) -> dict[str, Any]:
    """Each parameter as ``{value, meaning, unit, allowed}`` (allowed omitted when unbounded)."""
    described: dict[str, Any] = {}
    for name, value in values.items():
        meaning, unit = GLOSSARY.get(name, NO_DESCRIPTION)
        entry: dict[str, Any] = {"value": value, "meaning": meaning}
        if unit:
            entry["unit"] = unit
        field = schema.fields.get(name)
        allowed = allowed_range(field) if field is not None else None
        if allowed:
            entry["allowed"] = allowed
        described[name] = entry
    return described


def allowed_range(field: fields.Field[Any]) -> str | None:
    """The schema's own bounds as text: ``1 to 365``, ``at least 1``, ``0 to below 1``."""
    parts = []
    for validator in _validators(field):
        if isinstance(validator, validate.Range):
            parts.append(_range_text(validator))
        elif isinstance(validator, validate.OneOf):
            parts.append("one of " + ", ".join(str(c) for c in validator.choices))
        elif isinstance(validator, validate.Length) and validator.min:
            parts.append(f"at least {validator.min} item(s)")
    return "; ".join(parts) or None


def _validators(field: fields.Field[Any]) -> list[Any]:
    found = list(field.validators or ())
    if isinstance(field, fields.List):
        found += list(field.inner.validators or ())
    return found


def _range_text(rule: validate.Range) -> str:
    low, high = rule.min, rule.max
    low_text = None if low is None else f"{'' if rule.min_inclusive else 'above '}{low}"
    high_text = None if high is None else f"{'' if rule.max_inclusive else 'below '}{high}"
    if low_text is not None and high_text is not None:
        return f"{low_text} to {high_text}"
    if low_text is not None:
        return f"at least {low}" if rule.min_inclusive else f"above {low}"
    return f"at most {high}" if rule.max_inclusive else f"below {high}"
