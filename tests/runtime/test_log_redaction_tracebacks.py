"""Log redaction covers a record's traceback and stack as it covers its message: an exception's text (a driver
echoing its connection string, a client echoing a URL with a key) and the source lines of its stack reach
no handler in clear, whatever formatter the handler uses; the exception's type and stack stay readable."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import queue
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from runtime_helpers import API_KEYS, SCRIPT, USER_KEY, Runtime, RuntimeFactory, make_registry

from agent_runtime.api import create_app
from agent_runtime.governance.redaction import REDACTED_LOGGERS, RedactingFilter, Redactor
from agent_runtime.settings import Settings
from agent_runtime.testing import Rule, Script, ScriptedModelServer, ScriptedToolCall, ServerThread
from agent_runtime.tools import ToolContext

KNOWN = "hunter2-runtime-secret"
SECRETS = {
    "connection_secret": "Password=Sup3rS3cret!",
    "email": "ada.lovelace@example.com",
    "api_key": "sk-proj-Q7vN2mXk9LpR4tW8yZ1aB3cD5eF6gH",
    "bearer": "Bearer abcdefghijklmnopqrstuvwxyz0123456789",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlX2hlcmU",
    "card": "4111 1111 1111 1111",
    "known_secret": KNOWN,
}
"""A value of each kind the redactor knows, as an exception's text might carry it."""
FAILURE = "connect failed: " + "; ".join(SECRETS.values())


class JsonFormatter(logging.Formatter):
    """Formats ``record.exc_info`` itself, ignoring ``exc_text``, as JSON log formatters do."""

    def format(self, record: logging.LogRecord) -> str:
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return json.dumps(
            {"message": record.getMessage(), "exception": exception, "stack": record.stack_info}
        )


Logged = tuple[logging.Logger, Callable[[], list[str]]]


@pytest.fixture
def logger() -> Iterator[Logged]:
    """A logger redacted as the runtime's are, and what its three real handlers made of its records: the
    standard formatter's text, a JSON formatter's (which formats the exception itself) and the messages a
    queue handler put on its queue (formatted in the logging thread, for a listener elsewhere)."""
    log = logging.getLogger("agentstage.test.tracebacks")
    log.propagate = False
    log.addFilter(RedactingFilter(Redactor(secrets=[KNOWN])))
    plain, as_json = io.StringIO(), io.StringIO()
    json_handler = logging.StreamHandler(as_json)
    json_handler.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    for handler in (logging.StreamHandler(plain), json_handler, logging.handlers.QueueHandler(records)):
        log.addHandler(handler)

    def written() -> list[str]:
        queued = [records.get_nowait().getMessage() for _ in range(records.qsize())]
        decoded = [" ".join(map(str, json.loads(line).values())) for line in as_json.getvalue().splitlines()]
        return [plain.getvalue(), "\n".join(decoded), "\n".join(queued)]

    yield log, written
    log.handlers.clear()
    log.filters.clear()


def connect(account: str) -> None:
    raise RuntimeError(f"{FAILURE}; account {account}")


def logged_failure(log: logging.Logger) -> None:
    try:
        try:
            connect(SECRETS["email"])
        except RuntimeError as cause:
            raise ConnectionError(f"retry failed too: {SECRETS['api_key']}") from cause
    except ConnectionError:
        log.exception("tool %s failed", "lookup")


def leaked(text: str, known: bool = True) -> list[str]:
    """The kinds of :data:`SECRETS` found in ``text`` (the known secret only when the redactor knows it)."""
    return [kind for kind, value in SECRETS.items() if value in text and (known or kind != "known_secret")]


def test_a_traceback_is_redacted_for_every_handler_and_stays_readable(logger: Logged) -> None:
    log, written = logger
    logged_failure(log)
    for text in written():
        assert leaked(text) == [], text
        assert [kind for kind in SECRETS if f"[REDACTED:{kind}]" not in text] == [], text
        for readable in (
            "Traceback (most recent call last)",
            "in connect",
            "RuntimeError",
            "ConnectionError",
        ):
            assert readable in text, (readable, text)


def test_a_record_keeps_the_exception_type_but_no_formattable_original(logger: Logged) -> None:
    log, _ = logger
    captured: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = captured.append  # type: ignore[method-assign]
    log.addHandler(capture)
    logged_failure(log)
    [record] = captured
    assert record.exc_info is not None and record.exc_info[0] is ConnectionError
    assert record.exc_info[2] is None, "no frames to format, nor their locals"
    assert leaked(str(record.exc_info[1])) == [] and "ConnectionError" in str(record.exc_info[1])


def test_an_exception_passed_as_exc_info_and_a_stack_are_redacted(logger: Logged) -> None:
    """``exc_info=error`` is how the API logs a bug; ``stack_info`` prints the source lines of the stack."""
    log, written = logger
    error = ValueError(f"bad input from {SECRETS['email']} with {SECRETS['jwt']}")
    log.error("unhandled error in %s %s", "GET", "/broken", exc_info=error)
    log.warning("about to connect", stack_info=True)  # Server=db;Password=Sup3rS3cret!
    for text in written():
        assert "ValueError: bad input from [REDACTED:email] with [REDACTED:jwt]" in text, text
        assert "Stack (most recent call last)" in text and "[REDACTED:connection_secret]" in text, text
        assert leaked(text) == [], text


def test_every_logger_the_runtime_redacts_redacts_tracebacks(runtime_factory: RuntimeFactory) -> None:
    runtime_factory()  # installs the runtime's redaction on its loggers
    for name in REDACTED_LOGGERS:
        output = io.StringIO()
        handler = logging.StreamHandler(output)
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        try:
            try:
                connect(SECRETS["email"])
            except RuntimeError:
                logger.exception("failed")
        finally:
            logger.removeHandler(handler)
        assert leaked(output.getvalue(), known=False) == [], (name, output.getvalue())
        assert "RuntimeError: connect failed" in output.getvalue(), name


# Over HTTP: a custom tool fails with a secret in its exception, and a route has a bug.


class LookupArgs(BaseModel):
    account: str


async def lookup(args: LookupArgs, ctx: ToolContext) -> str:
    """Look an account up."""
    connect(args.account)
    return "found"


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime whose model, asked ``lookup <account>``, calls the failing lookup tool."""
    rule = Rule(
        pattern=r"^lookup (?P<account>\S+)$",
        tool_calls=(ScriptedToolCall(name="lookup", arguments={"account": r"\g<account>"}),),
    )
    registry = make_registry()
    registry.tool()(lookup)
    with ScriptedModelServer(Script([rule, *SCRIPT.rules])) as model:
        settings = Settings(
            llm_endpoint=model.base_url,
            llm_auth="none",
            llm_max_retries=0,
            sqlite_path=str(tmp_path / "state.db"),
            agents=json.dumps([{"name": "accounts", "tools": ["lookup"]}]),
            api_keys=json.dumps(API_KEYS),
            deadline_seconds=10,
        )
        runtime = Runtime(ServerThread(create_app(settings, registry=registry)).start(), settings)
        yield runtime
        runtime.close()


@pytest.fixture
def runtime_log() -> Iterator[io.StringIO]:
    """What the runtime's tool and API loggers write through a standard handler."""
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("agentstage.tools", "agentstage.api")]
    for logger in loggers:
        logger.addHandler(handler)
    yield output
    for logger in loggers:
        logger.removeHandler(handler)


def test_a_failing_tools_traceback_reaches_the_log_redacted(
    accounts: Runtime, runtime_log: io.StringIO
) -> None:
    response = accounts.invoke("accounts", f"lookup {SECRETS['email']}", key=USER_KEY)
    assert response.status_code == 200
    log = runtime_log.getvalue()
    assert "agentstage.tools ERROR tool lookup failed" in log
    assert "Traceback (most recent call last)" in log and "RuntimeError: connect failed" in log
    assert leaked(log, known=False) == []
    assert "[REDACTED:connection_secret]" in log and "[REDACTED:email]" in log


def test_a_bugs_traceback_reaches_the_log_redacted(
    runtime_factory: RuntimeFactory, runtime_log: io.StringIO
) -> None:
    runtime = runtime_factory()

    async def broken() -> None:
        raise RuntimeError(f"{FAILURE}; account {SECRETS['email']}")

    runtime.server._server.config.app.add_api_route("/broken", broken)
    with socket.create_connection((runtime.server.host, runtime.server.port), timeout=10) as connection:
        connection.sendall(b"GET /broken HTTP/1.1\r\nHost: runtime\r\nConnection: close\r\n\r\n")
        assert connection.recv(65536).startswith(b"HTTP/1.1 500 ")
    log = runtime_log.getvalue()
    assert "agentstage.api ERROR unhandled error in GET /broken" in log and "RuntimeError" in log
    assert leaked(log, known=False) == []
