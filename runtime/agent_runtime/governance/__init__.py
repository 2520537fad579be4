"""Governance of model and tool use: budgets and quotas, model routing, guardrails and redaction."""
