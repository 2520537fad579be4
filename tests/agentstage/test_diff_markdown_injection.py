"""The pull-request comment shows a value as written: no value can close its code span, end its table cell
or start a new line, so a stack file's tag cannot post a heading, a link, an image or an @mention; and a
value a policy message quotes in plain text opens no link, image, emphasis or HTML tag.

No CommonMark parser is installed here, so the rules that decide it are applied as the spec and GitHub's
table extension state them: a code span ends at the next backtick run of exactly its opener's length, a
table cell at a pipe with no backslash right before it, a table row at any line ending.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable

import pytest

from agentstage import diff_render
from agentstage.plan_review import review
from core.graph import ResourceGraph
from policies.rules import load_context

HOSTILE = [
    "x`` ![pwn](https://example.invalid/p.png) @octocat ``y",
    "4711\r## Injected heading\r[click](https://example.invalid)",
    *(f"a{'`' * n} ![pwn](https://example.invalid/p.png) {'`' * n}b" for n in range(1, 6)),
    *(f"{'`' * n}@octocat" for n in range(1, 6)),
    *(f"@octocat{'`' * n}" for n in range(1, 6)),
    "`````",
    "a\r\n# heading",
    "a\n# heading",
    "a\u2028# heading",
    "a\u2029# heading",
    "a\x85# heading",
    "a | b | c",
    "a \\| ![pwn](https://example.invalid/p.png)",
]


INLINE_OPENERS = "\\`*_~[]<>!&|"
"""Every character that opens or closes an inline construct of CommonMark or GitHub (code, emphasis,
strikethrough, link, image, autolink, raw HTML, entity) or ends a table cell."""


def code_spans(text: str) -> tuple[list[str], str]:
    """The code spans of one line of inline Markdown (their contents) and the text outside them, escapes
    kept."""
    spans: list[str] = []
    outside = ""
    at = 0
    while at < len(text):
        if text[at] == "\\" and at + 1 < len(text):  # an escaped character is literal (outside code spans)
            outside += text[at : at + 2]
            at += 2
            continue
        opener = re.match(r"`+", text[at:])
        if opener is None:
            outside += text[at]
            at += 1
            continue
        size = opener.end()
        closer = re.search(rf"(?<!`)`{{{size}}}(?!`)", text[at + size :])
        if closer is None:  # an unmatched run is literal text
            outside += opener.group()
            at += size
            continue
        content = text[at + size : at + size + closer.start()]
        if content.startswith(" ") and content.endswith(" ") and content.strip(" "):
            content = content[1:-1]
        spans.append(content)
        at += size + closer.end()
    return spans, outside


def cells(row: str) -> list[str]:
    """A table row's cells, escaped pipes unescaped (as GitHub does before it reads a cell's inlines)."""
    assert row.startswith("| ") and row.endswith(" |"), row
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row[1:-1])]


def flat(value: str) -> str:
    return " ".join(value.splitlines())


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_stays_one_code_span(value: str) -> None:
    [content], outside = code_spans(diff_render._code(value).replace("\\|", "|"))
    assert (content, outside) == (flat(value), "")
    assert len(diff_render._code(value).splitlines()) == 1


@pytest.fixture(scope="module")
def hostile_diff(stack_graph: Callable[[str], ResourceGraph]) -> list[str]:
    """The comment on a change that sets every hostile value: a tag each, and a security setting each."""
    base = stack_graph("pilot-dev")
    head = ResourceGraph.from_json(base.to_json())
    for index, resource in enumerate(head.resources):
        inputs = json.loads(json.dumps(resource.inputs))
        if resource.name == "agent" and resource.custom:
            inputs["tags"] |= {f"hostile{n}": value for n, value in enumerate(HOSTILE)}
        elif resource.name == "agent-storage" and resource.custom:
            inputs["publicNetworkAccess"] = HOSTILE[0]
        elif resource.name == "agent-app" and resource.custom:  # a setting a policy message quotes
            for setting in inputs["siteConfig"]["appSettings"]:
                if setting["name"] == "AGENTSTAGE_AGENTS":
                    setting["value"] = HOSTILE_MESSAGE_VALUE
        head.resources[index] = dataclasses.replace(resource, inputs=inputs)
    context = load_context("pilot-dev")
    report = review(base, head, labels=("main", "x`` @octocat ``"), contexts=(context, context))
    return list(diff_render.markdown_lines(report))


def test_no_line_of_the_comment_holds_a_line_break(hostile_diff: list[str]) -> None:
    assert all(line.splitlines() in ([line], []) for line in hostile_diff)


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_a_tag_shows_as_its_text_and_nothing_else(hostile_diff: list[str], index: int) -> None:
    [line] = [line for line in hostile_diff if f"`tags.hostile{index}`" in line]
    spans, outside = code_spans(line)
    assert spans == [f"tags.hostile{index}", flat(HOSTILE[index]).replace("|", "\\|")]
    assert outside == "  - : *(absent)* → "


def test_a_security_table_row_keeps_its_six_cells(hostile_diff: list[str]) -> None:
    [row] = [line for line in hostile_diff if "`publicNetworkAccess`" in line]
    row_cells = cells(row)
    assert len(row_cells) == 6, row
    assert [code_spans(cell) for cell in row_cells[-2:]] == [(["Enabled"], ""), ([flat(HOSTILE[0])], "")]


HOSTILE_MESSAGE_VALUE = "[click](https://example.invalid) ![pwn](https://example.invalid/p.png) <img src=x> **b** a|b &amp; `c` \\"


def unescaped(text: str) -> str:
    """Inline Markdown with no code span, unescaped; fails on any character that would open a construct."""
    plain, at = "", 0
    while at < len(text):
        if text[at] == "\\" and at + 1 < len(text) and text[at + 1] in INLINE_OPENERS:
            plain, at = plain + text[at + 1], at + 2
            continue
        assert text[at] not in INLINE_OPENERS, f"{text[at]!r} unescaped at {at} in {text!r}"
        plain, at = plain + text[at], at + 1
    return plain


def test_a_value_quoted_by_a_policy_message_is_plain_text(hostile_diff: list[str]) -> None:
    [line] = [line for line in hostile_diff if line.startswith("- `AGS-") and "pwn" in line]
    spans, outside = code_spans(line)
    assert len(spans) == 2, line  # the check's id and the resource's name only
    assert repr(HOSTILE_MESSAGE_VALUE) in unescaped(outside)


def test_the_heading_shows_a_label_as_written(hostile_diff: list[str]) -> None:
    spans, outside = code_spans(hostile_diff[0])
    assert spans == ["pilot-dev", "main", "x`` @octocat ``"]
    assert outside == "### Plan diff:  —  → "
