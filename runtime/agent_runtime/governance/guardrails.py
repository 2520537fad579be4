"""Prompt-injection screening of user input and tool output, and leakage checks of answers.

Screening runs in two layers. Heuristics (shipped, no network) catch the common phrasings of instruction
override, role hijack, prompt exfiltration and tool coercion, in each way a model may read a text (invisible
characters, combining marks, look-alike letters, compatibility forms and encodings seen through: see
:func:`_readings`) and across the results of one turn. A :class:`PromptShield` (optional) adds a
classifier service; :class:`AzurePromptShields` calls Azure AI Content Safety's Prompt Shields with the
managed identity's Entra token. Whatever the screens miss, tool access control still holds: it is enforced
in code (:mod:`agent_runtime.tools.access`), never by the model's good behaviour.
"""

from __future__ import annotations

import html
import json
import re
import sys
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any, Literal, Protocol
from unicodedata import normalize
from urllib.parse import unquote

import httpx
import regex

from agent_runtime.errors import OutputBlocked, PromptRejected, Unavailable
from agent_runtime.governance.pattern_shape import UnstreamablePattern, shape_of
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
    r"\bnew (?:system )?instructions?\s{0,2}:",
)
"""Phrasings of instruction override, role hijack, exfiltration, tool coercion and fake role markers, matched
against each reading of the text :func:`_readings` gives (one space between words). Every repeat is
bounded, so a match has a longest length: what lets :meth:`HeuristicScreen.reasons` look for a phrase split
across texts near their junctions only."""

_INVISIBLE = r"\p{Default_Ignorable_Code_Point}\u2800"
"""What a reader does not see (the body of a character class): Unicode's default-ignorable code points
(zero-width space and joiners, soft hyphen, bidi marks and controls, invisible operators, variation
selectors, tag characters, Hangul fillers, byte order mark ...) and the blank Braille cell, which renders as
a space but is no whitespace. Inside a word it hides the word from a pattern; between words, the space."""

_INVISIBLE_RUN = regex.compile(f"[{_INVISIBLE}]+")
_SEEN_THROUGH = regex.compile(r"[\p{Mn}\p{Me}" + _INVISIBLE + "]+")
"""What a reader sees through inside a word: invisible characters, and combining marks (an accent, or a
stray U+0301 over a Latin letter)."""

_LATIN_LOOKALIKES = (
    # Cyrillic
    "аa сc ԁd еe ёe һh іi їi јj кk ӏl оo рp ԛq гr ѕs уy үy ԝw хx ԍg пn ьb "
    "АA ВB СC ЕE ЁE ҺH НH ІI ЇI ЈJ КK Ӏl МM ОO РP ԚQ ЅS ТT УY ҮY ԜW ХX ԌG Ьb "
    # Greek
    "αa εe ηn ιi κk νv οo ρp τt υu χx γy ωw ϲc ϳj ΑA ΒB ΕE ΖZ ΗH ΙI ΚK ΜM ΝN ΟO ΡP ΤT ΥY ΧX ϹC ͿJ "
    # Armenian
    "օo Օo սu Սu հh ոn զq ցg ԼL ՏS "
    # Latin, outside ASCII
    "ıi ȷj ɡg ɑa ɩi "
    # Latin small capitals, which "fancy text" generators write and no normalisation folds
    "ᴀa ʙb ᴄc ᴅd ᴇe ꜰf ɢg ʜh ɪi ᴊj ᴋk ʟl ᴍm ɴn ᴏo ᴘp ʀr ꜱs ᴛt ᴜu ᴠv ᴡw ʏy ᴢz"
)
"""Letters of Cyrillic, Greek and Armenian (and Latin ones outside ASCII) that read as an ASCII letter, each
followed by that letter: the common cases of Unicode TR39's confusables, and the small capitals."""
_ENCLOSED_CAPITALS = (0x1F150, 0x1F170, 0x1F1E6)
"""The first of 26 capitals A-Z each, that NFKD leaves as they are (unlike circled and squared ones): negative
circled, negative squared, regional indicators (🅘🅖🅝🅞🅡🅔 reads as a word)."""
_TO_LATIN = str.maketrans(
    {pair[0]: pair[1] for pair in _LATIN_LOOKALIKES.split()}
    | {chr(first + letter): chr(ord("A") + letter) for first in _ENCLOSED_CAPITALS for letter in range(26)}
)
_LOOKALIKE = "".join(
    [pair[0] for pair in _LATIN_LOOKALIKES.split()]
    + [f"{chr(first)}-{chr(first + 25)}" for first in _ENCLOSED_CAPITALS]
)
_HAS_LOOKALIKE = re.compile(f"[{_LOOKALIKE}]")
_DISGUISED_WORD = re.compile(
    rf"(?<!\w)[A-Za-z0-9_\u0300-\u036f]*[{_LOOKALIKE}][A-Za-z0-9_\u0300-\u036f{_LOOKALIKE}]*(?!\w)"
)
"""A word that could be all Latin: ASCII letters and digits, look-alikes (at least one) and the combining
marks of Latin accents (a decomposed ``ё``). A Russian or Greek word has letters of its own that look like no
Latin letter, so its text is left as written."""

_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
"""A ``\\u`` escape as JSON, Python and JavaScript write a character (``\\u0067``: ``g``)."""

_JUNCTION_CONTEXT = 64
"""Characters past the longest match that a search near a junction of texts reads, for lookaheads."""


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
    """Regular-expression heuristics, case-insensitive, compiled once, matched against each reading of a text
    (:func:`_readings`): an attacker who hides a phrase from one reading shows it to another."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        self._heuristics = [_Heuristic.of(source) for source in (*INJECTION_PATTERNS, *extra_patterns)]

    def reason(self, text: str) -> str | None:
        """Why ``text`` looks like an injection attempt, or ``None``."""
        return self.reasons([text])[0]

    def reasons(self, texts: Sequence[str]) -> list[str | None]:
        """A reason per text (``None`` when clean), then the clean ones read one after another: the results
        of one model turn reach the model together, so a phrase split across two of them is one phrase to
        it; each text the phrase spans is flagged."""
        readings = [_readings(text) for text in texts]
        found = [_near(match) if (match := self._search(each)) else None for each in readings]
        clean = [index for index, reason in enumerate(found) if reason is None and texts[index]]
        for position, reason in self._across([readings[index] for index in clean]).items():
            found[clean[position]] = reason
        return found

    def _search(self, readings: Sequence[str]) -> re.Match[str] | None:
        for reading in dict.fromkeys(readings):  # readings are often equal: search each text once
            caseless = _caseless(reading)
            for heuristic in self._heuristics:
                if match := heuristic.search(reading, caseless):
                    return match
        return None

    def _across(self, readings: Sequence[tuple[str, ...]]) -> dict[int, str]:
        """The texts (by position in ``readings``) that a match spans when the texts are read in turn, one
        space between them as between words, with the reason; one reading of each kind is joined at a time."""
        flagged: dict[int, str] = {}
        if len(readings) < 2:
            return flagged
        for kind in range(len(readings[0])):
            parts = [each[kind] for each in readings]
            if kind and all(part is each[kind - 1] for part, each in zip(parts, readings, strict=True)):
                continue  # the same text as the reading before
            starts = list(accumulate((len(part) + 1 for part in parts[:-1]), initial=0))
            for match in self._junction_matches(" ".join(parts), starts[1:]):
                spanned = range(
                    bisect_right(starts, match.start()) - 1, bisect_right(starts, match.end() - 1)
                )
                for position in spanned:
                    flagged.setdefault(position, f"{_near(match)} across {len(spanned)} texts read in turn")
        return flagged

    def _junction_matches(self, joined: str, starts: Sequence[int]) -> Iterator[re.Match[str]]:
        """Matches of ``joined`` that span a junction (the space before each of ``starts``). A match is
        at most its pattern's reach long, so only that much text either side of a junction is searched;
        without a bound (an operator's unbounded pattern) the whole text is."""
        for heuristic in self._heuristics:
            if heuristic.reach is None:
                yield from heuristic.finditer(joined, _caseless(joined))
                continue
            for junction in (start - 1 for start in starts):
                low = max(0, junction - heuristic.reach)
                high = junction + heuristic.reach + _JUNCTION_CONTEXT
                window = heuristic.finditer(joined, _caseless(joined[low:high]), low, high)
                yield from (match for match in window if match.start() <= junction < match.end())


@dataclass(frozen=True)
class _Heuristic:
    """One pattern, compiled; the needles its matches hold (for each tuple, one of its lowercase strings),
    which let a text holding none skip the search; and its reach, the longest match (``None``: unbounded).

    Skipping is what keeps the screen cheap: a search tries the pattern at every position of the text,
    while a needle is found at memory speed, and most texts lack some needle of most patterns."""

    pattern: re.Pattern[str]
    needles: tuple[tuple[str, ...], ...]
    reach: int | None

    @classmethod
    def of(cls, source: str) -> _Heuristic:
        needles = sorted(_needles(_parser.parse(source)), key=_rarity, reverse=True)
        return cls(re.compile(source, re.IGNORECASE), tuple(needles), _longest_match(source))

    def search(self, text: str, caseless: str) -> re.Match[str] | None:
        """The first match in ``text``, whose :func:`_caseless` form is ``caseless``."""
        return self.pattern.search(text) if self._may_match(caseless) else None

    def finditer(
        self, text: str, caseless: str, pos: int = 0, endpos: int = sys.maxsize
    ) -> Iterator[re.Match[str]]:
        """The matches in ``text[pos:endpos]`` (the text before ``pos`` read as context), whose
        :func:`_caseless` form is ``caseless``."""
        return self.pattern.finditer(text, pos, endpos) if self._may_match(caseless) else iter(())

    def _may_match(self, caseless: str) -> bool:
        return all(any(needle in caseless for needle in options) for options in self.needles)


def _needles(items: Any) -> list[tuple[str, ...]]:
    """What every match of a parsed pattern (``re``'s parse tree) holds: for each tuple, one of its strings,
    lowercase. Runs of ASCII literals are needles; a group adds its own, an alternation the union of its
    branches' rarest, a repeat of at least once its body's. Whatever else a pattern holds adds none."""
    found: list[tuple[str, ...]] = []
    run = ""
    for op, av in items:
        if op is sre.LITERAL and av < 128:
            run += chr(av).lower()
            continue
        if run:
            found.append((run,))
            run = ""
        if op is sre.SUBPATTERN:
            found += _needles(av[-1])
        elif op is sre.ATOMIC_GROUP:
            found += _needles(av)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT) and av[0] >= 1:
            found += _needles(av[2])
        elif op is sre.BRANCH:
            found += _either(av[1])
    return found + [(run,)] if run else found


def _either(branches: Any) -> list[tuple[str, ...]]:
    """The needles of an alternation: the rarest of each branch, together; none when a branch has none."""
    each = [_needles(branch) for branch in branches]
    if not all(each):
        return []
    return [tuple(dict.fromkeys(needle for found in each for needle in max(found, key=_rarity)))]


def _rarity(options: tuple[str, ...]) -> int:
    """How rarely text holds one of ``options``, roughly: the length of the shortest."""
    return min(map(len, options))


def _caseless(text: str) -> str:
    """``text`` as the needles are spelled: lowercase, and each letter that ``re.IGNORECASE`` matches to an
    ASCII one (dotless and dotted capital ``I``, long ``s``, Kelvin sign) that letter."""
    lowered = text.lower()
    if lowered.isascii():
        return lowered
    return lowered.replace("ı", "i").replace("ſ", "s").replace("i\u0307", "i")


def _near(match: re.Match[str]) -> str:
    return f"matches injection heuristic near {match.group()[:40]!r}"


def _longest_match(source: str) -> int | None:
    """The most characters a match of ``source`` can span, or ``None`` when unbounded (or unknown)."""
    try:
        return shape_of(source).longest
    except UnstreamablePattern:  # unbounded, empty or anchored to the end: searched whole instead
        return None


def _readings(text: str) -> tuple[str, str, str]:
    """The ways a model may read ``text``, in the form the heuristics match: a JSON document (a tool's result)
    as its strings, escapes decoded (the model reads ``\\t`` as a tab, ``\\u00a0`` as a space); then

    - as written, each run of separators (:func:`_words`) one space;
    - spaced: character references (``&#110;``, ``&nbsp;``), percent- and ``\\u`` escapes decoded, compatibility
      forms folded (NFKD: full-width and mathematical letters, ligatures, accents apart from their letters),
      invisible characters read as spaces, disguised words (:func:`_latin`) in Latin;
    - bare: the same, but combining marks and invisible characters dropped, so that a word they split or
      decorate reads whole.

    The written reading stays: folding can add a full stop (``…`` is three) or lengthen a gap, and the
    operator's patterns may spell accents. Readings that cannot differ are one object: all three when
    decoding and folding leave an ASCII text as it is, spaced and bare when the text holds no invisible
    character (then bare reads all that spaced does)."""
    written = "\n".join(_json_strings(text))
    as_written = _words(written)
    decoded = _decoded(written)
    if decoded.isascii():
        plain = as_written if decoded == written else _words(decoded)
        return as_written, plain, plain
    folded = _latin(normalize("NFKD", decoded))
    bare = " ".join(_SEEN_THROUGH.sub("", folded).split())
    if _INVISIBLE_RUN.search(folded) is None:
        return as_written, bare, bare
    return as_written, _words(folded), bare


def _words(text: str) -> str:
    """``text`` with each run of what separates words to a reader as one space: any whitespace (as ``str.split``
    and ``re``'s ``\\s`` know it) and any invisible character."""
    if _INVISIBLE_RUN.search(text):
        text = _INVISIBLE_RUN.sub(" ", text)
    return " ".join(text.split())


def _decoded(text: str) -> str:
    """``text`` with HTML character references, percent-escapes and ``\\u`` escapes decoded, twice over for one
    nesting (``%26%23110%3B``); each pass returns its input unchanged when it holds no ``&`` (``%``, ``\\u``).
    A ``\\u0067`` that no JSON parser decoded (plain text, or a document that does not parse) still reads as
    ``g`` to a model."""
    for _ in range(2):
        text = unquote(html.unescape(text))
        if "\\u" in text:
            text = _UNICODE_ESCAPE.sub(lambda escape: chr(int(escape[1], 16)), text)
    return text


def _latin(text: str) -> str:
    """``text`` with each word that could be all Latin (:data:`_DISGUISED_WORD`) spelled in Latin."""
    if not _HAS_LOOKALIKE.search(text):
        return text
    return _DISGUISED_WORD.sub(lambda word: word.group().translate(_TO_LATIN), text)


def _json_strings(text: str) -> list[str]:
    """The strings (keys and values) of ``text`` when it is a JSON array, object or string, else ``[text]``.

    A string that is itself such a document (an API's JSON in the body of an ``http_get`` result) is followed
    by its own strings: the model reads through both encodings, so an escape of the inner one (``\\u200b``,
    ``\\u0065``) must not hide a phrase. At most :data:`_NESTED_DOCUMENTS` are read so per text: a document of
    50,000 tiny JSON strings took seven times the screen's usual time on the event loop; past the bound a
    string is read as written (its ``\\u`` escapes are still decoded, see :func:`_decoded`)."""
    document = _json_document(text)
    if document is None:
        return [text]
    strings: list[str] = []
    pending = [document]
    nested = _NESTED_DOCUMENTS
    while pending:  # a loop, not recursion: the document may be nested almost as deep as the parser goes
        value = pending.pop()
        if isinstance(value, str):
            strings.append(value)
            if nested and (inner := _json_document(value)) is not None:
                nested -= 1
                pending.append(inner)
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                pending += (item, key)
        elif isinstance(value, list):
            pending += reversed(value)
    return strings


_NESTED_DOCUMENTS = 64
"""How many JSON documents inside a text's strings :func:`_json_strings` reads (an API answer holds a few)."""


def _json_document(text: str) -> Any:
    """``text`` parsed when it is a JSON array, object or string (never ``None``, JSON's ``null``); else
    ``None``."""
    if not text.lstrip().startswith(("{", "[", '"')):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON after all, or nested deeper than the parser goes
        return None


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
            Detection(source, "heuristics", reason) if reason else None
            for reason in self._heuristics.reasons(texts)
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

    def stored_answer(self, checked: str) -> str:
        """What history keeps of an answer :meth:`check_output` returned: that answer, which is redacted
        (``redact``) or holds nothing to redact (``block``) already, as the caller received it; redacted now
        when the output check is ``off``. Redacting it a second time cost every invoke ~10 us for nothing."""
        return self.redactor.redact(checked) if self._leakage == "off" else checked

    def output_stream(self) -> OutputStream:
        """A guard for one streamed text (a model answer, or a run's model calls in parts) with the guarantees
        of :meth:`check_output`, in the guardrails' own ``output_leakage`` mode: callers never pick it."""
        return OutputStream(self._leakage, self._streaming.stream() if self._streaming else None)


class OutputStream:
    """What of a streamed text may leave the runtime, piece by piece: one model call's answer, or the texts of
    a run's model calls, each call a part (:meth:`end_part`).

    Whatever the chunk boundaries, the text of one part it releases is exactly what
    :meth:`Guardrails.check_output` returns for the whole of it (``redact``), or a prefix of it that ends
    before its first sensitive value, then :class:`OutputBlocked` (``block``): the value itself never leaves.
    Only the tail that could still become a match is held back (see
    :mod:`agent_runtime.governance.stream_redaction`); a text of one part costs what it always did.

    The caller reads a run's calls' texts as one (the words before a tool call, then the answer), so a secret
    split between two calls is whole only in the joined text; but a pattern that starts with ``\\b`` or a
    lookbehind does not match at the start of a call whose previous call ended in a letter or digit
    (``check`` + ``sk-proj-...``), nor one that ends with them at the end of a call whose next call opens
    with one, so the joined text alone lets a value through that ``check_output`` of its own call's text
    catches. A guard per call, flushed at the call's end, would lose the split secret instead; chaining one
    per call into one for the joined text would read the first's ``[REDACTED:...]`` markers, not the text,
    and miss the rest of a secret that one call's text matches alone and the next call continues. In parts,
    the guard reads both ways and hides what either reading would: a character reaches the caller in clear
    only if ``check_output`` leaves it in clear in its call's text alone and in the run's whole text,
    whatever the chunking (``block``: the stream stops before the first value either reading finds).
    """

    def __init__(self, leakage: Literal["redact", "block", "off"], stream: RedactingStream | None) -> None:
        self._leakage = leakage
        self._stream = stream

    def feed(self, piece: str) -> str:
        """The text that may be sent now (possibly empty)."""
        return piece if self._stream is None else self._checked(self._stream.feed(piece))

    def end_part(self) -> None:
        """The current part's text is complete and another part follows: what is held back waits for the next
        part's text or the end."""
        if self._stream is not None:
            self._stream.end_part()

    def finish(self) -> str:
        """The text is complete: the held tail, checked."""
        return "" if self._stream is None else self._checked(self._stream.finish())

    def _checked(self, release: Release) -> str:
        if release.kinds and self._leakage == "block":
            raise _blocked(release.kinds)
        return release.text


def _blocked(kinds: Iterable[str]) -> OutputBlocked:
    listed = ", ".join(sorted(set(kinds)))
    return OutputBlocked(f"the answer was withheld: it contained sensitive data ({listed})")
