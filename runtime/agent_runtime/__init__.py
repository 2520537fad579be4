"""agentstage's reference agent runtime: configured agents behind an HTTP API, stateless, on any host.

Entry points: :func:`agent_runtime.api.create_app` (what every host serves), :mod:`agent_runtime.settings`
(the environment contract), :mod:`agent_runtime.tools` (registering custom tools) and
:mod:`agent_runtime.testing` (the scripted model server for offline runs and tests). This module imports
nothing, so infrastructure code can import the settings without loading the web stack.
"""
