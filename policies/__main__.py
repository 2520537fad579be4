"""The CrossGuard policy pack: ``pulumi preview --policy-pack policies/``.

Every policy comes from a rule in ``policies/rules/``; see ``policies/crossguard.py`` for how Pulumi's
arguments are adapted. Constructing ``PolicyPack`` starts the analyzer's gRPC server and blocks, which
is why it lives here and nowhere importable.
"""

import sys
from pathlib import Path

# Pulumi runs this file from policies/: make the project's packages importable without an install.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.crossguard import PACK_NAME, policies

PolicyPack(
    name=PACK_NAME,
    policies=policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="agentstage: AI-infrastructure rules (identity, secrets, network, observability, cost, AI, Kubernetes).",
    provider="azure",
    tags=["ai", "agents", "azure", "kubernetes"],
)
