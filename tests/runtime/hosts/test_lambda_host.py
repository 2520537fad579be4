"""The AWS Lambda host: Mangum over the same app, driven with an API Gateway HTTP API (v2) event."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

RUNTIME = Path(__file__).resolve().parents[3] / "runtime"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENTSTAGE_SQLITE_PATH", str(tmp_path_factory.mktemp("state") / "state.db"))
        spec = importlib.util.spec_from_file_location("lambda_handler", RUNTIME / "lambda_handler.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


def _http_api_event(method: str, path: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc123.execute-api.eu-west-1.amazonaws.com", "accept": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "test",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }


def _context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="agent", aws_request_id="req-1", get_remaining_time_in_millis=lambda: 30_000
    )


def test_healthz_answers_200(host: ModuleType) -> None:
    response = host.handler(_http_api_event("GET", "/healthz"), _context())
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"]) == {"status": "ok"}


def test_runtime_auth_applies(host: ModuleType) -> None:
    response = host.handler(_http_api_event("GET", "/v1/agents"), _context())
    assert response["statusCode"] == 401, response
