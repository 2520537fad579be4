"""Azure Functions host: the runtime's FastAPI app behind one ASGI function.

Anonymous at the platform level because the runtime authenticates every request itself (API key or JWT);
host.json sets an empty route prefix so the API's paths are the app's paths. Later triggers (queues) are
added to this same ``app`` object: the Python v2 model allows one function app per module.
"""

import azure.functions as func
from agent_runtime.api import create_app

app = func.AsgiFunctionApp(app=create_app(), http_auth_level=func.AuthLevel.ANONYMOUS)
