"""Testing aids for agentstage users: a scripted OpenAI-compatible model server and a loopback server.

Use them in your own agent tests to run the real runtime against a deterministic model, offline::

    from agent_runtime.testing import Rule, Script, ScriptedModelServer, ScriptedToolCall, ServerThread

See :mod:`agent_runtime.testing.server` for an example and :mod:`agent_runtime.testing.script` for
how scripts decide replies and tool calls.
"""

from agent_runtime.testing.anthropic_server import ScriptedAnthropicServer, create_anthropic_app
from agent_runtime.testing.bedrock_server import (
    BedrockCall,
    BedrockServer,
    ScriptedGuardrail,
    StreamInterruption,
)
from agent_runtime.testing.faults import Faults
from agent_runtime.testing.script import Rule, Script, ScriptedToolCall, default_script
from agent_runtime.testing.serve import ServerThread
from agent_runtime.testing.server import ScriptedModelServer, create_model_app, embed

__all__ = [
    "BedrockCall",
    "BedrockServer",
    "Faults",
    "Rule",
    "Script",
    "ScriptedAnthropicServer",
    "ScriptedGuardrail",
    "ScriptedModelServer",
    "ScriptedToolCall",
    "ServerThread",
    "StreamInterruption",
    "create_anthropic_app",
    "create_model_app",
    "default_script",
    "embed",
]
