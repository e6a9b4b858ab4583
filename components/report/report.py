"""Join the plan manifest, transcripts and summaries into a report, metrics and an export.

One row per input file, failures first: duration, status, language, real-time factor,
summary and links to the transcript and subtitles. The metrics (also ``metrics.json``):

- ``files_total``, ``files_ok``, ``files_failed``, ``files_skipped`` (a planned file that no
  transcribe task reported on, e.g. its shard's task was lost), ``audio_seconds``,
  ``audio_hours`` (of the files transcribed ok)
- ``real_time_factor``: audio seconds per second of transcription, over every ok file
- ``summaries_ok``, ``summaries_failed``, ``ttft_p50_s``, ``ttft_p95_s``
- ``wer`` and ``wer_files`` when ``<name>.txt`` reference transcripts sit beside the audio

The export writes ``transcripts.jsonl``, ``summaries.jsonl`` (one record per input, in plan
order), ``text/<name>.txt``, ``subtitles/<name>.srt|.vtt``, ``report.html``,
``report.md`` and ``metrics.json`` under the output URI (S3 prefix or local folder).
``<name>`` is the source relative to the input prefix with its extension kept, so ``a.wav``
and ``a.mp3`` stay apart.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from components.common import storage
from components.common.ledger import relative_name
from components.common.records import OK, Segment, SummaryRecord, TranscriptRecord, iter_jsonl
from components.common.stats import percentile
from components.common.subtitles import to_srt, to_vtt
from components.common.wer import corpus_wer

SKIPPED = "skipped"
_SKIPPED_ERROR = "skipped: no transcribe task reported on this file (its shard did not finish)"


@dataclass(frozen=True)
class ReportOptions:
    """How the report looks."""

    title: str = "Transcription and summary report"
    #: Summaries longer than this are cut in the table (the export keeps them whole).
    summary_chars: int = 600


@dataclass(frozen=True)
class FileRow:
    """One line of the report's per-file table."""

    source: str
    name: str
    status: str
    error: str | None
    duration_s: float | None
    language: str | None
    real_time_factor: float | None
    summary: str
    transcribed: bool


@dataclass(frozen=True)
class Report:
    """The rendered pages, the figures and the per-input records in plan order."""

    html: str
    markdown: str
    metrics: dict[str, float | int]
    rows: list[FileRow]
    transcripts: list[dict[str, Any]]
    summaries: list[dict[str, Any]]


def read_records(paths: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Records of several JSON Lines files keyed by source (a later record wins)."""
    return {rec["source"]: rec for path in paths for rec in iter_jsonl(path)}


def reference_uri(source: str) -> str:
    """Where a reference transcript of ``source`` sits: beside it, ``.txt`` for the extension."""
    return source.rpartition(".")[0] + ".txt"


def read_references(sources: Iterable[str]) -> dict[str, str]:
    """Reference texts of the sources that have one."""
    refs = {}
    for source in sources:
        uri = reference_uri(source)
        if storage.exists(uri):
            refs[source] = storage.read_text(uri)
    return refs


def complete_records(
    sources: Sequence[str],
    transcripts: dict[str, dict[str, Any]],
    summaries: dict[str, dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """One transcript and one summary record per source, in ``sources`` order.

    A planned source without a record gets a failed one that says it was skipped; the
    returned set names those sources.
    """
    skipped = {s for s in sources if s not in transcripts}
    out_t = [
        transcripts.get(s) or TranscriptRecord.failed(s, _SKIPPED_ERROR).to_dict() for s in sources
    ]
    out_s = [
        summaries.get(s)
        or SummaryRecord.failed(s, transcripts.get(s, {}).get("error") or _SKIPPED_ERROR).to_dict()
        for s in sources
    ]
    return out_t, out_s, skipped


def _rtf(t: dict[str, Any]) -> float | None:
    if t["status"] == OK and t.get("duration_s") and t.get("processing_s"):
        return t["duration_s"] / t["processing_s"]
    return None


def build_rows(
    transcripts: Sequence[dict[str, Any]],
    summaries: Sequence[dict[str, Any]],
    skipped: set[str],
    durations: dict[str, float | None],
    input_uri: str,
) -> list[FileRow]:
    """Table rows, failed and skipped files first, then by name."""
    rows = []
    for t, s in zip(transcripts, summaries, strict=True):
        if t["source"] in skipped:
            status, error = SKIPPED, t["error"]
        elif t["status"] != OK:
            status, error = t["status"], f"transcribe: {t['error']}"
        elif s["status"] != OK:
            status, error = s["status"], f"summarize: {s['error']}"
        else:
            status, error = OK, None
        rows.append(FileRow(
            source=t["source"],
            name=relative_name(t["source"], input_uri),
            status=status,
            error=error,
            duration_s=t.get("duration_s") or durations.get(t["source"]),
            language=t.get("language"),
            real_time_factor=_rtf(t),
            summary=s.get("summary") or "",
            transcribed=t["status"] == OK,
        ))
    return sorted(rows, key=lambda r: (r.status == OK, r.name))


def compute_metrics(
    transcripts: Sequence[dict[str, Any]],
    summaries: Sequence[dict[str, Any]],
    skipped: set[str],
    references: dict[str, str],
) -> dict[str, float | int]:
    """The run's figures (see the module docstring); figures without data are left out."""
    ok = [t for t in transcripts if t["status"] == OK]
    audio_s = sum(t.get("duration_s") or 0.0 for t in ok)
    processing_s = sum(t.get("processing_s") or 0.0 for t in ok)
    summaries_ok = [s for s in summaries if s["status"] == OK]
    metrics: dict[str, float | int | None] = {
        "files_total": len(transcripts),
        "files_ok": len(ok),
        "files_failed": len(transcripts) - len(ok) - len(skipped),
        "files_skipped": len(skipped),
        "audio_seconds": round(audio_s, 3),
        "audio_hours": round(audio_s / 3600, 6),
        "real_time_factor": round(audio_s / processing_s, 3) if processing_s else None,
        "summaries_ok": len(summaries_ok),
        "summaries_failed": len(summaries) - len(summaries_ok),
        "ttft_p50_s": percentile((s.get("ttft_s") for s in summaries_ok), 50),
        "ttft_p95_s": percentile((s.get("ttft_s") for s in summaries_ok), 95),
    }
    pairs = [(references[t["source"]], t.get("text") or "")
             for t in ok if t["source"] in references]
    if pairs and any(ref.strip() for ref, _ in pairs):
        metrics["wer"] = round(corpus_wer(pairs), 4)
        metrics["wer_files"] = len(pairs)
    return {k: round(v, 4) if isinstance(v, float) else v
            for k, v in metrics.items() if v is not None}


def all_ok(metrics: dict[str, float | int]) -> bool:
    """True when every file was transcribed and summarized."""
    return metrics["files_ok"] == metrics["files_total"] == metrics["summaries_ok"]


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


_TOTALS = [
    ("files_total", "files"),
    ("files_ok", "ok"),
    ("files_failed", "failed"),
    ("files_skipped", "skipped"),
    ("audio_hours", "audio hours"),
    ("real_time_factor", "real-time factor (audio s per processing s)"),
    ("summaries_ok", "summaries ok"),
    ("summaries_failed", "summaries failed"),
    ("ttft_p50_s", "TTFT p50 (s)"),
    ("ttft_p95_s", "TTFT p95 (s)"),
    ("wer", "WER"),
    ("wer_files", "files with a reference"),
]


def _totals(metrics: dict[str, float | int]) -> list[tuple[str, str]]:
    return [(label, str(metrics[key])) for key, label in _TOTALS if key in metrics]


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _links(row: FileRow) -> list[tuple[str, str]]:
    if not row.transcribed:
        return []
    return [(label, f"{folder}/{row.name}.{ext}") for label, folder, ext in (
        ("text", "text", "txt"), ("srt", "subtitles", "srt"), ("vtt", "subtitles", "vtt"))]


def _md_cell(text: str) -> str:
    """Table-cell text: HTML escaped (Markdown viewers render HTML), pipes escaped, one line."""
    return html.escape(text, quote=False).replace("\\", "\\\\").replace("|", "\\|").replace(
        "\n", " ")


def render_markdown(rows: Sequence[FileRow], metrics: dict[str, float | int],
                    options: ReportOptions) -> str:
    """The report as Markdown (KFP ``Markdown`` artifact and ``report.md``)."""
    lines = [f"# {options.title}", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in _totals(metrics)]
    failures = [r for r in rows if r.status != OK]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- `{_md_cell(r.name)}` ({r.status}): {_md_cell(r.error or '')}"
                  for r in failures]
    lines += ["", "## Files", "",
              "| file | duration (s) | status | language | RTF | summary | transcript |",
              "|---|---:|---|---|---:|---|---|"]
    for r in rows:
        links = " ".join(f"[{label}]({href})" for label, href in _links(r))
        lines.append(
            f"| {_md_cell(r.name)} | {_fmt(r.duration_s, '.1f')} | {r.status} | "
            f"{r.language or ''} | {_fmt(r.real_time_factor, '.1f')} | "
            f"{_md_cell(_cut(r.summary, options.summary_chars))} | {links} |"
        )
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}
h1{font-size:1.5rem}table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #d0d7de;padding:.35rem .6rem;vertical-align:top;text-align:left}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed,tr.skipped{background:#fff1f0}.status-ok{color:#1a7f37}
.status-failed,.status-skipped{color:#cf222e;font-weight:600}.summary{max-width:40rem}
.totals td:first-child{color:#57606a}
"""


def render_html(rows: Sequence[FileRow], metrics: dict[str, float | int],
                options: ReportOptions) -> str:
    """The report as one self-contained HTML page (KFP ``HTML`` artifact and ``report.html``)."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        f"<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(options.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(options.title)}</h1>",
        "<table class=\"totals\">",
        *(f"<tr><td>{e(label)}</td><td class=\"num\">{e(value)}</td></tr>"
          for label, value in _totals(metrics)),
        "</table>",
    ]
    failures = [r for r in rows if r.status != OK]
    if failures:
        out.append("<h2>Failures</h2><ul>")
        out += [f"<li><code>{e(r.name)}</code> ({e(r.status)}): {e(r.error or '')}</li>"
                for r in failures]
        out.append("</ul>")
    out.append("<h2>Files</h2><table><tr><th>file</th><th>duration (s)</th><th>status</th>"
               "<th>language</th><th>RTF</th><th>summary</th><th>transcript</th></tr>")
    for r in rows:
        links = " ".join(f"<a href=\"{e(href)}\">{label}</a>" for label, href in _links(r))
        out.append(
            f"<tr class=\"{e(r.status)}\"><td>{e(r.name)}</td>"
            f"<td class=\"num\">{_fmt(r.duration_s, '.1f')}</td>"
            f"<td class=\"status-{e(r.status)}\">{e(r.status)}</td><td>{e(r.language or '')}</td>"
            f"<td class=\"num\">{_fmt(r.real_time_factor, '.1f')}</td>"
            f"<td class=\"summary\">{e(_cut(r.summary, options.summary_chars))}</td>"
            f"<td>{links}</td></tr>"
        )
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"


def _jsonl(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _segments(record: dict[str, Any]) -> list[Segment]:
    return [Segment(float(s["start"]), float(s["end"]), s["text"]) for s in record["segments"]]


def export(output_uri: str, report: Report) -> None:
    """Write every output file of the run under ``output_uri``."""
    join = storage.join
    storage.write_text(join(output_uri, "transcripts.jsonl"), _jsonl(report.transcripts),
                       "application/x-ndjson")
    storage.write_text(join(output_uri, "summaries.jsonl"), _jsonl(report.summaries),
                       "application/x-ndjson")
    by_source = {t["source"]: t for t in report.transcripts}
    for row in filter(lambda r: r.transcribed, report.rows):
        record = by_source[row.source]
        text_uri = join(output_uri, "text", f"{row.name}.txt")
        storage.write_text(text_uri, record["text"] + "\n")
        segments = _segments(record)
        storage.write_text(join(output_uri, "subtitles", f"{row.name}.srt"), to_srt(segments),
                           "application/x-subrip")
        storage.write_text(join(output_uri, "subtitles", f"{row.name}.vtt"), to_vtt(segments),
                           "text/vtt")
    storage.write_text(join(output_uri, "report.html"), report.html, "text/html; charset=utf-8")
    storage.write_text(join(output_uri, "report.md"), report.markdown, "text/markdown")
    storage.write_text(join(output_uri, "metrics.json"),
                       json.dumps(report.metrics, indent=2, sort_keys=True) + "\n",
                       "application/json")


def build_report(
    manifest_path: str,
    transcript_paths: Sequence[str],
    summary_paths: Sequence[str],
    input_uri: str,
    options: ReportOptions,
) -> Report:
    """Read the stage outputs and render the report."""
    planned = list(iter_jsonl(manifest_path))
    sources = [p["source"] for p in planned]
    transcripts, summaries, skipped = complete_records(
        sources, read_records(transcript_paths), read_records(summary_paths))
    rows = build_rows(transcripts, summaries, skipped,
                      {p["source"]: p.get("duration_s") for p in planned}, input_uri)
    metrics = compute_metrics(transcripts, summaries, skipped, read_references(sources))
    return Report(
        html=render_html(rows, metrics, options),
        markdown=render_markdown(rows, metrics, options),
        metrics=metrics,
        rows=rows,
        transcripts=transcripts,
        summaries=summaries,
    )
