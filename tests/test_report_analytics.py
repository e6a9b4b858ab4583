"""The report with structured summaries and redaction: the action-item section, placeholders
in every exported file, and the page as headless Chromium renders it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components.common.records import Segment, SummaryRecord, TranscriptRecord, write_jsonl
from components.report.report import ReportOptions, build_report, export

STRUCTURED = {
    "summary": "Maria Lopez reported a double charge.",
    "key_points": ["Charged twice"],
    "action_items": [
        {"owner": "Support <team>", "task": "refund the second charge", "due": "Friday"},
        {"owner": None, "task": "call back on 415-867-5309", "due": None},
    ],
    "decisions": [],
    "topics": ["billing", "refund"],
    "sentiment": "negative",
    "language": "en",
}
SPOKEN = "Hi, I am Maria Lopez, my card is 4111 1111 1111 1111 and my phone is 415-867-5309."


def _report(tmp_path: Path, redact: str):
    inp = tmp_path / "in"
    inp.mkdir()
    source = str(inp / "call.wav")
    write_jsonl(tmp_path / "manifest.jsonl", [{"source": source, "etag": "e", "size": 1}])
    write_jsonl(
        tmp_path / "t.jsonl",
        [
            TranscriptRecord(
                source,
                language="en",
                duration_s=9.0,
                text=SPOKEN,
                segments=[Segment(0.0, 9.0, SPOKEN)],
                processing_s=1.0,
            )
        ],
    )
    write_jsonl(
        tmp_path / "s.jsonl",
        [SummaryRecord(source, summary="Maria Lopez was charged twice.", structured=STRUCTURED)],
    )
    return build_report(
        str(tmp_path / "manifest.jsonl"),
        [str(tmp_path / "t.jsonl")],
        [str(tmp_path / "s.jsonl")],
        str(inp),
        ReportOptions(),
        redact,
    )


def test_action_items_and_topics_are_in_both_pages(tmp_path):
    report = _report(tmp_path, "none")
    assert "<h2>Action items and topics</h2>" in report.html
    assert "<td>Support &lt;team&gt;</td><td>refund the second charge</td><td>Friday</td>" in (
        report.html
    )
    assert "topics: billing, refund; sentiment: negative" in report.html
    assert "## Action items and topics" in report.markdown
    assert "| Support &lt;team&gt; | refund the second charge | Friday |" in report.markdown
    assert "| — | call back on 415-867-5309 | — |" in report.markdown


def test_redacted_report_and_export_carry_placeholders_only(tmp_path):
    report = _report(tmp_path, "outputs")
    out = tmp_path / "out"
    export(str(out), report)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"call.wav.txt", "call.wav.srt", "summaries.jsonl"}
    for path in files:
        text = path.read_text()
        for value in ("Lopez", "4111 1111", "415-867-5309"):
            assert value not in text, (path.name, value)
    assert "[CARD]" in (out / "text" / "call.wav.txt").read_text()
    assert "[PHONE]" in (out / "subtitles" / "call.wav.srt").read_text()
    assert "call back on [PHONE]" in report.html
    assert report.summaries[0]["structured"]["summary"] == "[PERSON] reported a double charge."


def test_chromium_shows_the_action_items(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on the PATH (apt-get install chromium)")
    page = tmp_path / "report.html"
    page.write_text(_report(tmp_path, "outputs").html)
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "Action items and topics" in dom
    assert "<td>refund the second charge</td>" in dom
    assert "call back on [PHONE]" in dom
