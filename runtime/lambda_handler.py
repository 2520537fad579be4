"""AWS Lambda host: the runtime's FastAPI app behind Mangum (API Gateway HTTP API, ALB, function URLs).

Configure the function's handler as ``lambda_handler.handler``.
"""

from agent_runtime.api import create_app
from mangum import Mangum

handler = Mangum(create_app())
