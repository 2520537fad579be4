"""A streamed answer is redacted exactly as the whole answer would be, wherever its chunk boundaries fall.

Every planted value is split at every position and under random token-sized chunkings; texts mixing
values, fragments of values and noise are fuzzed; ``block`` mode never releases a value; patterns that
cannot be checked while streaming are refused at start with the reason.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import pytest
from runtime_helpers import PLANTED

from agent_runtime.api import create_app
from agent_runtime.errors import ConfigurationError, OutputBlocked
from agent_runtime.governance.guardrails import Guardrails, HeuristicScreen
from agent_runtime.governance.pattern_shape import guard_boundaries, probe
from agent_runtime.governance.redaction import PII_PATTERNS, SECRET_PATTERNS, Redactor
from agent_runtime.governance.stream_redaction import StreamingRedaction
from agent_runtime.settings import Settings

CUSTOM = "PLANTED-[0-9a-f]{8}"
KNOWN = "hunter2-correct-horse"
VALUES = {
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7q1w2e3r4\nt5y6u7i8o9p0==\n"
    "-----END RSA PRIVATE KEY-----",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU",
    "api_key": PLANTED["api_key"],
    "aws_key_id": PLANTED["aws_key_id"],
    "github_token": PLANTED["github_token"],
    "slack_token": "xoxb-1234567890-abcdefghij",
    "connection_secret": "AccountKey=abc123secret==",
    "bearer": "BeArEr abcdefghijklmnopqrstuvwxyz0123",
    "email": PLANTED["email"],
    "card": PLANTED["card"],
    "iban": "GB82 WEST 1234 5698 7654 32",
    "phone": "+44 20 7946 0958",
    "sensitive_0": "PLANTED-7f3a9c1e",
    "known_secret": KNOWN,
}
KIND = {"aws_key_id": "api_key", "github_token": "api_key", "slack_token": "api_key"}
REDACTOR = Redactor(patterns=[CUSTOM], secrets=[KNOWN])
STREAMING = StreamingRedaction(REDACTOR)


def streamed(text: str, sizes: Iterable[int]) -> str:
    """``text`` fed in pieces of ``sizes`` (cycled as needed), everything released joined."""
    stream, released, position = STREAMING.stream(), [], 0
    sizes = list(sizes)
    while position < len(text):
        size = sizes[len(released) % len(sizes)]
        released.append(stream.feed(text[position : position + size]).text)
        position += size
    return "".join(released) + stream.finish().text


def split_at(text: str, position: int) -> str:
    stream = STREAMING.stream()
    return stream.feed(text[:position]).text + stream.feed(text[position:]).text + stream.finish().text


def chunkings(seed: str, count: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(1, 4) for _ in range(64)] for _ in range(count)]


@pytest.mark.parametrize("name", list(VALUES))
def test_a_value_split_at_every_position_is_redacted_as_in_the_whole_text(name: str) -> None:
    value = VALUES[name]
    text = f"Here it is: {value}. And once more:\n{value}"
    whole = REDACTOR.redact(text)
    assert whole.count(f"[REDACTED:{KIND.get(name, name)}]") == 2 and value not in whole
    for position in range(1, len(text)):
        assert split_at(text, position) == whole, f"split at {position}: {text[:position]!r}"


@pytest.mark.parametrize("name", list(VALUES))
def test_a_value_streamed_in_token_sized_pieces_is_redacted_as_in_the_whole_text(name: str) -> None:
    text = f"Sure - {VALUES[name]} is the value you asked for."
    whole = REDACTOR.redact(text)
    for sizes in chunkings(name, 200):
        assert streamed(text, sizes) == whole, sizes[:12]


def test_texts_of_values_fragments_and_noise_stream_exactly_as_they_redact() -> None:
    """Fragments and near misses (a key one character short, a card failing Luhn, a boundary made by a
    combining mark) are where a stream guard would differ from the whole-text redaction."""
    rng = random.Random(2026)
    values = list(VALUES.values())
    noise = [*" \n.,;:-_=+@()[]'\"/\u0301é٣一\u200cABCxyz0123456789", "sk-", "eyJ", "Bearer ", "AKIA"]
    for _ in range(2500):
        parts = []
        for _ in range(rng.randint(1, 8)):
            value, pick = rng.choice(values), rng.random()
            if pick < 0.3:
                parts.append(value)
            elif pick < 0.5:
                parts.append(value[: rng.randint(1, len(value))])
            elif pick < 0.6:
                parts.append(value[rng.randint(0, len(value) - 1) :])
            else:
                parts.append("".join(rng.choice(noise) for _ in range(rng.randint(1, 6))))
        text = "".join(parts)
        sizes = [rng.randint(1, 4) for _ in range(64)]
        assert streamed(text, sizes) == REDACTOR.redact(text), (text, sizes[:12])


def test_prose_is_released_at_once_but_for_the_word_being_written() -> None:
    text = "the weather in oslo is sunny today, with light wind from the west and a clear evening. " * 3
    for sizes in chunkings("prose", 20):
        stream, received, position = STREAMING.stream(), "", 0
        for size in sizes * 20:
            if position >= len(text):
                break
            received += text[position : position + size]
            position += size
            stream.feed(text[position - size : position])
            trailing_word = len(received) - (max(received.rfind(" "), received.rfind("\n")) + 1)
            assert stream.held <= trailing_word, repr(received[-20:])


def test_an_unterminated_private_key_is_released_once_it_can_no_longer_match() -> None:
    stream = STREAMING.stream()
    stream.feed("-----BEGIN RSA PRIVATE KEY-----\n")
    most = 0
    for _ in range(20_000 // 40):
        stream.feed("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3\n"[:40])
        most = max(most, stream.held)
    assert most <= STREAMING.longest + 1, "held back no more than the longest match"
    assert stream.held < 100, "released once the key could no longer end within its bound"


def _blocking_guard() -> Guardrails:
    return Guardrails(
        mode="off", heuristics=HeuristicScreen(), shield=None, leakage="block", redactor=REDACTOR
    )


@pytest.mark.parametrize("name", ["api_key", "email", "card", "sensitive_0", "private_key"])
def test_block_mode_releases_only_text_before_the_value_and_then_refuses(name: str) -> None:
    value = VALUES[name]
    text = f"All fine so far, and then {value} which must stay in."
    guard = _blocking_guard()
    for sizes in chunkings(f"block-{name}", 100):
        output, sent, position = guard.output_stream(), "", 0
        with pytest.raises(OutputBlocked, match=r"withheld: it contained sensitive data \(\w+\)"):
            for size in sizes * 40:
                piece = text[position : position + size]
                position += size
                sent += output.feed(piece) if piece else output.finish()
        assert text.startswith(sent) and len(sent) <= text.index(value), sent


def test_block_mode_streams_clean_text_unchanged() -> None:
    text = "Nothing sensitive here: 2 + 3 = 5, order 1234 5678, see you at 10:30."
    for sizes in chunkings("clean", 50):
        output, sent, position = _blocking_guard().output_stream(), "", 0
        while position < len(text):
            size = sizes[position % len(sizes)]
            sent += output.feed(text[position : position + size])
            position += size
        assert sent + output.finish() == text


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("secret-.*", "can match text of any length"),
        ("token-[0-9]+", "can match text of any length"),
        ("x?", "can match empty text"),
        ("tok-[0-9]{4}$", "anchors to the end of the text"),
        ("tok-[0-9]{4}\\Z", "anchors to the end of the text"),
        ("[a-z]{1,40000}", "more than the 32768"),
        ("(unclosed", "is not a valid regular expression"),
    ],
)
def test_a_pattern_that_cannot_be_checked_while_streaming_is_refused_at_start(pattern: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match="AGENTSTAGE_SENSITIVE_PATTERNS entry 1") as refused:
        Redactor(patterns=["ok-[0-9]{4}", pattern])
    assert why in str(refused.value) and refused.value.field == "AGENTSTAGE_SENSITIVE_PATTERNS"
    with pytest.raises(ConfigurationError, match=why.replace("(", r"\(")):
        create_app(Settings(sensitive_patterns=[pattern]))


def test_word_boundaries_are_guarded_only_outside_character_classes() -> None:
    assert guard_boundaries(r"[\b]\\b\bx\B") == r"[\b]\\b(?=[\s\S])\bx(?=[\s\S])\B"
    assert guard_boundaries(r"[]\b]\b") == r"[]\b](?=[\s\S])\b", "a leading ] is literal"
    # An attempt that has consumed up to the end and then tests \b is undecided: more text may turn it.
    undecided = probe(r"a-\bxyz").search("so a-", partial=True)
    assert undecided is not None and undecided.start() == 3
    assert probe(r"a-\bxyz").search("so a-q", partial=True).start() == 6, "decided: it cannot match"


@pytest.mark.parametrize("pattern", [*SECRET_PATTERNS, *PII_PATTERNS], ids=lambda p: p.kind)
def test_every_guard_holds_on_what_its_pattern_matches(pattern: object) -> None:
    """A guard that a match does not imply would make the result depend on text elsewhere."""
    matched = [v for v in VALUES.values() if pattern.compiled.search(v)]  # type: ignore[attr-defined]
    assert matched, "every built-in kind has a sample value"
    for value in matched:
        match = pattern.compiled.search(value)  # type: ignore[attr-defined]
        assert pattern.guard(match.group()), (pattern.kind, value)  # type: ignore[attr-defined]


CONSTRUCTS = [
    r"(?i)acct-[0-9]{6}",
    r"(?:foo|foobar)-\d{2,4}",
    r"\bID:\s?[A-Z]{2}\d{3,5}\b",
    r"(?<=pin=)\d{4}",
    r"ref-(\d{3})-\1",
    r"tok_[a-z]{4}(?![a-z])",
    r"x[\s\S]{0,20}?yz",
    r"(?:ab){2,5}c",
]


def test_custom_patterns_of_every_construct_stream_exactly_as_they_redact() -> None:
    """The probe is the regex engine's own partial matching: exercise it on alternation with a shared prefix,
    case-insensitivity, lookbehind, backreferences, lookahead and lazy repeats."""
    redactor = Redactor(pii=False, patterns=CONSTRUCTS)
    streaming = StreamingRedaction(redactor)
    rng = random.Random(7)
    pieces = [
        "acct-",
        "ACCT-",
        "foo",
        "bar",
        "-",
        "ID:",
        " ",
        "AB",
        "pin=",
        "ref-",
        "tok_",
        "x",
        "yz",
        "ab",
        "c",
    ]
    pieces += list("0123456789abcz\n")
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        stream, out, position = streaming.stream(), [], 0
        while position < len(text):
            size = rng.randint(1, 4)
            out.append(stream.feed(text[position : position + size]).text)
            position += size
        assert "".join(out) + stream.finish().text == redactor.redact(text), text


def test_the_readme_states_the_longest_hold_back_of_the_built_in_patterns() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    assert f"({StreamingRedaction(Redactor()).longest:,} characters for the built-in JWT pattern" in readme
