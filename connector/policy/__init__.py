"""The ODRL policy engine: parse, evaluate, match, describe. Pure: no HTTP, no database.

validate_policy(dict) -> Policy                  refuse unknown terms (PolicyDefinitionError)
evaluate(Policy, EvaluationContext, Scope) -> Decision
permitted_until(Policy, EvaluationContext, Scope, *, until) -> datetime   when that stops
time_bounds(Policy) -> Policy                     only its dateTime constraints, the rest neutral
offers_match(requested, stored, *, dataset_id) -> OfferMatch
make_agreement(offer, *, agreement_id, target, assigner, assignee, timestamp) -> dict
to_jsonld(Policy) -> dict
describe_policy(dict | Policy) -> str
names_recipients(Policy) -> bool                 offered only to the recipients it names
"""

from __future__ import annotations

from connector.policy.audience import names_recipients
from connector.policy.context import (
    DATA_PERMIT_CREDENTIAL,
    MEMBERSHIP_CREDENTIAL,
    Decision,
    EvaluationContext,
    Scope,
    VerifiedCredential,
)
from connector.policy.describe import describe_policy
from connector.policy.evaluate import CHECKS, evaluate
from connector.policy.limits import policy_limits
from connector.policy.matching import OfferMatch, offers_match
from connector.policy.model import Constraint, LogicalConstraint, Policy, Rule
from connector.policy.parse import validate_policy
from connector.policy.serialise import make_agreement, to_jsonld
from connector.policy.vocab import (
    DSP_CONTEXT,
    ODRL,
    PHEMS,
    LeftOperand,
    Logic,
    Operator,
    OutputType,
    PolicyType,
    RuleKind,
    expand,
)
from connector.policy.window import permitted_until, time_bounds

__all__ = [
    "CHECKS",
    "DATA_PERMIT_CREDENTIAL",
    "DSP_CONTEXT",
    "MEMBERSHIP_CREDENTIAL",
    "ODRL",
    "PHEMS",
    "Constraint",
    "Decision",
    "EvaluationContext",
    "LeftOperand",
    "Logic",
    "LogicalConstraint",
    "OfferMatch",
    "Operator",
    "OutputType",
    "Policy",
    "PolicyType",
    "Rule",
    "RuleKind",
    "Scope",
    "VerifiedCredential",
    "describe_policy",
    "expand",
    "evaluate",
    "make_agreement",
    "names_recipients",
    "offers_match",
    "permitted_until",
    "policy_limits",
    "time_bounds",
    "to_jsonld",
    "validate_policy",
]
