"""The README's count of shipped rules is the registry's."""

from __future__ import annotations

import re

from core.stacks import PROJECT_DIR
from policies.rules.registry import all_rules


def test_the_readme_states_how_many_rules_ship() -> None:
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"`policies/rules/`, (\d+) rules", readme)
    assert stated is not None, "README: the policy section names the number of rules"
    assert int(stated.group(1)) == len(all_rules())
