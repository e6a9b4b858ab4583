"""The report's "Action items and topics" section, made of the structured summaries.

One entry per file with a structured summary (``summaries.jsonl`` field ``structured``): its
topics, sentiment and action items (owner, task, due). Files without one are left out; the
section is empty when no file has one. Self-contained, so the report pages only insert it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

TITLE = "Action items and topics"


def _entries(
    summaries: Sequence[dict[str, Any]], names: dict[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """(name, structured summary) of the files that have one, by name."""
    found = [
        (names.get(s["source"], s["source"]), s["structured"])
        for s in summaries
        if s.get("status") == "ok" and isinstance(s.get("structured"), dict)
    ]
    return sorted(found, key=lambda entry: entry[0])


def _dash(value: Any) -> str:
    return str(value) if value else "—"


def section_html(summaries: Sequence[dict[str, Any]], names: dict[str, str]) -> str:
    """The section as HTML (empty string without structured summaries)."""
    entries = _entries(summaries, names)
    if not entries:
        return ""
    e = html.escape
    out = [f'<h2>{TITLE}</h2><div class="analytics">']
    for name, value in entries:
        topics = ", ".join(value.get("topics") or []) or "—"
        out.append(
            f"<h3><code>{e(name)}</code></h3><p>topics: {e(topics)}; "
            f"sentiment: {e(_dash(value.get('sentiment')))}</p>"
        )
        items = value.get("action_items") or []
        if items:
            out.append("<table><tr><th>owner</th><th>task</th><th>due</th></tr>")
            out += [
                f"<tr><td>{e(_dash(i.get('owner')))}</td><td>{e(_dash(i.get('task')))}</td>"
                f"<td>{e(_dash(i.get('due')))}</td></tr>"
                for i in items
            ]
            out.append("</table>")
        else:
            out.append("<p>no action items</p>")
    out.append("</div>")
    return "\n".join(out) + "\n"


def _md(text: Any) -> str:
    return html.escape(_dash(text), quote=False).replace("|", "\\|").replace("\n", " ")


def section_markdown(summaries: Sequence[dict[str, Any]], names: dict[str, str]) -> str:
    """The section as Markdown (empty string without structured summaries)."""
    entries = _entries(summaries, names)
    if not entries:
        return ""
    lines = ["", f"## {TITLE}"]
    for name, value in entries:
        topics = ", ".join(value.get("topics") or []) or "—"
        lines += ["", f"### `{_md(name)}`", "", f"topics: {_md(topics)}; "
                  f"sentiment: {_md(value.get('sentiment'))}", ""]  # fmt: skip
        items = value.get("action_items") or []
        if items:
            lines += ["| owner | task | due |", "|---|---|---|"]
            lines += [
                f"| {_md(i.get('owner'))} | {_md(i.get('task'))} | {_md(i.get('due'))} |"
                for i in items
            ]
        else:
            lines.append("no action items")
    return "\n".join(lines) + "\n"


def insert_html(page: str, section: str) -> str:
    """``page`` with ``section`` placed before its closing ``</body>``."""
    if not section:
        return page
    head, sep, tail = page.rpartition("</body>")
    return f"{head}{section}{sep}{tail}" if sep else page + section
