"""Reports of ``agentstage check``: one model (:mod:`.model`), four formats (:mod:`.formats`: table, JSON,
SARIF 2.1.0, JUnit XML). Nothing is imported here, so the plan's verdict, which needs the model only,
does not load the writers (JUnit's XML library among them)."""
