"""Join the plan manifest, transcripts and summaries into a report, metrics and an export.

One row per input file processed by this run, failures first: duration, status, language,
real-time factor, summary and links to the transcript and subtitles. Inputs the plan skipped
(finished by an earlier run, per the ledger) are counted, not listed. The metrics (also
``metrics.json``):

- ``files_total`` (every input under the prefix), ``files_processed`` (planned for this
  run), ``files_skipped`` (finished earlier, left alone), ``files_ok``, ``files_failed``
  (of the processed ones; includes ``files_lost``: planned files that no transcribe task
  reported on, e.g. its shard's task was lost), ``audio_seconds``, ``audio_hours`` (of the
  files transcribed ok by this run)
- ``real_time_factor``: audio seconds per second of transcription, over every ok file
- ``summaries_ok``, ``summaries_failed``, ``ttft_p50_s``, ``ttft_p95_s``
- ``wer`` and ``wer_files`` when ``<name>.txt`` reference transcripts sit beside the audio

The export writes ``transcripts.jsonl``, ``summaries.jsonl`` (one record per input this run
processed, in plan order), ``text/<name>.txt``, ``subtitles/<name>.srt|.vtt``,
``report.html``, ``report.md`` and ``metrics.json`` under the output URI (S3 prefix or local
folder), overwriting the previous run's files. ``<name>`` is the source relative to the input
prefix with its extension kept, so ``a.wav`` and ``a.mp3`` stay apart; every key is
deterministic and checked to stay under the output URI. The complete state over all runs is
the per-input records ``transcripts/<name>.json`` and ``summaries/<name>.json`` that the
stages store (:mod:`components.common.ledger`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from components.common import storage
from components.common.errors import UnsafeKeyError
from components.common.ledger import PROCESS, relative_name
from components.common.records import OK, Segment, SummaryRecord, TranscriptRecord, iter_jsonl
from components.common.stats import percentile
from components.common.subtitles import to_srt, to_vtt
from components.common.wer import corpus_wer

LOST = "lost"
_LOST_ERROR = "lost: no transcribe task reported on this file (its shard did not finish)"


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
        try:
            if storage.exists(uri):
                refs[source] = storage.read_text(uri)
        except UnsafeKeyError:  # an untrusted key the S3 client refuses: no reference
            continue
    return refs


def complete_records(
    sources: Sequence[str],
    transcripts: dict[str, dict[str, Any]],
    summaries: dict[str, dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """One transcript and one summary record per source, in ``sources`` order.

    A planned source without a record gets a failed one that says it was lost; the
    returned set names those sources.
    """
    lost = {s for s in sources if s not in transcripts}
    out_t = [
        transcripts.get(s) or TranscriptRecord.failed(s, _LOST_ERROR).to_dict() for s in sources
    ]
    out_s = [
        summaries.get(s)
        or SummaryRecord.failed(s, transcripts.get(s, {}).get("error") or _LOST_ERROR).to_dict()
        for s in sources
    ]
    return out_t, out_s, lost


def _rtf(t: dict[str, Any]) -> float | None:
    if t["status"] == OK and t.get("duration_s") and t.get("processing_s"):
        return t["duration_s"] / t["processing_s"]
    return None


def build_rows(
    transcripts: Sequence[dict[str, Any]],
    summaries: Sequence[dict[str, Any]],
    lost: set[str],
    names: dict[str, str],
    durations: dict[str, float | None],
) -> list[FileRow]:
    """Table rows, failed and lost files first, then by name."""
    rows = []
    for t, s in zip(transcripts, summaries, strict=True):
        if t["source"] in lost:
            status, error = LOST, t["error"]
        elif t["status"] != OK:
            status, error = t["status"], f"transcribe: {t['error']}"
        elif s["status"] != OK:
            status, error = s["status"], f"summarize: {s['error']}"
        else:
            status, error = OK, None
        rows.append(
            FileRow(
                source=t["source"],
                name=names[t["source"]],
                status=status,
                error=error,
                duration_s=t.get("duration_s") or durations.get(t["source"]),
                language=t.get("language"),
                real_time_factor=_rtf(t),
                summary=s.get("summary") or "",
                transcribed=t["status"] == OK,
            )
        )
    return sorted(rows, key=lambda r: (r.status == OK, r.name))


def compute_metrics(
    transcripts: Sequence[dict[str, Any]],
    summaries: Sequence[dict[str, Any]],
    lost: set[str],
    skipped: int,
    references: dict[str, str],
) -> dict[str, float | int]:
    """The run's figures (see the module docstring); figures without data are left out.

    ``transcripts`` and ``summaries`` are those of the processed files; ``skipped`` counts
    the inputs the plan left alone.
    """
    ok = [t for t in transcripts if t["status"] == OK]
    audio_s = sum(t.get("duration_s") or 0.0 for t in ok)
    processing_s = sum(t.get("processing_s") or 0.0 for t in ok)
    summaries_ok = [s for s in summaries if s["status"] == OK]
    metrics: dict[str, float | int | None] = {
        "files_total": len(transcripts) + skipped,
        "files_processed": len(transcripts),
        "files_skipped": skipped,
        "files_ok": len(ok),
        "files_failed": len(transcripts) - len(ok),
        "files_lost": len(lost),
        "audio_seconds": round(audio_s, 3),
        "audio_hours": round(audio_s / 3600, 6),
        "real_time_factor": round(audio_s / processing_s, 3) if processing_s else None,
        "summaries_ok": len(summaries_ok),
        "summaries_failed": len(summaries) - len(summaries_ok),
        "ttft_p50_s": percentile((s.get("ttft_s") for s in summaries_ok), 50),
        "ttft_p95_s": percentile((s.get("ttft_s") for s in summaries_ok), 95),
    }
    pairs = [
        (references[t["source"]], t.get("text") or "") for t in ok if t["source"] in references
    ]
    if pairs and any(ref.strip() for ref, _ in pairs):
        metrics["wer"] = round(corpus_wer(pairs), 4)
        metrics["wer_files"] = len(pairs)
    return {
        k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items() if v is not None
    }


def all_ok(metrics: dict[str, float | int]) -> bool:
    """True when every processed file was transcribed and summarized (skipped ones were before)."""
    return metrics["files_ok"] == metrics["files_processed"] == metrics["summaries_ok"]


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


_TOTALS = [
    ("files_total", "files"),
    ("files_processed", "processed by this run"),
    ("files_skipped", "skipped (finished earlier)"),
    ("files_ok", "ok"),
    ("files_failed", "failed"),
    ("files_lost", "lost (no task reported)"),
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
    """Relative links to a row's exported files, percent-encoded: a name such as
    ``q?x=1#h.wav`` or ``%2e%2e/x.wav`` stays one path below the report."""
    if not row.transcribed:
        return []
    return [
        (label, quote(f"{folder}/{row.name}.{ext}"))
        for label, folder, ext in (
            ("text", "text", "txt"),
            ("srt", "subtitles", "srt"),
            ("vtt", "subtitles", "vtt"),
        )
    ]


def _md_cell(text: str) -> str:
    """Table-cell text: HTML escaped (Markdown viewers render HTML), pipes escaped, one line."""
    return (
        html.escape(text, quote=False).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    )


def render_markdown(
    rows: Sequence[FileRow], metrics: dict[str, float | int], options: ReportOptions
) -> str:
    """The report as Markdown (KFP ``Markdown`` artifact and ``report.md``)."""
    lines = [f"# {options.title}", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in _totals(metrics)]
    failures = [r for r in rows if r.status != OK]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [
            f"- `{_md_cell(r.name)}` ({r.status}): {_md_cell(r.error or '')}" for r in failures
        ]
    lines += [
        "",
        "## Files",
        "",
        "| file | duration (s) | status | language | RTF | summary | transcript |",
        "|---|---:|---|---|---:|---|---|",
    ]
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
tr.failed,tr.lost{background:#fff1f0}.status-ok{color:#1a7f37}
.status-failed,.status-lost{color:#cf222e;font-weight:600}.summary{max-width:40rem}
.totals td:first-child{color:#57606a}
"""


def render_html(
    rows: Sequence[FileRow], metrics: dict[str, float | int], options: ReportOptions
) -> str:
    """The report as one self-contained HTML page (KFP ``HTML`` artifact and ``report.html``)."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{e(options.title)}</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(options.title)}</h1>",
        '<table class="totals">',
        *(
            f'<tr><td>{e(label)}</td><td class="num">{e(value)}</td></tr>'
            for label, value in _totals(metrics)
        ),
        "</table>",
    ]
    failures = [r for r in rows if r.status != OK]
    if failures:
        out.append("<h2>Failures</h2><ul>")
        out += [
            f"<li><code>{e(r.name)}</code> ({e(r.status)}): {e(r.error or '')}</li>"
            for r in failures
        ]
        out.append("</ul>")
    out.append(
        "<h2>Files</h2><table><tr><th>file</th><th>duration (s)</th><th>status</th>"
        "<th>language</th><th>RTF</th><th>summary</th><th>transcript</th></tr>"
    )
    for r in rows:
        links = " ".join(f'<a href="{e(href)}">{label}</a>' for label, href in _links(r))
        out.append(
            f'<tr class="{e(r.status)}"><td>{e(r.name)}</td>'
            f'<td class="num">{_fmt(r.duration_s, ".1f")}</td>'
            f'<td class="status-{e(r.status)}">{e(r.status)}</td><td>{e(r.language or "")}</td>'
            f'<td class="num">{_fmt(r.real_time_factor, ".1f")}</td>'
            f'<td class="summary">{e(_cut(r.summary, options.summary_chars))}</td>'
            f"<td>{links}</td></tr>"
        )
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"


def _jsonl(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _segments(record: dict[str, Any]) -> list[Segment]:
    return [Segment(float(s["start"]), float(s["end"]), s["text"]) for s in record["segments"]]


def export(output_uri: str, report: Report) -> None:
    """Write every output file of the run under ``output_uri`` (deterministic, checked keys)."""
    join = storage.join
    child = storage.child
    storage.write_text(
        join(output_uri, "transcripts.jsonl"), _jsonl(report.transcripts), "application/x-ndjson"
    )
    storage.write_text(
        join(output_uri, "summaries.jsonl"), _jsonl(report.summaries), "application/x-ndjson"
    )
    by_source = {t["source"]: t for t in report.transcripts}
    for row in filter(lambda r: r.transcribed, report.rows):
        record = by_source[row.source]
        storage.write_text(
            child(join(output_uri, "text"), f"{row.name}.txt"), record["text"] + "\n"
        )
        segments = _segments(record)
        subtitles = join(output_uri, "subtitles")
        storage.write_text(
            child(subtitles, f"{row.name}.srt"), to_srt(segments), "application/x-subrip"
        )
        storage.write_text(child(subtitles, f"{row.name}.vtt"), to_vtt(segments), "text/vtt")
    storage.write_text(join(output_uri, "report.html"), report.html, "text/html; charset=utf-8")
    storage.write_text(join(output_uri, "report.md"), report.markdown, "text/markdown")
    storage.write_text(
        join(output_uri, "metrics.json"),
        json.dumps(report.metrics, indent=2, sort_keys=True) + "\n",
        "application/json",
    )


def build_report(
    manifest_path: str,
    transcript_paths: Sequence[str],
    summary_paths: Sequence[str],
    input_uri: str,
    options: ReportOptions,
) -> Report:
    """Read the stage outputs and render the report of the files this run processed."""
    manifest = list(iter_jsonl(manifest_path))
    planned = [p for p in manifest if p.get("action", PROCESS) == PROCESS]
    sources = [p["source"] for p in planned]
    transcripts, summaries, lost = complete_records(
        sources, read_records(transcript_paths), read_records(summary_paths)
    )
    names = {p["source"]: p.get("name") or relative_name(p["source"], input_uri) for p in planned}
    rows = build_rows(
        transcripts, summaries, lost, names, {p["source"]: p.get("duration_s") for p in planned}
    )
    metrics = compute_metrics(
        transcripts, summaries, lost, len(manifest) - len(planned), read_references(sources)
    )
    return Report(
        html=render_html(rows, metrics, options),
        markdown=render_markdown(rows, metrics, options),
        metrics=metrics,
        rows=rows,
        transcripts=transcripts,
        summaries=summaries,
    )
