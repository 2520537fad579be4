"""Redaction of secrets and PII from anything the runtime logs, traces, stores or answers.

Each kind of data is one compiled pattern behind a cheap guard, so ordinary text costs a few substring
tests. Patterns run on the ``regex`` engine, the one the streaming guard's probes run on: two engines
disagree on details (which characters are ``\\w``, so where ``\\b`` holds), and a stream must be redacted
exactly as the whole text would be. Candidates whose shape is ambiguous are confirmed before they are
replaced: card numbers by the Luhn checksum, IBANs by ISO 13616's mod-97 check, so order numbers and long
integers survive. Secrets the runtime itself holds (its API keys) are redacted by value, so even a key
without a known shape never leaks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

import regex

from agent_runtime.errors import ConfigurationError
from agent_runtime.governance.pattern_shape import UnstreamablePattern, probe, shape_of
from agent_runtime.settings_contract import env_name

if TYPE_CHECKING:
    from agent_runtime.memory.base import Message

T = TypeVar("T")

_DIGIT_RUN = regex.compile(r"\d[\d ().-]{6,}\d")
"""Card and phone numbers hold a run of 8+ digits and separators."""
_IBAN_HEAD = regex.compile(r"[A-Z]{2}\d{2}")
_BEARER = regex.compile(r"(?i)bearer")


def _has(*needles: str) -> Callable[[str], bool]:
    return lambda text: any(needle in text for needle in needles)


def _found(hint: regex.Pattern[str]) -> Callable[[str], bool]:
    return lambda text: hint.search(text) is not None


@dataclass(frozen=True)
class Pattern:
    """A kind of sensitive data: its compiled pattern, and a cheap test that must pass before it runs.

    The guard is what keeps redaction off the latency budget: substring tests run in C at memory speed,
    so ordinary text costs a few microseconds however many patterns there are. A guard must hold on every
    text the pattern matches (it is implied by the match), so skipping a pattern never changes a result,
    whatever else the text holds — the streaming guard relies on that.

    Every repeat is bounded: a streamed answer is held back while text could still become a match, and the
    bound is the most that can be (see :mod:`agent_runtime.governance.pattern_shape`). The bounds sit well
    above the longest real value of each kind (an RSA-8192 PEM key, a JWT with a large claim set).
    """

    kind: str
    compiled: regex.Pattern[str]
    guard: Callable[[str], bool] = lambda text: True
    check: Callable[[str], bool] = lambda text: True


_B64URL = "[A-Za-z0-9_-]"
SECRET_PATTERNS = (
    Pattern(
        "private_key",
        # Up to the first END line, as a lazy repeat would match; spelled as a tempered repeat because the
        # regex engine's partial matching cannot tell when a lazy repeat followed by a literal gives up.
        regex.compile(
            r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----(?:(?!-----END)[\s\S]){0,16384}"
            r"-----END [A-Z ]{0,40}PRIVATE KEY-----"
        ),
        _has("PRIVATE KEY"),
    ),
    Pattern(
        "jwt",
        regex.compile(rf"\beyJ{_B64URL}{{8,2048}}\.eyJ{_B64URL}{{8,16384}}\.{_B64URL}{{8,2048}}"),
        _has("eyJ"),
    ),
    Pattern(
        "api_key",
        regex.compile(
            r"\b(?:sk|pk|rk)-(?:live-|test-|proj-)?[A-Za-z0-9_-]{16,1024}|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
            r"|\bgh[pousr]_[A-Za-z0-9]{30,255}|\bxox[abprs]-[A-Za-z0-9-]{10,255}|\bAIza[A-Za-z0-9_-]{35}"
        ),
        _has("sk-", "pk-", "rk-", "AKIA", "ASIA", "gh", "xox", "AIza"),
    ),
    Pattern(
        "connection_secret",
        regex.compile(r"(?i)\b(?:AccountKey|SharedAccessKey|Password|Pwd)=[^;\s\"']{6,1024}"),
        _has("="),
    ),
    Pattern(
        "bearer",
        regex.compile(r"(?i)\bBearer\s{1,16}[A-Za-z0-9._~+/-]{20,16384}={0,3}"),
        _found(_BEARER),
    ),
)
PII_PATTERNS = (
    Pattern(
        "email",
        regex.compile(r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}\b"),
        _has("@"),
    ),
    Pattern(
        "card",
        regex.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"),
        _found(_DIGIT_RUN),
        lambda text: luhn_valid(regex.sub(r"\D", "", text)),
    ),
    Pattern(
        "iban",
        regex.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
        _found(_IBAN_HEAD),
        lambda text: iban_valid(text),
    ),
    Pattern(
        "phone",
        regex.compile(r"(?<![\w+])\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}(?!\w)"),
        _found(_DIGIT_RUN),
    ),
)


def _configured(index: int, source: str) -> regex.Pattern[str]:
    """A configured pattern, compiled and checked streamable, or a :class:`ConfigurationError` saying why."""
    field = env_name("sensitive_patterns")
    try:
        shape_of(source)
        compiled = regex.compile(source)
        probe(source)
    except (re.error, regex.error) as error:
        raise ConfigurationError(
            f"{field} entry {index} ({source!r}) is not a valid regular expression (Python re syntax): {error}",
            field=field,
        ) from None
    except UnstreamablePattern as why:
        raise ConfigurationError(
            f"{field} entry {index} ({source!r}) cannot be used: {why}", field=field
        ) from None
    return compiled


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers; the result mod 97 is 1."""
    compact = text.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


@dataclass(frozen=True)
class Finding:
    """A span of text a pattern matched (and its checksum confirmed)."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class Candidate(Finding):
    """A span a pattern matched; ``confirmed`` when its checksum (if it has one) holds too."""

    confirmed: bool = True


def resolve(findings: Iterable[Finding]) -> list[Finding]:
    """``findings`` without overlaps, in order of position: of overlapping ones the earliest (then the
    longest) wins, as a reader would see them."""
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda finding: (finding.start, -finding.end)):
        if not kept or finding.start >= kept[-1].end:
            kept.append(Finding(finding.kind, finding.start, finding.end))
    return kept


class Redactor:
    """Finds and replaces secrets (always), PII (when enabled), configured patterns and known values.

    Configured patterns are checked here, once, so a pattern that cannot work fails the start with
    :class:`~agent_runtime.errors.ConfigurationError` instead of a request: it must compile, and it must
    be checkable while an answer streams (bounded, never empty, not anchored to the end of the text).
    """

    def __init__(
        self, *, pii: bool = True, patterns: Iterable[str] = (), secrets: Iterable[str] = ()
    ) -> None:
        configured = [
            Pattern(f"sensitive_{index}", _configured(index, source)) for index, source in enumerate(patterns)
        ]
        literals = sorted({secret for secret in secrets if len(secret) >= 6}, key=len, reverse=True)
        known = (
            [Pattern("known_secret", regex.compile("|".join(map(regex.escape, literals))))]
            if literals
            else []
        )
        self.patterns: tuple[Pattern, ...] = (
            *SECRET_PATTERNS,
            *known,
            *configured,
            *(PII_PATTERNS if pii else ()),
        )

    def findings(self, text: str) -> list[Finding]:
        """Every confirmed match, in order of position; of overlapping matches the earliest (then the
        longest) wins."""
        return resolve(candidate for candidate in self.candidates(text) if candidate.confirmed)

    def candidates(self, text: str, start: int = 0) -> list[Candidate]:
        """Every match of every pattern that starts at or after ``start``, confirmed or not; characters
        before ``start`` are context for lookbehinds. Each pattern is scanned as ``finditer`` scans: the
        next match is searched from the end of the previous one."""
        return [
            Candidate(pattern.kind, match.start(), match.end(), pattern.check(match.group()))
            for pattern in self.patterns
            if pattern.guard(text)
            for match in pattern.compiled.finditer(text, start)
        ]

    def replace(self, text: str, findings: Sequence[Finding], start: int = 0, stop: int | None = None) -> str:
        """``text[start:stop]`` with each of ``findings`` (all inside it) replaced by ``[REDACTED:<kind>]``."""
        end = len(text) if stop is None else stop
        parts: list[str] = []
        position = start
        for finding in findings:
            parts.append(text[position : finding.start])
            parts.append(f"[REDACTED:{finding.kind}]")
            position = finding.end
        parts.append(text[position:end])
        return "".join(parts)

    def redact(self, text: str) -> str:
        """``text`` with each finding replaced by ``[REDACTED:<kind>]``; fast path when nothing matches."""
        findings = self.findings(text)
        return self.replace(text, findings) if findings else text

    def redact_messages(self, messages: Sequence[Message]) -> list[Message]:
        """Chat messages to store, redacted: every value but the role, a name of the chat format (``user``,
        ``assistant`` ...) that the request models fix and that carries no data."""
        return [
            {key: value if key == "role" else self.redact_value(value) for key, value in message.items()}
            for message in messages
        ]

    def redact_value(self, value: T) -> T:
        """Strings, and strings nested in lists and dicts (messages, tool arguments), redacted; same shape."""
        if isinstance(value, str):
            return cast(T, self.redact(value))
        if isinstance(value, dict):
            return cast(T, {key: self.redact_value(item) for key, item in value.items()})
        if isinstance(value, list | tuple):
            return cast(T, [self.redact_value(item) for item in value])
        return value


REDACTED_LOGGERS = (
    "agentstage.api",
    "agentstage.audit",
    "agentstage.budgets",
    "agentstage.genai",
    "agentstage.tools",
    "agentstage.usage",
    "openai",
    "openai._base_client",
    "httpx",
)
"""Loggers whose records may carry request content: the runtime's own, and the SDK's (whose DEBUG records
print whole requests). A logger's filters see only records logged on that very logger, hence the list."""


class RedactedTraceback(Exception):
    """Stands in for a logged exception once :class:`RedactingFilter` has redacted its traceback: its text is
    the whole traceback, redacted. A handler that formats ``record.exc_info`` itself, instead of using the
    record's ``exc_text`` as :class:`logging.Formatter` does (JSON formatters, exporters), prints that."""


_TRACEBACKS = logging.Formatter()
"""Formats a record's exception as every standard formatter does: stack, chained causes, type and message."""


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, traceback and stack, redacted, before any handler formats them."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor.redact(message)
        if redacted is not message:
            record.msg, record.args = redacted, None
        self._redact_traceback(record)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True

    def _redact_traceback(self, record: logging.LogRecord) -> None:
        """Format the record's exception now, into ``exc_text`` (which formatters print instead of formatting
        ``exc_info`` again), and redact it: an exception's message, and the source lines of its stack, carry
        whatever the failing code held (a driver echoes its connection string). ``exc_info`` keeps the
        exception's type, for handlers that read it, but its value becomes a :class:`RedactedTraceback` and
        its traceback goes: no handler can format the original, or its frames' locals."""
        if record.exc_info:
            record.exc_text = self.redactor.redact(
                record.exc_text or _TRACEBACKS.formatException(record.exc_info)
            )
            record.exc_info = (record.exc_info[0], RedactedTraceback(record.exc_text), None)
        elif record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)


def install_log_redaction(redactor: Redactor) -> None:
    """Redact every record of :data:`REDACTED_LOGGERS` with ``redactor`` (replacing an earlier one)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        for existing in [f for f in logger.filters if isinstance(f, RedactingFilter)]:
            logger.removeFilter(existing)
        logger.addFilter(RedactingFilter(redactor))
