"""Text out of documents: types, encodings, Markdown and HTML structure, PDFs good and bad, and the
reasons given for documents that cannot be read (they end up in a dead-letter record, for a person)."""

from __future__ import annotations

import codecs
import html
import io
import random
import re

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from agent_runtime.knowledge import extract as extraction
from agent_runtime.knowledge.extract import ExtractedDocument, ExtractionError, Section, extract

SUPPORTED = "supported: plain text (.txt), Markdown (.md), HTML (.html/.htm), PDF (.pdf)"
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "Größe",
    "東京",
    "привет",
    "😀",
    "3.14",
    "x_y",
]


def words(text: str) -> list[str]:
    return text.split()


def pdf(*pages: list[str], title: str | None = None, password: str | None = None, owner: str = "") -> bytes:
    """A PDF whose pages show the given lines in Helvetica (pypdf writes the file, so the xref is right)."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        shown = " ".join(f"({line}) Tj 0 -14 Td" for line in lines)
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 712 Td {shown} ET".encode())
        page.replace_contents(stream)
    if title is not None:
        writer.add_metadata({"/Title": title})
    if password is not None:
        writer.encrypt(password, owner_password=owner or None, algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def sections(document: ExtractedDocument) -> list[tuple[tuple[str, ...], str]]:
    return [(section.headings, section.text) for section in document.sections]


# --- types ---------------------------------------------------------------------------------------------


MARKDOWN = b"# Guide\n\nSome text.\n"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("guide.md", None),
        ("guide.MARKDOWN", None),
        ("docs/guide.md", "application/octet-stream"),
        ("guide.md", "binary/octet-stream"),
        ("blob-without-extension", "text/markdown"),
        ("guide.txt", "Text/Markdown; charset=UTF-8"),
        ("guide.txt", 'text/x-markdown;charset="utf-8"'),
        # Tools label any text file text/plain: the extension says which text format it is.
        ("guide.md", "text/plain; charset=utf-8"),
    ],
)
def test_markdown_is_recognised_by_media_type_or_extension(name: str, media_type: str | None) -> None:
    assert sections(extract(MARKDOWN, name=name, media_type=media_type)) == [(("Guide",), "Some text.")]


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("notes.txt", None), ("notes", "text/plain"), ("notes.TXT", "text/plain; format=flowed")],
)
def test_plain_text_keeps_markdown_syntax_as_text(name: str, media_type: str | None) -> None:
    document = extract(MARKDOWN, name=name, media_type=media_type)
    assert document == ExtractedDocument("notes", (Section((), "# Guide\n\nSome text."),))


def test_html_and_pdf_are_recognised_by_media_type_or_extension() -> None:
    page = b"<h1>Hi</h1><p>there</p>"
    for name, media_type in [("a.html", None), ("a.HTM", None), ("a", "text/html"), ("a.txt", "text/html")]:
        assert sections(extract(page, name=name, media_type=media_type)) == [(("Hi",), "there")]
    assert sections(extract(page, name="a.html", media_type="text/plain")) == [(("Hi",), "there")]
    document = pdf(["Hello"])
    for name, media_type in [
        ("a.pdf", None),
        ("a.PDF", "application/octet-stream"),
        ("a", "application/pdf"),
    ]:
        assert sections(extract(document, name=name, media_type=media_type)) == [((), "Hello")]


@pytest.mark.parametrize(
    ("name", "media_type", "reason"),
    [
        (
            "report.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            (
                "report.docx: unsupported document type "
                "'application/vnd.openxmlformats-officedocument.wordprocessingml.document'"
            ),
        ),
        ("report.docx", None, "report.docx: unsupported document type '.docx'"),
        ("photo.PNG", "application/octet-stream", "photo.PNG: unsupported document type '.PNG'"),
        ("a.md", "image/png", "a.md: unsupported document type 'image/png'"),
        ("README", None, "README: unsupported document type (no media type and no file extension)"),
        ("README", "", "README: unsupported document type (no media type and no file extension)"),
    ],
)
def test_an_unsupported_type_is_refused_with_what_is_supported(
    name: str, media_type: str | None, reason: str
):
    with pytest.raises(ExtractionError) as raised:
        extract(b"content", name=name, media_type=media_type)
    assert str(raised.value) == f"{reason}; {SUPPORTED}"
    assert isinstance(raised.value, ValueError)


# --- decoding and normalising -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode(),
        lambda text: codecs.BOM_UTF8 + text.encode(),
        lambda text: text.encode("utf-16"),  # with a byte order mark, in this machine's order
        lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
        lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    ],
)
def test_utf8_and_utf16_with_a_bom_decode_to_the_same_text(encode) -> None:
    text = "Größe 東京 😀\nzweite Zeile"
    assert extract(encode(text), name="a.txt").sections == (Section((), text),)


def test_a_declared_charset_is_honoured_and_a_bom_beats_it() -> None:
    latin = extract("café".encode("latin-1"), name="a.txt", media_type="text/plain; charset=ISO-8859-1")
    assert latin.sections[0].text == "café"
    bom = codecs.BOM_UTF8 + "café".encode()
    assert extract(bom, name="a.txt", media_type="text/plain; charset=latin-1").sections[0].text == "café"
    page = '<html><head><meta charset="windows-1252"></head><body><p>na\u00efve “quotes”</p></body></html>'
    assert extract(page.encode("cp1252"), name="a.html").sections[0].text == "naïve “quotes”"


@pytest.mark.parametrize(
    ("content", "media_type", "reason"),
    [
        ("café".encode("latin-1"), None, "notes.txt: not valid utf-8 text (byte 3)"),
        (b"\xff\xfe\x00", "text/plain; charset=utf-16", "notes.txt: not valid utf-16 text"),
        (
            b"hello",
            "text/plain; charset=no-such-charset",
            "notes.txt: unknown character set 'no-such-charset'",
        ),
        ("hello".encode("utf-16-le"), None, "notes.txt: contains NUL characters"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", None, "notes.txt: contains NUL characters"),
    ],
)
def test_undecodable_text_names_the_file_and_the_problem(content: bytes, media_type: str | None, reason: str):
    with pytest.raises(ExtractionError, match=re.escape(reason)):
        extract(content, name="notes.txt", media_type=media_type)


NOTHING = [b"", b"   \n\t\r\n  \n", codecs.BOM_UTF8, "\u00a0\u2028".encode(), b"\x01\x02\x7f"]


@pytest.mark.parametrize(
    ("name", "content"),
    [(name, content) for name in ("empty.txt", "empty.md", "empty.html") for content in NOTHING]
    + [
        ("empty.md", b"# Only a heading\n\n## And another\n"),
        (
            "empty.html",
            b"<html><head><title>T</title><script>alert(1)</script></head><body> &nbsp; </body></html>",
        ),
        ("empty.html", b"<h1>Only a heading</h1><!-- and a comment -->"),
    ],
)
def test_a_document_without_text_is_empty(name: str, content: bytes) -> None:
    with pytest.raises(ExtractionError, match=f"^{re.escape(name)} is empty$"):
        extract(content, name=name)


def test_newlines_are_normalised_and_paragraph_breaks_kept() -> None:
    content = "one  \r\ntwo\rthree\x0cfour\n\n\n\n\nfive\t \r\n\r\n\r\nsix\u2028".encode()
    assert extract(content, name="a.txt").sections[0].text == "one\ntwo\nthree\nfour\n\nfive\n\nsix"


def test_random_text_keeps_its_words_and_only_normalised_whitespace() -> None:
    rng = random.Random(20240601)
    spaces = [" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n\n\n", "\u2028", "\x0c", "\u00a0", " \n \n "]
    for _ in range(300):
        pieces = [rng.choice(WORDS) + rng.choice(["", "\x07", "\x1b"]) for _ in range(rng.randint(1, 40))]
        text = "".join(piece + rng.choice(spaces) for piece in pieces)
        for encoding in ("utf-8", "utf-8-sig", "utf-16"):
            document = extract(text.encode(encoding), name="random.txt")
            (section,) = document.sections
            assert words(section.text) == [piece.rstrip("\x07\x1b") for piece in pieces]
            assert "\r" not in section.text and "\n\n\n" not in section.text
            assert all(line == line.rstrip() for line in section.text.split("\n"))
            assert section.text == section.text.strip("\n") and document.title == "random"


# --- Markdown ------------------------------------------------------------------------------------------


def test_markdown_headings_nest_into_paths() -> None:
    text = """Before any heading.

# Install

Requirements.

## On Linux ##

Use apt.

### Debian

Bookworm.

## On macOS

Use brew.

# Use

Run it.
"""
    document = extract(text.encode(), name="guide.md")
    assert document.title == "Install"
    assert sections(document) == [
        ((), "Before any heading."),
        (("Install",), "Requirements."),
        (("Install", "On Linux"), "Use apt."),
        (("Install", "On Linux", "Debian"), "Bookworm."),
        (("Install", "On macOS"), "Use brew."),
        (("Use",), "Run it."),
    ]


def test_setext_headings_take_their_whole_paragraph() -> None:
    text = "Guide\n=====\n\nIntro.\n\nA two line\nheading\n---\n\nBody.\n\n---\n\nAfter a rule.\n"
    assert sections(extract(text.encode(), name="a.md")) == [
        (("Guide",), "Intro."),
        (("Guide", "A two line heading"), "Body.\n\n---\n\nAfter a rule."),
    ]


def test_lines_in_fenced_code_are_never_headings() -> None:
    text = """# Real

```sh
# install it
pip install x
## not a heading either
```

~~~~
# tilde fence
```
# still inside: a shorter or different fence does not close it
~~~~

    # indented four spaces: code

#hashtag is text, so is ####### seven
"""
    (section,) = extract(text.encode(), name="a.md").sections
    assert section.headings == ("Real",)
    for line in ("# install it", "## not a heading either", "# tilde fence", "# still inside", "#hashtag"):
        assert line in section.text


def test_an_unclosed_fence_runs_to_the_end() -> None:
    text = "# A\n\n```\n# B\n\ncode\n"
    assert sections(extract(text.encode(), name="a.md")) == [(("A",), "```\n# B\n\ncode")]


def test_markdown_title_comes_from_front_matter_then_first_h1_then_the_file_name() -> None:
    front = "---\ntitle: 'Declared'\nauthor: me\n---\n# First\n\nText.\n"
    document = extract(front.encode(), name="x.md")
    assert document.title == "Declared"
    assert sections(document) == [(("First",), "Text.")]
    assert (
        extract(b"## Second level\n\ntext\n\n# First *real* one\n\nmore", name="x.md").title
        == "First real one"
    )
    assert extract(b"## Only lower levels\n\ntext", name="dir/some-file.md").title == "some-file"


def test_heading_text_drops_inline_markup() -> None:
    text = "# Install [`agentstage`](https://example.com) **now**\n\nbody\n"
    assert extract(text.encode(), name="a.md").sections[0].headings == ("Install agentstage now",)


def test_random_markdown_outlines_give_the_right_heading_paths() -> None:
    rng = random.Random(7)
    for _ in range(200):
        path: list[tuple[int, str]] = []
        blocks: list[str] = []
        expected: list[tuple[tuple[str, ...], list[str]]] = []
        for number in range(rng.randint(1, 12)):
            level = rng.randint(1, 6)
            heading = f"H{number} {rng.choice(WORDS)}"
            if level <= 2 and rng.random() < 0.4:
                blocks.append(f"{heading}\n{('=' if level == 1 else '-') * rng.randint(1, 8)}")
            else:
                blocks.append(
                    f"{' ' * rng.randint(0, 3)}{'#' * level} {heading}{rng.choice(['', ' ' + '#' * 3])}"
                )
            path = [(lvl, text) for lvl, text in path if lvl < level] + [(level, heading)]
            body: list[str] = []
            for _ in range(rng.randint(0, 3)):
                if rng.random() < 0.3:
                    body.append(f"```\n# fake {number}\n{rng.choice(WORDS)}\n```")
                else:
                    body.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))))
            blocks.extend(body)
            if body:
                expected.append((tuple(text for _, text in path), words(" ".join(body))))
        content = "\n\n".join(blocks).encode()
        if not expected:
            with pytest.raises(ExtractionError, match="is empty"):
                extract(content, name="outline.md")
            continue
        document = extract(content, name="outline.md")
        assert [(s.headings, words(s.text)) for s in document.sections] == expected


# --- HTML ----------------------------------------------------------------------------------------------


def test_html_sections_follow_headings_and_hide_what_is_not_shown() -> None:
    page = """<!DOCTYPE html>
<html><head><title>  The &amp; Title </title><style>p { color: red }</style>
<script>document.write("<h1>not a heading</h1>")</script></head>
<body>
<nav>Home</nav>
<h1>Main <small>part</small></h1>
<p>Hello&nbsp;<b>wor</b>ld &lt;3 &#8217;s&#x21;</p><div>block<br>next line</div>
<ul><li>one</li><li>two <i>items</i></li></ul>
<template><h2>template heading</h2>template text</template><noscript>enable JS</noscript>
<svg><title>icon title</title><text>icon</text></svg>
<h2>Sub</h2><pre>  code
    indented</pre>
<table><tr><th>a</th><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>
<h3>Deeper</h3>text<h2>Sibling</h2><p>last
   paragraph</p>
</body></html>"""
    document = extract(page.encode(), name="page.html")
    assert document.title == "The & Title"
    assert sections(document) == [
        ((), "Home"),
        (("Main part",), "Hello world <3 ’s!\n\nblock\nnext line\n\none\ntwo items"),
        (("Main part", "Sub"), "  code\n    indented\n\na b\nc d"),
        (("Main part", "Sub", "Deeper"), "text"),
        (("Main part", "Sibling"), "last paragraph"),
    ]
    hidden = ("not a heading", "color", "template", "enable JS", "icon")
    assert not any(word in repr(document) for word in hidden)


def test_html_title_falls_back_to_the_first_h1_then_the_file_name() -> None:
    assert extract(b"<title> </title><h2>b</h2>x<h1>First</h1>y", name="a.html").title == "First"
    assert extract(b"<p>just text</p>", name="site/index.html").title == "index"


def test_broken_html_still_gives_its_text() -> None:
    page = b"<div><p>unclosed <b>bold <h2>Head</p></div></span>tail &bogus; & < 3 <!-- comment -->"
    assert sections(extract(page, name="a.html")) == [
        ((), "unclosed bold"),
        (("Head",), "tail &bogus; & < 3"),
    ]


def test_markup_the_html_parser_refuses_is_refused_with_the_reason() -> None:
    with pytest.raises(
        ExtractionError, match=r"^page.html: not readable html \(unknown status keyword 'foo'"
    ):
        extract(b"<p>text</p><![foo[ x", name="page.html")


@pytest.mark.parametrize(
    ("name", "template"),
    [
        ("a.md", "---\ntitle: {0}\n---\n# {0}\n\n## {0}\n\ntext"),
        ("a.html", "<title>{0}</title><h2>{0}</h2>text"),
    ],
)
def test_titles_and_headings_are_cut_with_an_ellipsis(name: str, template: str) -> None:
    """Each is stored with, and embedded above, every chunk under it: a 44 KB heading line must not be."""
    long = " ".join(f"Section{i:05d}" for i in range(4000))
    document = extract(template.format(long).encode(), name=name)
    [section] = document.sections
    for part in (document.title, *section.headings):
        assert part.endswith("…") and long.startswith(part[:-1]) and len(part) <= extraction.MAX_HEADING_CHARS


def test_random_html_keeps_visible_words_in_order_under_their_headings() -> None:
    rng = random.Random(11)
    containers = ["div", "p", "span", "b", "section", "li", "td", "pre", "blockquote"]
    for _ in range(300):
        parts: list[str] = []
        path: list[tuple[int, str]] = []
        visible: list[tuple[tuple[str, ...], str]] = []  # each shown word, with its heading path
        open_tags: list[str] = []
        for number in range(rng.randint(1, 60)):
            roll = rng.random()
            if roll < 0.2:
                open_tags.append(rng.choice(containers))
                parts.append(f"<{open_tags[-1]}>")
            elif roll < 0.35 and open_tags:
                parts.append(f"</{open_tags.pop()}>")
            elif roll < 0.45:
                hidden = rng.choice(["script", "style", "template", "noscript"])
                parts.append(f"<{hidden}>hidden <p>words</p><h1>nor this</h1></{hidden}>")
            elif roll < 0.55:
                level, word = rng.randint(1, 6), rng.choice(WORDS)
                parts.append(f"<h{level}>T{number} <em>{html.escape(word)}</em></h{level}>")
                path = [(lvl, text) for lvl, text in path if lvl < level] + [(level, f"T{number} {word}")]
            else:
                word = rng.choice([*WORDS, "a&b", "<x>", '"q"'])
                parts.append(html.escape(word) + rng.choice([" ", "\n", "&nbsp;", "\t "]))
                visible.append((tuple(text for _, text in path), word))
        parts.extend(f"</{tag}>" for tag in reversed(open_tags))
        content = "".join(parts).encode()
        if not visible:
            with pytest.raises(ExtractionError, match="is empty"):
                extract(content, name="r.html")
            continue
        document = extract(content, name="r.html")
        assert [(s.headings, word) for s in document.sections for word in words(s.text)] == visible
        assert not re.search("hidden|words|nor this", repr(document))


def test_html_entities_round_trip() -> None:
    rng = random.Random(3)
    alphabet = "ab <>&\"'é€😀;#x"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        if not text.strip():
            continue
        named = html.escape(text)
        for escaped in (named, named.encode("ascii", "xmlcharrefreplace").decode()):
            assert extract(f"<p>{escaped}</p>".encode(), name="e.html").sections[0].text == " ".join(
                text.split()
            )


# --- PDF -----------------------------------------------------------------------------------------------


def test_pdf_pages_become_paragraphs_and_the_title_comes_from_metadata() -> None:
    document = extract(
        pdf(["Hello world.", "Second line"], ["Page two"], title="  Annual   report "), name="r.pdf"
    )
    assert document == ExtractedDocument(
        "Annual report", (Section((), "Hello world.\nSecond line\n\nPage two"),)
    )


def test_pdf_title_falls_back_to_the_first_line() -> None:
    assert extract(pdf(["", "Quarterly figures", "more"]), name="q.pdf").title == "Quarterly figures"
    long_line = " ".join(["word"] * 60)
    title = extract(pdf([long_line]), name="q.pdf").title
    assert len(title) <= 120 and long_line.startswith(title) and title.endswith("word")


def test_a_pdf_encrypted_with_an_empty_user_password_is_read() -> None:
    content = pdf(["Readable by anyone"], password="", owner="owner-secret")
    assert extract(content, name="r.pdf").sections == (Section((), "Readable by anyone"),)


def test_a_password_protected_pdf_is_refused_with_the_reason() -> None:
    with pytest.raises(ExtractionError, match=r"^locked\.pdf: the PDF is protected by a password"):
        extract(pdf(["Secret"], password="secret"), name="locked.pdf")


def test_a_pdf_without_text_needs_ocr() -> None:
    blank = pdf([])  # a page with no text on it, like a scan
    with pytest.raises(
        ExtractionError, match=r"^scan\.pdf: no extractable text \(scanned\? OCR is not supported\)$"
    ):
        extract(blank, name="scan.pdf")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a pdf at all",
        b"%PDF-1.7\n",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF",
        b"\x00" * 64,
    ],
)
def test_a_corrupt_pdf_is_refused_with_the_reason(content: bytes) -> None:
    with pytest.raises(ExtractionError, match=r"^bad\.pdf: not a readable PDF \(\w+: .+\)$"):
        extract(content, name="bad.pdf")


def test_damaged_pdfs_fail_only_with_extraction_errors() -> None:
    rng = random.Random(5)
    good = pdf(["Hello world.", "Second line"], ["Page two"], title="T")
    outcomes = set()
    for _ in range(150):
        damaged = bytearray(good)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(len(damaged))]
        for _ in range(rng.randint(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            document = extract(bytes(damaged), name="damaged.pdf")
        except ExtractionError as error:
            assert str(error).startswith("damaged.pdf: ")
            outcomes.add("refused")
        else:
            assert document.sections and all(section.text.strip() for section in document.sections)
            outcomes.add("read")
    assert outcomes == {"refused", "read"}


def test_random_bytes_of_any_declared_type_fail_only_with_extraction_errors() -> None:
    rng = random.Random(9)
    for _ in range(300):
        content = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        for name in ("r.txt", "r.md", "r.html", "r.pdf"):
            try:
                document = extract(content, name=name)
            except ExtractionError as error:
                assert str(error).startswith("r.")
            else:
                assert document.sections and all(section.text.strip() for section in document.sections)
