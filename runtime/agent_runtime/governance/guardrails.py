"""Prompt-injection screening of user input and tool output, and leakage checks of answers.

Screening runs in two layers. Heuristics (shipped, no network) catch the common phrasings of instruction
override, role hijack, prompt exfiltration and tool coercion. A :class:`PromptShield` (optional) adds a
classifier service; :class:`AzurePromptShields` calls Azure AI Content Safety's Prompt Shields with the
managed identity's Entra token. Whatever the screens miss, tool access control still holds: it is enforced
in code (:mod:`agent_runtime.tools.access`), never by the model's good behaviour.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx

from agent_runtime.errors import OutputBlocked, PromptRejected, Unavailable
from agent_runtime.governance.redaction import Redactor
from agent_runtime.governance.stream_redaction import RedactingStream, Release, StreamingRedaction

Source = Literal["user", "tool"]

INJECTION_PATTERNS = (
    (
        r"\b(?:ignore|disregard|forget|override)\b[^.]{0,40}\b(?:previous|prior|above|earlier|all|your|"
        r"system)\b[^.]{0,20}\b(?:instructions?|prompts?|rules|directions|guidelines)\b"
    ),
    r"\byou are (?:now|no longer)\b|\bact as (?:an? )?(?:unrestricted|jailbroken|developer mode)\b",
    (
        r"\b(?:reveal|print|repeat|output|show|leak)\b[^.]{0,40}\b(?:system prompt|instructions|secrets?|"
        r"passwords?|api[ _-]?keys?|credentials)\b"
    ),
    (
        r"\b(?:call|invoke|use|run|execute)\b[^.]{0,20}\b(?:the )?(?:tool|function)\b[^.]{0,40}\b(?:now|"
        r"immediately|instead)\b"
    ),
    r"</?(?:system|assistant|im_start|im_end)>|\[/?INST\]|\bBEGIN (?:SYSTEM|ADMIN) (?:PROMPT|MESSAGE)\b",
    r"\bnew (?:system )?instructions?\s*:",
)
"""Phrasings of instruction override, role hijack, exfiltration, tool coercion and fake role markers, matched
against the text as :func:`_screened_text` gives it (one space between words)."""

_SEPARATORS = re.compile(r"[\s\u180e\u200b-\u200d\u2060-\u2064\ufeff]+")
"""What separates words to a reader: any whitespace (tabs, line breaks, no-break and other Unicode spaces)
and the invisible characters that may stand between words (zero-width space and joiners, word joiner,
invisible operators, byte order mark). An attacker picks whichever a pattern's space does not match."""

TOOL_OUTPUT_WITHHELD = (
    '{"error": {"code": "tool_output_withheld", "message": "the tool returned text that looks like a '
    'prompt injection; it was withheld"}}'
)

PROMPT_SHIELDS_API_VERSION = "2024-09-01"
CONTENT_SAFETY_SCOPE = "https://cognitiveservices.azure.com/.default"


@dataclass(frozen=True)
class Detection:
    """Why a text was judged an injection attempt: which screen, and (for heuristics) the pattern."""

    source: Source
    screen: str
    reason: str


class PromptShield(Protocol):
    """A classifier service screening texts for injection; ``None`` per text means clean."""

    async def screen(self, texts: Sequence[str], source: Source) -> list[str | None]:
        """A reason per text it flags, ``None`` for the clean ones (same order, same length)."""


class HeuristicScreen:
    """Regular-expression heuristics, case-insensitive, compiled once."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        self._regex = re.compile(
            "|".join(f"(?:{p})" for p in (*INJECTION_PATTERNS, *extra_patterns)), re.IGNORECASE
        )

    def reason(self, text: str) -> str | None:
        match = self._regex.search(_screened_text(text))
        return f"matches injection heuristic near {match.group()[:40]!r}" if match else None


def _screened_text(text: str) -> str:
    """``text`` as a model reads it, in the form the heuristics match: a JSON document (a tool's result) as
    its strings, escapes decoded, since the model reads ``\\t`` as a tab and ``\\u00a0`` as a space; then
    each run of :data:`_SEPARATORS` as one space, whatever separates the words."""
    return _SEPARATORS.sub(" ", "\n".join(_json_strings(text)))


def _json_strings(text: str) -> list[str]:
    """The strings (keys and values) of ``text`` when it is a JSON array, object or string, else ``[text]``."""
    if not text.lstrip().startswith(("{", "[", '"')):
        return [text]
    try:
        pending = [json.loads(text)]
    except (ValueError, RecursionError):  # not JSON after all, or nested deeper than the parser goes
        return [text]
    strings: list[str] = []
    while pending:  # a loop, not recursion: the document may be nested almost as deep as the parser goes
        value = pending.pop()
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                pending += (item, key)
        elif isinstance(value, list):
            pending += reversed(value)
    return strings


TokenProvider = Callable[[], Awaitable[str]]


class AzurePromptShields:
    """Azure AI Content Safety ``text:shieldPrompt``: user prompts as ``userPrompt``, tool output as ``documents``.

    Failures of the service are :class:`Unavailable` (503): a screen that cannot answer must not wave input
    through.
    """

    def __init__(self, endpoint: str, http: httpx.AsyncClient, token: TokenProvider) -> None:
        self._url = f"{endpoint.rstrip('/')}/contentsafety/text:shieldPrompt"
        self._http = http
        self._token = token

    async def screen(self, texts: Sequence[str], source: Source) -> list[str | None]:
        body = {"userPrompt": texts[0], "documents": []} if source == "user" else {"documents": list(texts)}
        try:
            response = await self._http.post(
                self._url,
                params={"api-version": PROMPT_SHIELDS_API_VERSION},
                json=body,
                headers={"Authorization": f"Bearer {await self._token()}"},
                timeout=5.0,
            )
            response.raise_for_status()
            result = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise Unavailable(f"Prompt Shields cannot be reached: {type(error).__name__}") from error
        if source == "user":
            attacked = [bool(result.get("userPromptAnalysis", {}).get("attackDetected"))]
        else:
            attacked = [bool(item.get("attackDetected")) for item in result.get("documentsAnalysis", [])]
        attacked += [False] * (len(texts) - len(attacked))  # a short answer flags nothing it left out
        return ["Prompt Shields detected an attack" if hit else None for hit in attacked[: len(texts)]]


class Guardrails:
    """Screens input and tool output, and checks answers for leaked secrets, per the settings."""

    def __init__(
        self,
        *,
        mode: Literal["enforce", "report", "off"],
        heuristics: HeuristicScreen,
        shield: PromptShield | None,
        leakage: Literal["redact", "block", "off"],
        redactor: Redactor,
    ) -> None:
        self._mode = mode
        self._heuristics = heuristics
        self._shield = shield
        self._leakage = leakage
        self.redactor = redactor
        self._streaming = StreamingRedaction(redactor) if leakage != "off" else None

    @property
    def enforcing(self) -> bool:
        return self._mode == "enforce"

    async def screen(self, texts: Sequence[str], source: Source) -> list[Detection | None]:
        """A detection per text (``None`` when clean); empty list when screening is off."""
        if self._mode == "off" or not texts:
            return [None] * len(texts)
        found: list[Detection | None] = [
            Detection(source, "heuristics", reason) if (reason := self._heuristics.reason(text)) else None
            for text in texts
        ]
        if self._shield is not None:
            pending = [i for i, detection in enumerate(found) if detection is None and texts[i]]
            if pending:
                reasons = await self._shield.screen([texts[i] for i in pending], source)
                for index, reason in zip(pending, reasons, strict=True):
                    if reason:
                        found[index] = Detection(source, "prompt_shields", reason)
        return found

    async def check_input(self, text: str) -> Detection | None:
        """Screen the caller's newest text; :class:`PromptRejected` when enforcing and flagged."""
        [detection] = await self.screen([text], "user")
        if detection and self.enforcing:
            raise PromptRejected(f"the input was refused: it {detection.reason}", field="messages")
        return detection

    def check_output(self, text: str) -> str:
        """The answer as it may leave the runtime: unchanged, redacted, or refused (:class:`OutputBlocked`)."""
        if self._leakage == "off":
            return text
        if self._leakage == "block":
            findings = self.redactor.findings(text)
            if findings:
                raise _blocked(finding.kind for finding in findings)
            return text
        return self.redactor.redact(text)

    def output_stream(self) -> OutputStream:
        """A guard for one streamed model answer, with the guarantees of :meth:`check_output`."""
        return OutputStream(self._leakage, self._streaming.stream() if self._streaming else None)


class OutputStream:
    """What of a streamed answer may leave the runtime, piece by piece.

    Whatever the chunk boundaries, the text it releases is exactly what :meth:`Guardrails.check_output`
    returns for the whole answer (``redact``), or a prefix of the answer that ends before its first
    sensitive value, then :class:`OutputBlocked` (``block``): the value itself never leaves. Only the tail
    that could still become a match is held back (see :mod:`agent_runtime.governance.stream_redaction`).
    """

    def __init__(self, leakage: Literal["redact", "block", "off"], stream: RedactingStream | None) -> None:
        self._leakage = leakage
        self._stream = stream

    def feed(self, piece: str) -> str:
        """The text that may be sent now (possibly empty)."""
        return piece if self._stream is None else self._checked(self._stream.feed(piece))

    def finish(self) -> str:
        """The answer is complete: the held tail, checked."""
        return "" if self._stream is None else self._checked(self._stream.finish())

    def _checked(self, release: Release) -> str:
        if release.kinds and self._leakage == "block":
            raise _blocked(release.kinds)
        return release.text


def _blocked(kinds: Iterable[str]) -> OutputBlocked:
    listed = ", ".join(sorted(set(kinds)))
    return OutputBlocked(f"the answer was withheld: it contained sensitive data ({listed})")
