"""Redaction of secrets and PII from anything the runtime logs, traces, stores or answers.

One compiled alternation per :class:`Redactor`, so a text is scanned once whatever the number of
patterns. Candidates whose shape is ambiguous are confirmed before they are replaced: card numbers by the
Luhn checksum, IBANs by ISO 13616's mod-97 check, so order numbers and long integers survive. Secrets the
runtime itself holds (its API keys) are redacted by value, so even a key without a known shape never leaks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar, cast

T = TypeVar("T")

_DIGIT_RUN = re.compile(r"\d[\d ().-]{6,}\d")
"""Card numbers, phone numbers and IBANs all hold a run of 8+ digits and separators."""


def _has(*needles: str) -> Callable[[str], bool]:
    return lambda text: any(needle in text for needle in needles)


@dataclass(frozen=True)
class Pattern:
    """A kind of sensitive data: its regex, and a cheap test that must pass before the regex runs.

    The guard is what keeps redaction off the latency budget: substring tests run in C at memory speed,
    so ordinary text costs a few microseconds however many patterns there are.
    """

    kind: str
    regex: re.Pattern[str]
    guard: Callable[[str], bool] = lambda text: True
    check: Callable[[str], bool] = lambda text: True


SECRET_PATTERNS = (
    Pattern(
        "private_key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
        _has("PRIVATE KEY"),
    ),
    Pattern(
        "jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), _has("eyJ")
    ),
    Pattern(
        "api_key",
        re.compile(
            r"\b(?:sk|pk|rk)-(?:live-|test-|proj-)?[A-Za-z0-9_-]{16,}|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
            r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAIza[A-Za-z0-9_-]{35}"
        ),
        _has("sk-", "pk-", "rk-", "AKIA", "ASIA", "gh", "xox", "AIza"),
    ),
    Pattern(
        "connection_secret",
        re.compile(r"(?i)\b(?:AccountKey|SharedAccessKey|Password|Pwd)=[^;\s\"']{6,}"),
        _has("="),
    ),
    Pattern("bearer", re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/-]{20,}=*"), _has("earer", "EARER")),
)
PII_PATTERNS = (
    Pattern("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), _has("@")),
    Pattern(
        "card",
        re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"),
        lambda text: _DIGIT_RUN.search(text) is not None,
        lambda text: luhn_valid(re.sub(r"\D", "", text)),
    ),
    Pattern(
        "iban",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
        lambda text: _DIGIT_RUN.search(text) is not None,
        lambda text: iban_valid(text),
    ),
    Pattern(
        "phone",
        re.compile(r"(?<![\w+])\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}(?!\w)"),
        lambda text: _DIGIT_RUN.search(text) is not None,
    ),
)


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


class Redactor:
    """Finds and replaces secrets (always), PII (when enabled), configured patterns and known values."""

    def __init__(
        self, *, pii: bool = True, patterns: Iterable[str] = (), secrets: Iterable[str] = ()
    ) -> None:
        configured = [
            Pattern(f"sensitive_{index}", re.compile(regex)) for index, regex in enumerate(patterns)
        ]
        literals = sorted({secret for secret in secrets if len(secret) >= 6}, key=len, reverse=True)
        known = [Pattern("known_secret", re.compile("|".join(map(re.escape, literals))))] if literals else []
        self._patterns = (*SECRET_PATTERNS, *known, *configured, *(PII_PATTERNS if pii else ()))

    def findings(self, text: str) -> list[Finding]:
        """Every confirmed match, in order of position; of overlapping matches the earliest wins."""
        found = sorted(
            (
                Finding(pattern.kind, match.start(), match.end())
                for pattern in self._patterns
                if pattern.guard(text)
                for match in pattern.regex.finditer(text)
                if pattern.check(match.group())
            ),
            key=lambda finding: (finding.start, -finding.end),
        )
        kept: list[Finding] = []
        for finding in found:
            if not kept or finding.start >= kept[-1].end:
                kept.append(finding)
        return kept

    def redact(self, text: str) -> str:
        """``text`` with each finding replaced by ``[REDACTED:<kind>]``; fast path when nothing matches."""
        findings = self.findings(text)
        if not findings:
            return text
        parts: list[str] = []
        position = 0
        for finding in findings:
            parts.append(text[position : finding.start])
            parts.append(f"[REDACTED:{finding.kind}]")
            position = finding.end
        parts.append(text[position:])
        return "".join(parts)

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
    "agentstage.genai",
    "agentstage.tools",
    "agentstage.usage",
    "openai",
    "openai._base_client",
    "httpx",
)
"""Loggers whose records may carry request content: the runtime's own, and the SDK's (whose DEBUG records
print whole requests). A logger's filters see only records logged on that very logger, hence the list."""


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, redacted, before any handler formats it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor.redact(message)
        if redacted is not message:
            record.msg, record.args = redacted, None
        return True


def install_log_redaction(redactor: Redactor) -> None:
    """Redact every record of :data:`REDACTED_LOGGERS` with ``redactor`` (replacing an earlier one)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        for existing in [f for f in logger.filters if isinstance(f, RedactingFilter)]:
            logger.removeFilter(existing)
        logger.addFilter(RedactingFilter(redactor))
