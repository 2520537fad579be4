"""Text out of a document's bytes: what the ingest worker chunks, embeds and indexes.

A document arrives as bytes with the Content-Type its store recorded (a blob's or an S3 object's), which is
often missing or ``application/octet-stream``: the file name's extension decides then. What comes out is the
title and the document's sections, each under its path of headings, with newlines normalised and paragraph
breaks (``"\\n\\n"``) kept, because the chunker cuts there first.

A document that cannot be read raises :class:`ExtractionError`, whose message is written to a dead-letter
record: it names the file and says what to change, for the person who uploaded it rather than a developer.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath

from pypdf import PdfReader

# Named in every refusal of a type, so that the uploader knows what to convert the document to.
SUPPORTED = "plain text (.txt), Markdown (.md), HTML (.html/.htm), PDF (.pdf)"

_MEDIA_TYPES = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}
_EXTENSIONS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
# What stores record when nobody said what the bytes are: the extension is the better guess then.
_UNTYPED = {"", "application/octet-stream", "binary/octet-stream"}

MAX_HEADING_CHARS = 200
"""Titles and headings are cut to this many characters (ending in an ellipsis): each is stored with, and
embedded above, every chunk under it, so a 40 KB heading line or ``<title>`` would swell them all."""


class ExtractionError(ValueError):
    """Why a document cannot be indexed, worded for whoever uploaded it (it goes to a dead-letter record)."""


@dataclass(frozen=True)
class Section:
    """Text under one path of headings (``()`` before the first heading); never empty."""

    headings: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class ExtractedDocument:
    """A document's title and its non-empty sections, in document order."""

    title: str
    sections: tuple[Section, ...]


def extract(content: bytes, *, name: str, media_type: str | None = None) -> ExtractedDocument:
    """The title and sections of ``content``, typed by ``media_type`` (parameters allowed) or ``name``.

    ``name`` is the document's name in its store: it types untyped content, gives the fallback title (its
    stem) and names the file in every :class:`ExtractionError`.
    """
    essence, _, parameters = (media_type or "").partition(";")
    kind = _kind(name, essence.strip().lower())
    charset = _charset(parameters)
    stem = PurePosixPath(name).stem or name
    if kind == "pdf":
        return _bounded(_pdf(content, name))
    if kind == "html":
        charset = charset or _meta_charset(content)
    text = _decode(content, name, charset)
    try:
        document = _PARSERS[kind](text, stem)
    except AssertionError as exc:  # how html.parser refuses some markup (an unknown <![keyword[ section)
        raise ExtractionError(f"{name}: not readable {kind} ({exc}); correct it and upload it again") from exc
    if not document.sections:
        raise ExtractionError(f"{name} is empty")
    return _bounded(document)


def _kind(name: str, essence: str) -> str:
    by_extension = _EXTENSIONS.get(PurePosixPath(name).suffix.lower())
    # Tools label any text file text/plain; an extension naming a text format (.md, .html) is more precise.
    if essence == "text/plain" and by_extension in ("markdown", "html"):
        return by_extension
    if essence in _MEDIA_TYPES:
        return _MEDIA_TYPES[essence]
    if essence not in _UNTYPED:
        raise ExtractionError(f"{name}: unsupported document type '{essence}'; supported: {SUPPORTED}")
    if by_extension is None:
        extension = PurePosixPath(name).suffix
        found = f"'{extension}'" if extension else "(no media type and no file extension)"
        raise ExtractionError(f"{name}: unsupported document type {found}; supported: {SUPPORTED}")
    return by_extension


_CHARSET_PARAMETER = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)


def _charset(parameters: str) -> str | None:
    match = _CHARSET_PARAMETER.search(parameters)
    return match.group(1) if match else None


def _meta_charset(content: bytes) -> str | None:
    """The ``<meta charset>`` of an HTML page, which browsers look for in its first kilobyte."""
    match = _META_CHARSET.search(content[:1024])
    return match.group(1).decode("ascii") if match else None


def _decode(content: bytes, name: str, charset: str | None) -> str:
    """A byte order mark wins over a declared charset, which wins over the UTF-8 default (as in browsers)."""
    if content.startswith(codecs.BOM_UTF8):
        content, encoding = content[len(codecs.BOM_UTF8) :], "utf-8"
    elif content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = charset or "utf-8"
    try:
        text = content.decode(encoding)
    except LookupError as exc:
        raise ExtractionError(f"{name}: unknown character set '{encoding}'") from exc
    except UnicodeDecodeError as exc:
        raise ExtractionError(
            f"{name}: not valid {encoding} text (byte {exc.start}); save it as UTF-8 and upload it again"
        ) from exc
    if "\x00" in text:
        # Valid UTF-8 never needs NUL: this is a binary file, or UTF-16 saved without its byte order mark.
        raise ExtractionError(f"{name}: contains NUL characters (a binary file, or UTF-16 without a BOM)")
    return text


_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
# Control characters that are not whitespace go; the others (\t, \x1c–\x1f) stay, as they part words.
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
_TRAILING_SPACE = re.compile(r"[^\S\n]+$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n{3,}")


def _normalise(text: str) -> str:
    """``\\n`` line ends, no trailing spaces, and at most one blank line in a row (the paragraph break)."""
    text = _CONTROLS.sub("", _LINE_BREAKS.sub("\n", text))
    return _BLANK_LINES.sub("\n\n", _TRAILING_SPACE.sub("", text)).strip("\n")


def _words(text: str) -> str:
    return " ".join(text.split())


class _Sections:
    """Text gathered under the current heading path; a heading closes the section before it."""

    def __init__(self) -> None:
        self._path: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self._sections: list[Section] = []
        self.first_h1 = ""

    def write(self, text: str) -> None:
        self._parts.append(text)

    def mark(self) -> int:
        return len(self._parts)

    def take(self, mark: int) -> str:
        """Remove and return what was written since ``mark`` (the paragraph a setext underline makes a heading)."""
        taken = "".join(self._parts[mark:])
        del self._parts[mark:]
        return taken

    def heading(self, level: int, text: str) -> None:
        self._close()
        if not text:
            return
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, text))
        if level == 1 and not self.first_h1:
            self.first_h1 = text

    def finish(self) -> tuple[Section, ...]:
        self._close()
        return tuple(self._sections)

    def _close(self) -> None:
        text = _normalise("".join(self._parts))
        self._parts.clear()
        if text.strip():
            self._sections.append(Section(tuple(heading for _, heading in self._path), text))


def _plain(text: str, stem: str) -> ExtractedDocument:
    text = _normalise(text)
    return ExtractedDocument(stem, (Section((), text),) if text.strip() else ())


_FRONT_MATTER = re.compile(r"---\n(.*?\n)(?:---|\.\.\.)(?:\n|$)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"""^title:[ \t]*["']?(.*?)["']?[ \t]*$""", re.MULTILINE)
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*))?")
_ATX_CLOSING = re.compile(r"(?:^|[ \t])#+$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"\*+|`+")


def _markdown(text: str, stem: str) -> ExtractedDocument:
    """CommonMark's headings (ATX and setext) and fenced code, in which a ``#`` line is code, not a heading."""
    text = _normalise(text)
    title = ""
    # Front matter's closing ``---`` would otherwise make its last line a setext heading.
    if front_matter := _FRONT_MATTER.match(text):
        if declared := _FRONT_MATTER_TITLE.search(front_matter.group(1)):
            title = declared.group(1).strip()
        text = text[front_matter.end() :]
    sections = _Sections()
    fence = ""  # the open fence's marker while inside fenced code
    paragraph: int | None = None  # where the current paragraph began, for a setext underline
    for line in text.split("\n"):
        if fence:
            if re.fullmatch(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*", line):
                fence = ""
        elif (opening := _FENCE.fullmatch(line)) and not (opening[1][0] == "`" and "`" in opening[2]):
            fence, paragraph = opening[1], None
        elif atx := _ATX.fullmatch(line):
            sections.heading(len(atx[1]), _heading_text(_ATX_CLOSING.sub("", atx[2] or "")))
            paragraph = None
            continue
        elif paragraph is not None and (underline := _SETEXT.fullmatch(line)):
            sections.heading(1 if underline[1][0] == "=" else 2, _heading_text(sections.take(paragraph)))
            paragraph = None
            continue
        elif not line.strip():
            paragraph = None
        elif paragraph is None:
            paragraph = sections.mark()
        sections.write(line + "\n")
    return ExtractedDocument(title or sections.first_h1 or stem, sections.finish())


def _heading_text(markdown: str) -> str:
    """A heading as words: links become their text, emphasis and code marks go."""
    return _words(_EMPHASIS.sub("", _LINK.sub(r"\1", markdown)))


class _HtmlText(HTMLParser):
    """Visible text by section: h1–h6 build the heading path, block elements break paragraphs."""

    _HIDDEN = frozenset({"script", "style", "template", "noscript", "svg"})
    _HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
    _LINES = frozenset({"li", "tr", "dt", "dd"})
    _PARAGRAPHS = frozenset(
        [
            "address",
            "article",
            "aside",
            "blockquote",
            "body",
            "caption",
            "details",
            "dialog",
            "div",
            "dl",
            "fieldset",
            "figcaption",
            "figure",
            "footer",
            "form",
            "header",
            "hr",
            "main",
            "nav",
            "ol",
            "p",
            "pre",
            "section",
            "summary",
            "table",
            "ul",
        ]
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections = _Sections()
        self.title = ""
        self._hidden = 0
        self._pre = 0
        self._in_title = False
        self._heading: tuple[int, list[str]] | None = None
        self._newlines = 2  # newlines the text ends with: a block break adds only what is missing

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif self._hidden:
            return
        elif tag == "title":
            self._in_title = True
        elif tag in self._HEADINGS:
            self._end_heading()
            self._heading = (int(tag[1]), [])
        elif tag == "br":
            self._break(1)
        elif tag == "td" or tag == "th":
            self._write(" ")
        else:
            if tag == "pre":
                self._pre += 1
            self._block(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif self._hidden:
            return
        elif tag == "title":
            self._in_title = False
        elif tag in self._HEADINGS:
            self._end_heading()
        else:
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
            self._block(tag)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._in_title:
            self.title = self.title or _words(data)
        else:
            self._write(data if self._pre else re.sub(r"\s+", " ", data))

    def close(self) -> None:
        super().close()
        self._end_heading()

    def _end_heading(self) -> None:
        if self._heading is not None:
            level, parts = self._heading
            self._heading = None
            self.sections.heading(level, _words("".join(parts)))
            self._newlines = 2

    def _block(self, tag: str) -> None:
        # A heading holds only inline content: a block's tag ends one left open, as in a browser.
        if tag in self._LINES or tag in self._PARAGRAPHS:
            self._end_heading()
        if tag in self._LINES:
            self._break(1)
        elif tag in self._PARAGRAPHS:
            self._break(2)

    def _break(self, newlines: int) -> None:
        if self._newlines < newlines:
            self._write("\n" * (newlines - self._newlines))

    def _write(self, text: str) -> None:
        if self._heading is not None:
            self._heading[1].append(text)
            return
        if self._newlines and not self._pre:
            text = text.lstrip(" ")
        if not text:
            return
        self.sections.write(text)
        body = text.rstrip("\n")
        self._newlines = len(text) - len(body) + (0 if body else self._newlines)


def _html(text: str, stem: str) -> ExtractedDocument:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    sections = parser.sections.finish()
    return ExtractedDocument(parser.title or parser.sections.first_h1 or stem, sections)


_PARSERS: dict[str, Callable[[str, str], ExtractedDocument]] = {
    "text": _plain,
    "markdown": _markdown,
    "html": _html,
}


def _pdf(content: bytes, name: str) -> ExtractedDocument:
    """The text of every page, pages apart as paragraphs; the title from the metadata, else the first line."""
    try:
        reader = PdfReader(io.BytesIO(content))
        # Many PDFs are encrypted only to restrict printing or copying: their user password is empty.
        locked = reader.is_encrypted and not reader.decrypt("")
        pages = [] if locked else [page.extract_text() for page in reader.pages]
        metadata = None if locked else reader.metadata
        declared = (metadata.title if metadata is not None else None) or ""
    except Exception as exc:  # pypdf reports a damaged file with many exception types, not only PdfReadError
        raise ExtractionError(f"{name}: not a readable PDF ({type(exc).__name__}: {exc})") from exc
    if locked:
        raise ExtractionError(f"{name}: the PDF is protected by a password; upload a copy without one")
    text = _normalise("\n\n".join(pages))
    if not text.strip():
        raise ExtractionError(f"{name}: no extractable text (scanned? OCR is not supported)")
    first_line = next(line for line in text.split("\n") if line.strip())
    title = _words(str(declared)) or _shortened(_words(first_line), 120)
    return ExtractedDocument(title, (Section((), text),))


def _bounded(document: ExtractedDocument) -> ExtractedDocument:
    """The document with its title and headings cut to :data:`MAX_HEADING_CHARS`."""
    sections = tuple(Section(tuple(map(_capped, s.headings)), s.text) for s in document.sections)
    return ExtractedDocument(_capped(document.title), sections)


def _capped(text: str) -> str:
    return text if len(text) <= MAX_HEADING_CHARS else _shortened(text, MAX_HEADING_CHARS - 1) + "…"


def _shortened(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a space: a PDF's first "line" can be a whole page."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]
