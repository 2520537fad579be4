"""The neutral core every other layer stands on: the stack-file model and loader, the resource graph,
the offline plan engine with a mock profile per cloud, and the errors they raise.

The command line (``agentstage``), the policies, the cost estimate and the blueprints import this
package; it imports none of them (``tests/test_layers.py`` keeps it so).
"""
