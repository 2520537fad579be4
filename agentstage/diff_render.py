"""A plan diff for its readers: a tree for people, JSON for machines, Markdown for a pull request.

Every view puts the security-relevant settings first, then the resources added, removed and changed
(each setting shown once: a labelled one under security, the rest under its resource), then the policy
verdict of both sides and the blocking failures the change brings or clears.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from typing import Any

from agentstage.plan_diff import DEPENDENCIES, PlanDiff, ResourceChange, SettingChange
from agentstage.plan_review import Blocking, CostChange, DiffReport, Verdict
from agentstage.render import role_name
from core.graph import short_type
from cost.render import money

WIDTH = 100
"""Longest value shown in the tree and in Markdown; JSON carries every value whole."""

KIND_MARKS = {"added": "+", "removed": "-", "changed": "~"}


def show(value: Any, path: str = "", *, width: int | None = WIDTH) -> str:
    """A setting's value as a reviewer reads it: roles by name, ``(absent)`` for a setting not there."""
    if value is None:
        return "(absent)"
    if path.endswith("roleDefinitionId") and isinstance(value, str):
        value = role_name(value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _plain(settings: tuple[SettingChange, ...]) -> list[SettingChange]:
    return [s for s in settings if s.concern is None]


def _counts(diff: PlanDiff) -> str:
    return ", ".join(f"{len(diff.of_kind(kind))} {kind}" for kind in KIND_MARKS)


def _heading(report: DiffReport) -> str:
    diff = report.diff
    return (
        f"stack {diff.stack}: {report.base_label} ({diff.base_count} resources) -> "
        f"{report.head_label} ({diff.head_count} resources)"
    )


def tree_lines(report: DiffReport) -> Iterator[str]:
    diff = report.diff
    yield _heading(report)
    if diff.empty:
        yield "no resource changes"
    else:
        yield _counts(diff)
    if diff.security:
        yield ""
        yield "security and cost:"
        for change in diff.security:
            yield f"  {KIND_MARKS[change.kind]} {change.name}  {short_type(change.type)}"
            for setting in change.settings:
                if setting.concern:
                    yield f"      [{setting.concern}] {_arrow(setting)}"
    for kind, mark in KIND_MARKS.items():
        changes = diff.of_kind(kind)
        if changes:
            yield ""
            yield f"{kind}:"
            for change in changes:
                shown = report.summaries.get(change.urn)
                yield f"  {mark} {change.name}  {short_type(change.type)}" + (f"  [{shown}]" if shown else "")
                for setting in _plain(change.settings):
                    lines = text_changes(setting)
                    if lines:
                        yield f"      {setting.path}:"
                        yield from (f"        {line}" for line in lines)
                    else:
                        yield f"      {_arrow(setting)}"
    yield ""
    yield from _policy_lines(report)
    yield from _cost_lines(report)


def _cost_lines(report: DiffReport) -> Iterator[str]:
    cost = report.cost
    if cost is None:
        return
    yield ""
    yield f"cost (fixed, idle, {cost.currency}/month): {money(cost.base)} -> {money(cost.head)} ({_signed(cost.delta)})"
    for name, before, after in cost.resources:
        yield f"  {name}: {money(before)} -> {money(after)} ({_signed(after - before)})"


def _signed(amount: float) -> str:
    return f"{'+' if amount >= 0 else '-'}{money(abs(amount))}"


def text_changes(setting: SettingChange) -> list[str]:
    """The changed lines of a multi-line text (a gateway policy document), ``-``/``+`` marked; else none."""
    old, new = setting.old, setting.new
    if not (isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new)):
        return []
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
    return [line for line in lines if line[:1] in "-+" and not line.startswith(("---", "+++"))]


def _arrow(setting: SettingChange) -> str:
    if setting.path == DEPENDENCIES:
        return f"{setting.path}: {_dependency_change(setting)}"
    if setting.old is None:
        return f"{setting.path} = {show(setting.new, setting.path)}"
    if setting.new is None:
        return f"{setting.path} (was {show(setting.old, setting.path)})"
    return f"{setting.path}: {show(setting.old, setting.path)} -> {show(setting.new, setting.path)}"


def _policy_lines(report: DiffReport) -> Iterator[str]:
    width = max(len(report.base_label), len(report.head_label))
    yield "policy (agentstage rules):"
    yield f"  {report.base_label:<{width}}  {report.base_verdict.text}"
    yield f"  {report.head_label:<{width}}  {report.head_verdict.text}"
    if report.note:
        yield f"  note: {report.note}"
    for title, items in _policy_news(report):
        for check, name, message in items:
            yield f"  {title}: {check} on {name}: {message}"


def _policy_news(report: DiffReport) -> tuple[tuple[str, list[Blocking]], ...]:
    return (
        ("new blocking", report.new_blocking),
        ("newly waived", report.newly_waived),
        ("cleared", report.cleared_blocking),
    )


def all_lines(reports: list[DiffReport], *, markdown: bool, several: bool) -> Iterator[str]:
    """One stack's diff; or, for ``several``, each touched stack's and a last line naming the others."""
    view = markdown_lines if markdown else tree_lines
    if not several:
        for report in reports:
            yield from view(report)
        return
    touched = [report for report in reports if report.touched]
    for report in touched:
        yield from view(report)
        yield ""
    untouched = [_code(r.diff.stack) if markdown else r.diff.stack for r in reports if not r.touched]
    if not touched:
        base = reports[0].base_label if reports else "the base"
        yield f"No stack changes against {_code(base) if markdown else base}."
    elif untouched:
        yield f"Unchanged: {', '.join(untouched)}."


def json_text(reports: list[DiffReport], *, several: bool) -> str:
    """One stack's diff as an object; for ``several``, every stack's in ``stacks`` and the names of those
    the change leaves alone in ``unchanged``."""
    if not several:
        [report] = reports
        return json.dumps(_report_json(report), indent=2)
    payload = {
        "stacks": [_report_json(report) for report in reports if report.touched],
        "unchanged": [report.diff.stack for report in reports if not report.touched],
    }
    return json.dumps(payload, indent=2)


def _report_json(report: DiffReport) -> dict[str, Any]:
    diff = report.diff
    return {
        "stack": diff.stack,
        "base": {
            "label": report.base_label,
            "resources": diff.base_count,
            **_verdict_json(report.base_verdict),
        },
        "head": {
            "label": report.head_label,
            "resources": diff.head_count,
            **_verdict_json(report.head_verdict),
        },
        "changes": [_change_json(change) for change in diff.changes],
        "security": [change.urn for change in diff.security],
        "newBlocking": [_blocking_json(item) for item in report.new_blocking],
        "newlyWaived": [_blocking_json(item) for item in report.newly_waived],
        "clearedBlocking": [_blocking_json(item) for item in report.cleared_blocking],
        "cost": _cost_json(report.cost),
    }


def _cost_json(cost: CostChange | None) -> dict[str, Any] | None:
    if cost is None:
        return None
    return {
        "currency": cost.currency,
        "baseFixedMonthly": round(cost.base, 2),
        "headFixedMonthly": round(cost.head, 2),
        "resources": [
            {"resource": name, "base": round(before, 2), "head": round(after, 2)}
            for name, before, after in cost.resources
        ],
    }


def _verdict_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "policy": verdict.text,
        "blocking": [_blocking_json(item) for item in verdict.blocking],
        "waived": [_blocking_json(item) for item in verdict.waived],
    }


def _blocking_json(item: Blocking) -> dict[str, str]:
    check, name, message = item
    return {"check": check, "resource": name, "message": message}


def _change_json(change: ResourceChange) -> dict[str, Any]:
    return {
        "urn": change.urn,
        "type": change.type,
        "name": change.name,
        "kind": change.kind,
        "concerns": list(change.concerns),
        "settings": [
            {"path": s.path, "old": s.old, "new": s.new, "concern": s.concern} for s in change.settings
        ],
    }


def markdown_lines(report: DiffReport) -> Iterator[str]:
    """The diff as a pull-request comment."""
    diff = report.diff
    yield f"### Plan diff: {_code(diff.stack)} — {_code(report.base_label)} → {_code(report.head_label)}"
    yield ""
    summary = _counts(diff) if not diff.empty else "no resource changes"
    yield f"**{summary}** ({diff.base_count} → {diff.head_count} resources)"
    if diff.security:
        yield ""
        yield "#### ⚠️ Security and cost"
        yield ""
        yield "| | resource | concern | setting | before | after |"
        yield "|---|---|---|---|---|---|"
        for change in diff.security:
            for setting in change.settings:
                if setting.concern:
                    yield (
                        f"| {KIND_MARKS[change.kind]} | {_code(change.name)} {_cell(short_type(change.type))} "
                        f"| {setting.concern} | {_code(setting.path)} | {_value_cell(setting.old, setting.path)} "
                        f"| {_value_cell(setting.new, setting.path)} |"
                    )
    for kind in KIND_MARKS:
        changes = diff.of_kind(kind)
        if changes:
            yield ""
            yield f"#### {kind.capitalize()} ({len(changes)})"
            yield ""
            yield from _markdown_changes(changes, report.summaries)
    yield ""
    yield "#### Policy (agentstage rules)"
    yield ""
    yield "| side | verdict |"
    yield "|---|---|"
    yield f"| {_code(report.base_label)} | {_cell(report.base_verdict.text)} |"
    yield f"| {_code(report.head_label)} | {_cell(report.head_verdict.text)} |"
    if report.note:
        yield ""
        yield f"*{_cell(report.note)}*"
    for title, items in _policy_news(report):
        if items:
            yield ""
            yield f"**{title.capitalize()}:**"
            for check, name, message in items:
                yield f"- {_code(check)} on {_code(name)}: {_cell(message)}"
    if report.cost is not None:
        cost = report.cost
        yield ""
        yield f"#### Cost (fixed, idle, {cost.currency}/month)"
        yield ""
        yield "| | before | after | change |"
        yield "|---|---:|---:|---:|"
        for name, before, after in cost.resources:
            yield f"| {_code(name)} | {money(before)} | {money(after)} | {_signed(after - before)} |"
        yield f"| **total** | {money(cost.base)} | {money(cost.head)} | **{_signed(cost.delta)}** |"


def _markdown_changes(changes: list[ResourceChange], summaries: dict[str, str]) -> Iterator[str]:
    for change in changes:
        shown = summaries.get(change.urn)
        extra = f" ({_cell(shown)})" if shown else ""
        yield f"- {_code(change.name)} {_cell(short_type(change.type))}{extra}"
        for setting in _plain(change.settings):
            lines = text_changes(setting)
            if setting.path == DEPENDENCIES:
                yield f"  - {_code(setting.path)}: {_cell(_dependency_change(setting))}"
            elif lines:
                yield f"  - {_code(setting.path)}:"
                yield ""
                yield "    ```diff"
                yield from (f"    {line}" for line in lines)
                yield "    ```"
                yield ""
            else:
                yield (
                    f"  - {_code(setting.path)}: {_value_cell(setting.old, setting.path)} → "
                    f"{_value_cell(setting.new, setting.path)}"
                )


def _dependency_change(setting: SettingChange) -> str:
    """``dropped a, b; added c``: the resources it no longer waits for, and the ones it now does."""
    parts = [
        f"{verb} {', '.join(names)}"
        for verb, names in (("dropped", setting.old), ("added", setting.new))
        if names
    ]
    return "; ".join(parts)


def _value_cell(value: Any, path: str) -> str:
    return "*(absent)*" if value is None else _code(show(value, path))


def _code(text: str) -> str:
    """Inline code no value can break out of: a fence longer than any run of backticks in it (a shorter or
    equal one would close early and let the rest render as Markdown), padded so a backtick at either end
    is not read as part of the fence (CommonMark strips one space from each end)."""
    text = _one_cell_line(text)
    longest = max(map(len, re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_INLINE_OPENERS = re.compile(r"[\\`*_~\[\]<>!&|]")
"""The characters that open or close CommonMark's and GitHub's inline constructs (code, emphasis,
strikethrough, links, images, autolinks, raw HTML, entities) or end a table cell; all of them are ASCII
punctuation, which a backslash escapes."""


def _cell(text: str) -> str:
    """Plain ``text`` shown as written, on one line of a table row or list item: the characters of
    :data:`_INLINE_OPENERS` are backslash-escaped, so a value quoted in a policy message (a tag, a setting)
    can open no link, image, emphasis or HTML tag, and the text renders unchanged."""
    return _INLINE_OPENERS.sub(r"\\\g<0>", " ".join(text.splitlines()))


def _one_cell_line(text: str) -> str:
    """``text`` on one line of a table row: every line break a renderer may honour (CommonMark's \\r too,
    which would start a new block: a heading, a link) becomes a space, and a pipe cannot end the cell."""
    return " ".join(text.splitlines()).replace("|", "\\|")
