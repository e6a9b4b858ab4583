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

- ``makespan_s``, ``mean_shard_completion_s``, ``max_shard_completion_s``, ``shards``
  (:mod:`components.report.figures`); ``step_started_at_s``, ``step_finished_at_s``,
  ``step_seconds`` of the report step itself
- ``catalogue_files``, ``catalogue_ok``, ``catalogue_failed``, ``catalogue_audio_hours``,
  ``catalogue_summaries_ok``, and what this run did to it: ``catalogue_added``,
  ``catalogue_replaced``, ``catalogue_restored``, ``catalogue_removed``
  (:mod:`components.report.catalogue`)

The report step (:func:`run_report_step`) first merges this run's records into the
catalogue (the cumulative ``transcripts.jsonl``, ``summaries.jsonl`` and Parquet dataset),
then exports ``text/<name>.txt`` and ``subtitles/<name>.srt|.vtt`` of the files it
transcribed, the latest ``report.html``, ``report.md`` and ``metrics.json``, and
``runs/<plan start>-<run id>/`` with the plan's manifest, this run's records (the delta),
metrics and report. ``<name>`` is the source relative to the input prefix with its
extension kept, so ``a.wav`` and ``a.mp3`` stay apart; every key is deterministic and checked
to stay under the output URI. The per-input records ``transcripts/<name>.json`` and
``summaries/<name>.json`` that the stages store (:mod:`components.common.ledger`) stay the
state the catalogue is restored from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from components.common import redact as redaction
from components.common import storage
from components.common.errors import UnsafeKeyError
from components.common.ledger import IGNORE, PROCESS, SKIP, relative_name
from components.common.records import (
    OK,
    Segment,
    SummaryRecord,
    TranscriptRecord,
    iter_jsonl,
    parse_utc,
    step_metrics,
    utc_now,
)
from components.common.stats import percentile
from components.common.subtitles import to_srt, to_text, to_vtt
from components.common.wer import corpus_wer
from components.report import analytics
from components.report.catalogue import CatalogueOptions, TableUpdate, update_catalogue
from components.report.figures import RunFigures, run_figures
from components.report.rendering import FileRow, Page, ReportOptions, render_html, render_markdown
from components.report.speakers import talk_times

LOST = "lost"
_LOST_ERROR = "lost: no transcribe task reported on this file (its shard did not finish)"


@dataclass(frozen=True)
class Report:
    """The rendered pages, the figures and the per-input records in plan order."""

    html: str
    markdown: str
    metrics: dict[str, float | int]
    rows: list[FileRow]
    transcripts: list[dict[str, Any]]
    summaries: list[dict[str, Any]]
    manifest: list[dict[str, Any]] = field(default_factory=list)
    #: This run's folder under the output prefix, ``runs/<plan start>-<run id>``.
    run_dir: str = "runs/run"
    #: The pages as kept in ``run_dir`` (their links lead two levels up).
    run_html: str = ""
    run_markdown: str = ""


@dataclass(frozen=True)
class RunRecords:
    """The stage outputs of one run, joined: one transcript and summary per processed file."""

    manifest: list[dict[str, Any]]
    planned: list[dict[str, Any]]
    transcripts: list[dict[str, Any]]
    summaries: list[dict[str, Any]]
    lost: set[str]


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
                speakers=talk_times(t.get("segments") or []),
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


def _jsonl(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _segments(record: dict[str, Any]) -> list[Segment]:
    return [
        Segment(float(s["start"]), float(s["end"]), s["text"], s.get("speaker"))
        for s in record["segments"]
    ]


def run_dir(manifest: Sequence[dict[str, Any]], run_id: str, started_at: str) -> str:
    """``runs/<plan start, compact UTC>-<run id>``: the same for every retry of a run's report."""
    plan_start = next((m["step_started_at"] for m in manifest if m.get("step_started_at")), None)
    stamp = datetime.fromtimestamp(parse_utc(plan_start or started_at), UTC)
    name = stamp.strftime("%Y%m%dT%H%M%SZ") + (f"-{run_id}" if run_id else "")
    return f"runs/{storage.check_relative_key(name)}"


def export(output_uri: str, report: Report) -> None:
    """Write the run's files under ``output_uri`` (deterministic, checked keys).

    ``text/`` and ``subtitles/`` of the files this run transcribed; the latest run's
    ``report.html``, ``report.md`` and ``metrics.json``; and ``runs/<run>/`` with the plan's
    ``manifest.jsonl``, this run's ``transcripts.jsonl`` and ``summaries.jsonl`` (the delta),
    ``metrics.json`` and the report. The catalogue (:mod:`components.report.catalogue`)
    writes the cumulative ``transcripts.jsonl`` and ``summaries.jsonl``.
    """
    join = storage.join
    child = storage.child
    here = join(output_uri, report.run_dir)
    ndjson = "application/x-ndjson"
    storage.write_text(join(here, "manifest.jsonl"), _jsonl(report.manifest), ndjson)
    storage.write_text(join(here, "transcripts.jsonl"), _jsonl(report.transcripts), ndjson)
    storage.write_text(join(here, "summaries.jsonl"), _jsonl(report.summaries), ndjson)
    by_source = {t["source"]: t for t in report.transcripts}
    for row in filter(lambda r: r.transcribed, report.rows):
        record = by_source[row.source]
        storage.write_text(
            child(join(output_uri, "text"), f"{row.name}.txt"),
            to_text(_segments(record), record["text"]),
        )
        segments = _segments(record)
        subtitles = join(output_uri, "subtitles")
        storage.write_text(
            child(subtitles, f"{row.name}.srt"), to_srt(segments), "application/x-subrip"
        )
        storage.write_text(child(subtitles, f"{row.name}.vtt"), to_vtt(segments), "text/vtt")
    metrics = json.dumps(report.metrics, indent=2, sort_keys=True) + "\n"
    for folder, page, markdown in (
        (here, report.run_html, report.run_markdown),
        (output_uri, report.html, report.markdown),
    ):
        storage.write_text(join(folder, "metrics.json"), metrics, "application/json")
        storage.write_text(join(folder, "report.md"), markdown, "text/markdown")
        storage.write_text(join(folder, "report.html"), page, "text/html; charset=utf-8")


def collect(
    manifest_path: str,
    transcript_paths: Sequence[str],
    summary_paths: Sequence[str],
    input_uri: str,
    redact: str = redaction.NONE,
) -> RunRecords:
    """Read the plan's manifest and the stage outputs; every manifest line gets its ``name``.

    ``redact`` (:mod:`components.common.redact`): unless ``none``, every record not redacted
    yet is redacted here, before the catalogue, the pages or the export see it.
    """
    manifest = [
        {**m, "name": m.get("name") or relative_name(m["source"], input_uri)}
        for m in iter_jsonl(manifest_path)
    ]
    planned = [p for p in manifest if p.get("action", PROCESS) == PROCESS]
    transcripts, summaries, lost = complete_records(
        [p["source"] for p in planned],
        read_records(transcript_paths),
        read_records(summary_paths),
    )
    transcripts = [redaction.redact_transcript(t, redact) for t in transcripts]
    summaries = [redaction.redact_summary(s, redact) for s in summaries]
    return RunRecords(manifest, planned, transcripts, summaries, lost)


def catalogue_metrics(update: dict[str, TableUpdate]) -> dict[str, float | int]:
    """The catalogue's totals after an update, as metrics."""
    t, s = update["transcripts"], update["summaries"]
    return {
        "catalogue_files": t.records,
        "catalogue_ok": t.ok,
        "catalogue_failed": t.records - t.ok,
        "catalogue_audio_hours": round(t.audio_seconds / 3600, 6),
        "catalogue_summaries_ok": s.ok,
        "catalogue_added": t.added,
        "catalogue_replaced": t.replaced,
        "catalogue_restored": t.restored,
        "catalogue_removed": t.removed,
    }


def figure_metrics(figures: RunFigures) -> dict[str, float | int]:
    """Makespan and shard completion times (seconds), as metrics; absent ones left out."""
    values = {
        "makespan_s": figures.makespan_s,
        "mean_shard_completion_s": figures.mean_shard_completion_s,
        "max_shard_completion_s": figures.max_shard_completion_s,
    }
    return {"shards": len(figures.shards)} | {
        k: round(v, 3) for k, v in values.items() if v is not None
    }


def render_report(
    records: RunRecords,
    input_uri: str,
    options: ReportOptions,
    catalogue: dict[str, TableUpdate] | None = None,
    run_id: str = "",
    started_at: str | None = None,
    rendered_at: str | None = None,
) -> Report:
    """Render the report of one run (the catalogue's totals when an update is given); the
    report step's bar runs from ``started_at`` to ``rendered_at`` (default: now)."""
    started_at = started_at or utc_now()
    planned = records.planned
    sources = [p["source"] for p in planned]
    rows = build_rows(
        records.transcripts,
        records.summaries,
        records.lost,
        {p["source"]: p["name"] for p in planned},
        {p["source"]: p.get("duration_s") for p in planned},
    )
    metrics = compute_metrics(
        records.transcripts,
        records.summaries,
        records.lost,
        sum(p.get("action") == SKIP for p in records.manifest),  # "ignore": not an input
        read_references(sources),
    )
    rendered_at = rendered_at or utc_now()
    figures = run_figures(
        records.manifest, records.transcripts, records.summaries, started_at, rendered_at
    )
    metrics |= figure_metrics(figures)
    if catalogue:
        metrics |= catalogue_metrics(catalogue)
    metrics |= step_metrics(started_at, rendered_at)
    folder = run_dir(records.manifest, run_id, started_at)
    page = Page(
        rows=rows,
        metrics=metrics,
        figures=figures,
        ttft_s=[s["ttft_s"] for s in records.summaries if s.get("ttft_s") is not None],
        durations_s=[r.duration_s for r in rows if r.duration_s],
        run=folder.removeprefix("runs/"),
        ignored=[
            (p["name"], p.get("reason") or "")
            for p in records.manifest
            if p.get("action") == IGNORE
        ],
    )
    run_page = replace(page, link_root="../../")
    names = {p["source"]: p["name"] for p in planned}
    section_html = analytics.section_html(records.summaries, names)
    section_md = analytics.section_markdown(records.summaries, names)
    return Report(
        html=analytics.insert_html(render_html(page, options), section_html),
        markdown=render_markdown(page, options) + section_md,
        metrics=metrics,
        rows=rows,
        transcripts=records.transcripts,
        summaries=records.summaries,
        manifest=records.manifest,
        run_dir=folder,
        run_html=analytics.insert_html(render_html(run_page, options), section_html),
        run_markdown=render_markdown(run_page, options) + section_md,
    )


def build_report(
    manifest_path: str,
    transcript_paths: Sequence[str],
    summary_paths: Sequence[str],
    input_uri: str,
    options: ReportOptions,
    redact: str = redaction.NONE,
) -> Report:
    """Read the stage outputs and render the report of the files this run processed."""
    records = collect(manifest_path, transcript_paths, summary_paths, input_uri, redact)
    return render_report(records, input_uri, options)


def run_report_step(
    manifest_path: str,
    transcript_paths: Sequence[str],
    summary_paths: Sequence[str],
    input_uri: str,
    output_uri: str,
    run_id: str = "",
    options: ReportOptions | None = None,
    catalogue_options: CatalogueOptions | None = None,
    redact: str = redaction.NONE,
) -> Report:
    """The report step: join the stage outputs, update the catalogue, render, export.

    Args:
        manifest_path: The plan's manifest (JSON Lines).
        transcript_paths: Every shard's transcripts (JSON Lines).
        summary_paths: Every shard's summaries (JSON Lines).
        input_uri: The input prefix (names are relative to it).
        output_uri: The output prefix: catalogue, run folder, pages.
        run_id: The pipeline run's id (part of ``runs/<run>/``).
        options: How the pages look.
        catalogue_options: The catalogue's part size.
        redact: Redaction mode (:mod:`components.common.redact`) for what is not redacted yet.

    Returns:
        The rendered report (already exported).
    """
    started_at = utc_now()
    records = collect(manifest_path, transcript_paths, summary_paths, input_uri, redact)
    update = update_catalogue(
        output_uri,
        records.manifest,
        records.transcripts,
        records.summaries,
        run_id,
        catalogue_options or CatalogueOptions(),
    )
    report = render_report(
        records, input_uri, options or ReportOptions(), update, run_id, started_at
    )
    export(output_uri, report)
    return report
