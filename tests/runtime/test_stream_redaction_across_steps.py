"""A run's model calls are each governed as strictly as one alone, over real HTTP.

Redaction: a streamed run shows the caller the text of every model call (the words before a tool call, then
the answer). A character reaches the caller in clear only if :meth:`Guardrails.check_output` leaves it in
clear both in its own call's text alone and in the run's whole text: whatever the previous call's text ended
with (a pattern that starts with ``\\b`` or a lookbehind must still match at the start of a call), whatever
the next call's text opens with (one that ends with ``\\b`` or a lookahead must still match at the end of a
call), wherever a secret is split between calls, and however the model chunks the text; ``block`` mode ends
the stream with its error event before the value. A text of one part is redacted exactly as ``check_output``
redacts it.

Budgets: an agent's ``token_budget`` counts each call at what the budget ledger settles it at (the gateway
charges it once, for both): a call whose model reports no usage, or less than the call certainly spent, at
the tokens it held, so such a model is stopped as an honest one is; a call retried after an attempt began
answering, at every attempt's charge.
"""

from __future__ import annotations

import json
import math
import random
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from raw_model import Answer, RawModel, chunk, tool_chunk, usage_chunk
from runtime_helpers import API_KEYS, USER_KEY, Runtime, RuntimeFactory

from agent_runtime.errors import OutputBlocked
from agent_runtime.governance.budget_rules import prompt_bytes
from agent_runtime.governance.guardrails import Guardrails, HeuristicScreen, OutputStream
from agent_runtime.governance.redaction import Redactor
from agent_runtime.governance.setup import build_redactor

HEADERS = {"Authorization": f"Bearer {USER_KEY}"}
CONFIGURED = r"\bEMP-\d{6}\b"
"""A configured ``sensitive_patterns`` entry, anchored as most are."""

SECRETS = {
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
    "-----END RSA PRIVATE KEY-----",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "openai_key": "sk-proj-Q7vN2mXk9LpR4tW8yZ1aB3cD5eF6gH",
    "aws_key_id": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "slack_token": "xoxb-123456789012-abcdefABCDEF",
    "google_key": "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "connection_secret": "Password=hunter2hunter2",
    "bearer": "Bearer abcdefghijklmnopqrstuvwxyz0123456789",
    "known_secret": USER_KEY,
    "configured": "EMP-123456",
    "email": "ada.lovelace@example.com",
    "card": "4111 1111 1111 1111",
    "iban": "GB82WEST12345698765432",
    "phone": "+1 415 555 0100",
}
"""A value of every kind the redactor knows, each alternative of the ``api_key`` pattern apart."""

ENDINGS = {
    "letter": "Let me check",
    "digit": "Let me check 7",
    "underscore": "see item_",
    "hyphen": "see ref-",
    "plus": "dial +",
    "punctuation": "Let me check:",
    "space": "Let me check ",
    "none": "",
}
"""Text a value may follow, by how it ends: a word character defeats a leading ``\\b``, a digit or ``-``
the card's lookbehind, a word character or ``+`` the phone's."""
OPENINGS = {
    "letter": "xyz, done.",
    "digit": "7 more.",
    "underscore": "_tail",
    "hyphen": "-tail",
    "plus": "+tail",
    "punctuation": ": done.",
    "space": " done.",
    "none": "",
}
"""Text a value may precede, by how it opens: a word character defeats a trailing ``\\b`` or ``(?!\\w)``,
a digit or ``-`` the card's lookahead."""
SPLITS = (1 / 3, 1 / 2, 4 / 5)
"""Where a value is split between two calls: its first part a match alone or not, depending on the kind."""


@dataclass(frozen=True)
class Case:
    """A run whose first model call streams ``words`` with a calculator call, and whose second, once the
    tool answered, streams ``answer``; ``value`` sits at the seam of the two, or across it."""

    name: str
    value: str
    words: str
    answer: str


CASES = [
    *(
        Case(f"{kind} after {e}", value, ENDINGS[e], f"{value} it is.")
        for kind, value in SECRETS.items()
        for e in ENDINGS
    ),
    *(
        Case(f"{kind} before {o}", value, f"I found {value}", OPENINGS[o])
        for kind, value in SECRETS.items()
        for o in OPENINGS
    ),
    *(
        Case(f"{kind} split at {at:.2f}", value, f"I found {value[:cut]}", f"{value[cut:]} it is.")
        for kind, value in SECRETS.items()
        for at in SPLITS
        if (cut := round(len(value) * at))
    ),
]
CHUNK_SIZES = range(1, 8)
CALCULATOR = '{"expression": "1+1"}'


def redacted_in_parts(redactor: Redactor, parts: Sequence[str]) -> str:
    """What may leave of a text in ``parts``: each character a finding of the whole text or of its own part
    alone covers is hidden; overlapping findings are one ``[REDACTED:<kind>]``, named after the first."""
    whole, spans, offset = "".join(parts), [], 0
    for text, at in [(whole, 0), *((part, sum(map(len, parts[:i]))) for i, part in enumerate(parts))]:
        spans += [(f.start + at, f.end + at, f.kind) for f in redactor.findings(text)]
    merged: list[list[Any]] = []
    for start, end, kind in sorted(spans, key=lambda span: (span[0], -span[1])):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, kind])
    out = []
    for start, end, kind in merged:
        out += [whole[offset:start], f"[REDACTED:{kind}]"]
        offset = end
    return "".join([*out, whole[offset:]])


def _pieces(text: str, size: int) -> list[dict[str, Any]]:
    return [chunk(text[i : i + size]) for i in range(0, len(text), size)]


class TwoStepModel:
    """Answers ``case N`` (streamed, both calls in pieces of ``size``) as :data:`CASES` ``[N]`` says."""

    def __init__(self) -> None:
        self.size = 1
        self.server = RawModel(self._answer)

    def _answer(self, body: dict[str, Any]) -> Answer:
        case = CASES[int(body["messages"][1]["content"].removeprefix("case "))]
        if any(message["role"] == "tool" for message in body["messages"]):
            return [*_pieces(case.answer, self.size), chunk(finish="stop"), "[DONE]"]
        words = _pieces(case.words, self.size)
        return [*words, tool_chunk(CALCULATOR, "c1", "calculator"), chunk(finish="tool_calls"), "[DONE]"]


@pytest.fixture(scope="module")
def two_step_model() -> Iterator[TwoStepModel]:
    model = TwoStepModel()
    yield model
    model.server.close()


def _events(runtime: Runtime, case: int) -> tuple[int, list[str]]:
    """The status and the ``data`` of every server-sent event of case ``case``, streamed."""
    body = {"model": "restricted", "stream": True, "messages": [{"role": "user", "content": f"case {case}"}]}
    with runtime.http.stream("POST", "/v1/chat/completions", json=body, headers=HEADERS) as response:
        text = response.read().decode()
    return response.status_code, [
        b.removeprefix("data: ") for b in text.split("\n\n") if b.startswith("data: ")
    ]


def _text(events: list[str]) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for event in events
        if event.startswith("{")
        for choice in json.loads(event).get("choices") or ()
    )


def _start(runtime_factory: RuntimeFactory, model: TwoStepModel, size: int, leakage: str) -> Runtime:
    model.size = size
    return runtime_factory(
        llm_endpoint=model.server.url, output_leakage=leakage, sensitive_patterns=json.dumps([CONFIGURED])
    )


@pytest.mark.parametrize("size", CHUNK_SIZES)
def test_each_call_of_a_streamed_run_is_redacted_as_alone_and_as_the_whole_text(
    runtime_factory: RuntimeFactory, two_step_model: TwoStepModel, size: int
) -> None:
    """Every kind of value, opening a call after every kind of ending of the previous call's text, ending a
    call before every kind of opening of the next, and split between two calls: what either reading hides
    is hidden, so no value reaches the caller whole, and the answer shows no more than the plain one."""
    runtime = _start(runtime_factory, two_step_model, size, "redact")
    redactor = build_redactor(runtime.settings)
    wrong = []
    for index, case in enumerate(CASES):
        status, events = _events(runtime, index)
        streamed = _text(events)
        if (
            status != 200
            or events[-1:] != ["[DONE]"]
            or streamed != redacted_in_parts(redactor, [case.words, case.answer])
            or case.value in streamed
        ):
            wrong.append(f"{case.name}: {status} {streamed!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("size", CHUNK_SIZES)
def test_block_mode_refuses_a_value_in_any_call_of_a_streamed_run(
    runtime_factory: RuntimeFactory, two_step_model: TwoStepModel, size: int
) -> None:
    """The stream ends with the ``output_blocked`` event (as a plain answer holding the value is refused with
    502 ``output_blocked``), having sent at most the text before the value."""
    runtime = _start(runtime_factory, two_step_model, size, "block")
    wrong = []
    for index, case in enumerate(CASES):
        status, events = _events(runtime, index)
        last = json.loads(events[-1]) if events and events[-1].startswith("{") else {}
        refused = last.get("error", {}).get("code") == "output_blocked" and "[DONE]" not in events
        whole, sent = case.words + case.answer, _text(events)
        if status != 200 or not refused or not whole.startswith(sent) or len(sent) > whole.index(case.value):
            wrong.append(f"{case.name}: {status} {sent!r} {events[-1:]}")
    assert not wrong, "\n".join(wrong)


FILLERS = ("Let me check", " ", "7", "_", "-", "+", ": ", "x", "\n", "Password=", "Bearer ", "sk-", "@", ".")
REDACTOR = Redactor(patterns=[CONFIGURED], secrets=API_KEYS)


def _guardrails(leakage: Literal["redact", "block", "off"]) -> Guardrails:
    """Guardrails in ``leakage`` mode: a run's stream guard is theirs (:meth:`Guardrails.output_stream`)."""
    return Guardrails(
        mode="off", heuristics=HeuristicScreen(), shield=None, leakage=leakage, redactor=REDACTOR
    )


def _random_parts(seed: int) -> list[str]:
    """One to four parts of values, pieces of values and fillers, joined at random and cut where two meet
    (mostly: where anchors decide) or anywhere (where a value is split); a part may be empty."""
    rng = random.Random(seed)
    choices = [*SECRETS.values(), *FILLERS]
    words = [
        word[: rng.randint(1, len(word))] if rng.random() < 0.2 else word
        for word in rng.choices(choices, k=rng.randint(1, 8))
    ]
    text, joints = "".join(words), [sum(map(len, words[:i])) for i in range(len(words) + 1)]
    seams = sorted(
        rng.choice(joints) if rng.random() < 0.7 else rng.randint(0, len(text))
        for _ in range(rng.randint(0, 3))
    )
    return [text[a:b] for a, b in zip([0, *seams], [*seams, len(text)], strict=True)]


def _stream_in_parts(output: OutputStream, parts: list[str], sizes: list[int], sent: list[str]) -> None:
    """Feed ``parts`` to ``output`` in pieces of ``sizes`` (cycled), ending each part; what it releases is
    appended to ``sent`` as it comes (a refusal leaves what came before)."""
    turn = 0
    for index, part in enumerate(parts):
        if index:
            output.end_part()
        position = 0
        while position < len(part):
            size = sizes[turn % len(sizes)]
            sent.append(output.feed(part[position : position + size]))
            position, turn = position + size, turn + 1
    sent.append(output.finish())


def _random_case(case: int) -> tuple[list[str], list[int]]:
    rng = random.Random(-case)
    return _random_parts(case), [rng.randint(1, 7) for _ in range(rng.randint(1, 5))]


@pytest.mark.parametrize("seed", range(0, 1500, 100))
def test_a_text_in_parts_streams_as_redacted_in_parts_whatever_the_chunking(seed: int) -> None:
    """The stream guard a run gets from its guardrails, against :func:`redacted_in_parts`: random texts of
    values, their pieces and the endings that defeat anchors, cut into parts and chunks at random; one part
    is ``check_output``."""
    guard = _guardrails("redact")
    for case in range(seed, seed + 100):
        (parts, sizes), sent = _random_case(case), []
        _stream_in_parts(guard.output_stream(), parts, sizes, sent)
        assert "".join(sent) == redacted_in_parts(REDACTOR, parts), (case, parts, sizes)
        if len(parts) == 1:
            assert "".join(sent) == guard.check_output(parts[0])


@pytest.mark.parametrize("seed", range(0, 1500, 100))
def test_block_mode_stops_a_text_in_parts_before_the_first_value_either_reading_finds(seed: int) -> None:
    guard = _guardrails("block")
    for case in range(seed, seed + 100):
        (parts, sizes), sent = _random_case(case), []
        whole, first = "".join(parts), redacted_in_parts(REDACTOR, parts).find("[REDACTED:")
        try:
            _stream_in_parts(guard.output_stream(), parts, sizes, sent)
        except OutputBlocked:
            assert first >= 0 and whole.startswith("".join(sent)), (case, parts, sizes)
            assert len("".join(sent)) <= first, (case, parts, sizes)
        else:
            assert first < 0 and "".join(sent) == whole, (case, parts, sizes)


def test_with_leakage_off_a_text_in_parts_streams_as_it_came() -> None:
    guard = _guardrails("off")
    for case in range(100):
        (parts, sizes), sent = _random_case(case), []
        _stream_in_parts(guard.output_stream(), parts, sizes, sent)
        assert "".join(sent) == "".join(parts), (case, parts, sizes)


AGENT = {
    "name": "calc",
    "instructions": "x",
    "tools": ["calculator"],
    "token_budget": 600,
    "max_steps": 6,
    "max_output_tokens": 500,
}
"""An agent whose budget one call's hold (its prompt's bytes plus 500 output tokens) exceeds."""
BUDGET = [{"name": "tokens", "scope": "caller", "match": "*", "window_seconds": 86400, "tokens": 10**6}]
UNTRUSTED_USAGE: dict[str, dict[str, int] | None] = {
    "missing": None,
    "zero": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    "one": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1},
    "understated": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    "below the floor": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
}
"""Usage a model reports for a call that read two messages and a tool schema and wrote a tool call: none,
or less than those four pieces, each at least a token whatever the tokenizer."""


class ToolCallingModel:
    """Answers every call with a calculator call (after ``answer_after`` calls: with text), reporting
    ``usage`` (``usage_of`` a call by its number, from 1, where it is given); keeps the requests it got.
    A streamed request whose number is in ``cut`` gets the tool call's pieces and no end: a failed attempt
    that began answering."""

    def __init__(self) -> None:
        self.usage: dict[str, int] | None = None
        self.usage_of: dict[int, dict[str, int] | None] = {}
        self.cut: set[int] = set()
        self.answer_after = 100
        self.requests: list[dict[str, Any]] = []
        self.server = RawModel(self._answer)

    def _answer(self, body: dict[str, Any]) -> Answer:
        self.requests.append(body)
        number = len(self.requests)
        done, usage = number > self.answer_after, self.usage_of.get(number, self.usage)
        if body.get("stream"):
            tail = [usage_chunk(**usage)] if usage is not None else []
            if done:
                return [chunk("Two."), chunk(finish="stop"), *tail, "[DONE]"]
            call = tool_chunk(CALCULATOR, f"c{number}", "calculator")
            return [call] if number in self.cut else [call, chunk(finish="tool_calls"), *tail, "[DONE]"]
        calls = [
            {"id": f"c{len(self.requests)}", "type": "function"}
            | {"function": {"name": "calculator", "arguments": CALCULATOR}}
        ]
        message = (
            {"role": "assistant", "content": "Two."} if done else {"role": "assistant", "tool_calls": calls}
        )
        choice = {"index": 0, "message": message, "finish_reason": "stop" if done else "tool_calls"}
        return {"model": "m", "choices": [choice]} | ({"usage": usage} if usage is not None else {})


@pytest.fixture
def tool_calling(runtime_factory: RuntimeFactory) -> Iterator[tuple[ToolCallingModel, Runtime]]:
    """The model and a runtime on it that retries a failed call once."""
    model = ToolCallingModel()
    runtime = runtime_factory(
        llm_endpoint=model.server.url,
        agents=json.dumps([AGENT]),
        budgets=json.dumps(BUDGET),
        llm_max_retries=1,
        retry_base_seconds=0.01,
    )
    yield model, runtime
    model.server.close()


def _run(runtime: Runtime, stream: bool) -> tuple[int, dict[str, Any]]:
    """A run of the agent, streamed or not: its status and its JSON body (a refused stream's body is one)."""
    body = {"model": "calc", "stream": stream, "messages": [{"role": "user", "content": "add"}]}
    with runtime.http.stream("POST", "/v1/chat/completions", json=body, headers=HEADERS) as response:
        text = response.read().decode()
    if stream and response.status_code == 200:
        return 200, {"events": text}
    return response.status_code, json.loads(text)


def _ledger_tokens(runtime: Runtime) -> int:
    """The tokens the budget ledger charged, once every hold is settled."""
    query = "SELECT coalesce(sum(spent), 0), (SELECT count(*) FROM budget_holds) FROM budget_ledger"
    stop = time.monotonic() + 5
    while True:
        with sqlite3.connect(runtime.settings.sqlite_path) as db:
            spent, holds = db.execute(query).fetchone()
        if not holds or time.monotonic() > stop:
            return int(spent)
        time.sleep(0.02)


def _held(request: dict[str, Any], runtime: Runtime) -> int:
    """The tokens a call of this request holds: its prompt's bytes (messages and tool schemas, as sent)
    over ``budget_prompt_bytes_per_token``, plus the agent's ``max_output_tokens``."""
    size = prompt_bytes(request["messages"], len(json.dumps(request["tools"]).encode()))
    return math.ceil(size / runtime.settings.budget_prompt_bytes_per_token) + AGENT["max_output_tokens"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("usage", UNTRUSTED_USAGE, ids=list(UNTRUSTED_USAGE))
def test_a_call_of_untrusted_usage_counts_its_hold_against_the_run_budget(
    tool_calling: tuple[ToolCallingModel, Runtime], usage: str, stream: bool
) -> None:
    """The run stops after the first call (429 ``budget_exceeded``), as it does when the model reports
    honestly, having counted the tokens the call held, which is what the ledger charged for it."""
    model, runtime = tool_calling
    model.usage = UNTRUSTED_USAGE[usage]
    status, body = _run(runtime, stream)
    assert len(model.requests) == 1, f"the run went on for {len(model.requests)} model calls: {body}"
    assert _counted(status, body) == _held(model.requests[0], runtime) == _ledger_tokens(runtime)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("usage", UNTRUSTED_USAGE, ids=list(UNTRUSTED_USAGE))
def test_the_run_budget_counts_each_call_at_what_the_ledger_charged_for_it(
    tool_calling: tuple[ToolCallingModel, Runtime], usage: str, stream: bool
) -> None:
    """Two calls reported honestly, then one whose usage is not believed: the run counts the first two as
    reported and the third at its hold, and stops there, having counted exactly what the ledger charged."""
    model, runtime = tool_calling
    model.usage = {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100}
    model.usage_of[3] = UNTRUSTED_USAGE[usage]
    status, body = _run(runtime, stream)
    assert len(model.requests) == 3, f"the run made {len(model.requests)} model calls: {body}"
    assert _counted(status, body) == 200 + _held(model.requests[2], runtime) == _ledger_tokens(runtime)


def test_an_attempt_that_began_answering_before_its_retry_counts_against_the_run_budget(
    tool_calling: tuple[ToolCallingModel, Runtime],
) -> None:
    """The first attempt streams a tool call's pieces and is cut (the provider billed them: its hold), the
    retry answers with a tool call of 10 tokens: the run counts both, as the ledger does, and stops."""
    model, runtime = tool_calling
    model.usage, model.cut = {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}, {1}
    status, body = _run(runtime, True)
    assert len(model.requests) == 2, f"the run made {len(model.requests)} model calls: {body}"
    assert _counted(status, body) == _held(model.requests[0], runtime) + 10 == _ledger_tokens(runtime)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_without_budgets_a_call_of_unknown_usage_still_counts_its_hold(
    runtime_factory: RuntimeFactory, stream: bool
) -> None:
    """No ledger settles anything, yet the gateway charges the call as it would settle it: the run budget
    does not depend on budgets being configured."""
    model = ToolCallingModel()
    try:
        runtime = runtime_factory(llm_endpoint=model.server.url, agents=json.dumps([AGENT]))
        status, body = _run(runtime, stream)
    finally:
        model.server.close()
    assert len(model.requests) == 1, f"the run went on for {len(model.requests)} model calls: {body}"
    assert _counted(status, body) == _held(model.requests[0], runtime)


def _counted(status: int, body: dict[str, Any]) -> int:
    """The tokens a run refused with 429 ``budget_exceeded`` had counted against its ``token_budget``."""
    assert status == 429 and body["error"]["code"] == "budget_exceeded", body
    counted = re.search(r"spent (\d+) tokens", body["error"]["message"])
    assert counted is not None, body
    return int(counted.group(1))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_small_honest_usage_is_counted_as_reported(
    tool_calling: tuple[ToolCallingModel, Runtime], stream: bool
) -> None:
    """Usage no less than the pieces a call read and wrote is the model's count, not replaced by the
    hold: three calls of 10 tokens fit the budget of 600, and the answer reports them."""
    model, runtime = tool_calling
    model.usage, model.answer_after = {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}, 2
    status, body = _run(runtime, stream)
    assert status == 200 and len(model.requests) == 3, body
    if not stream:
        assert body["choices"][0]["message"]["content"] == "Two." and body["usage"]["total_tokens"] == 30
    assert _ledger_tokens(runtime) == 30
