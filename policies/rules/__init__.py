"""agentstage's policy rules: plain Python over the resource graph.

``evaluate(graph, context)`` runs every rule that applies to the stack's stage and returns one
:class:`policies.findings.Finding` per rule and resource; ``apply_waivers`` then applies the stack
file's waivers. The same rule objects are packaged for Pulumi CrossGuard in ``policies/crossguard.py``.
"""

from policies.rules.context import StackContext, load_context
from policies.rules.evaluate import evaluate, stack_resource
from policies.rules.model import STACK_TYPE, Rule, Stage, Verdict
from policies.rules.registry import all_rules, rule_by_id
from policies.rules.waivers import WaiverResult, apply_waivers

__all__ = [
    "STACK_TYPE",
    "Rule",
    "StackContext",
    "Stage",
    "Verdict",
    "WaiverResult",
    "all_rules",
    "apply_waivers",
    "evaluate",
    "load_context",
    "rule_by_id",
    "stack_resource",
]
