"""The paper's figures of one run, from the step times the records carry.

Every step stamps its records with ``step_started_at`` and ``step_finished_at``
(:mod:`components.common.records`): the plan its manifest lines, each shard's transcribe and
summarize steps their records. From them:

- **makespan**: from the plan's start to the end of the last shard step (the plan's own end
  when no shard had work)
- **shard completion time** (the paper's job completion time): from the plan's end, when
  every shard was ready to start, to the end of that shard's last step (summarize); its mean
  and max over the shards that had work
- **per-shard real-time factor**: the shard's audio seconds transcribed ``ok`` per second of
  its transcribe step (model load included)
- the **timeline**: one lane for the plan, one per shard (transcribe, summarize), one for the
  report, in seconds from the plan's start

A shard with no records (no work, or its task was lost) has no bars and no figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.common.records import OK, parse_utc

PLAN, TRANSCRIBE, SUMMARIZE, REPORT = "plan", "transcribe", "summarize", "report"


@dataclass(frozen=True)
class Span:
    """One bar of the timeline: a step of a lane, in UNIX seconds."""

    lane: str
    step: str
    start: float
    end: float


@dataclass(frozen=True)
class ShardFigures:
    """One shard's row: its work, step durations, real-time factor and completion time."""

    shard: int
    files: int
    files_ok: int
    audio_s: float
    transcribe_s: float | None
    summarize_s: float | None
    real_time_factor: float | None
    completion_s: float | None


@dataclass(frozen=True)
class RunFigures:
    """The figures of one run (seconds; ``None`` where the records give no time)."""

    spans: list[Span]
    shards: list[ShardFigures]
    origin: float | None
    makespan_s: float | None
    mean_shard_completion_s: float | None
    max_shard_completion_s: float | None


def _span(lane: str, step: str, records: Sequence[dict[str, Any]]) -> Span | None:
    starts = [parse_utc(r["step_started_at"]) for r in records if r.get("step_started_at")]
    ends = [parse_utc(r["step_finished_at"]) for r in records if r.get("step_finished_at")]
    if not starts or not ends:
        return None
    return Span(lane, step, min(starts), max(ends))


def _seconds(span: Span | None) -> float | None:
    return None if span is None else span.end - span.start


def shard_lane(shard: int) -> str:
    """The timeline lane of a shard."""
    return f"shard {shard}"


def run_figures(
    manifest: Sequence[dict[str, Any]],
    transcripts: Sequence[dict[str, Any]],
    summaries: Sequence[dict[str, Any]],
    report_started_at: str | None = None,
    report_finished_at: str | None = None,
) -> RunFigures:
    """The run's timeline and figures (see the module docstring).

    Args:
        manifest: The plan's manifest lines (each with ``shard`` and the plan's step times).
        transcripts: This run's transcript records, stamped by their transcribe step.
        summaries: This run's summary records, stamped by their summarize step.
        report_started_at: When the report step started (its bar; not in the makespan).
        report_finished_at: When the report was rendered.

    Returns:
        The spans, one row per shard with records, and the run-level figures.
    """
    shard_of = {m["source"]: m.get("shard") for m in manifest}
    plan = _span("plan", PLAN, manifest)
    spans = [plan] if plan else []
    rows = []
    for shard in sorted({s for s in shard_of.values() if s is not None}):
        t_recs = [t for t in transcripts if shard_of.get(t["source"]) == shard]
        s_recs = [s for s in summaries if shard_of.get(s["source"]) == shard]
        t_span = _span(shard_lane(shard), TRANSCRIBE, t_recs)
        s_span = _span(shard_lane(shard), SUMMARIZE, s_recs)
        if t_span is None and s_span is None:
            continue
        spans += [s for s in (t_span, s_span) if s]
        ok = [t for t in t_recs if t.get("status") == OK]
        audio = sum(t.get("duration_s") or 0.0 for t in ok)
        t_s = _seconds(t_span)
        last = max(s.end for s in (t_span, s_span) if s)
        rows.append(
            ShardFigures(
                shard=shard,
                files=len(t_recs),
                files_ok=len(ok),
                audio_s=round(audio, 3),
                transcribe_s=t_s,
                summarize_s=_seconds(s_span),
                real_time_factor=audio / t_s if t_s and audio else None,
                completion_s=last - plan.end if plan else None,
            )
        )
    if report_started_at and report_finished_at:
        spans.append(
            Span("report", REPORT, parse_utc(report_started_at), parse_utc(report_finished_at))
        )
    work = [s.end for s in spans if s.step in (PLAN, TRANSCRIBE, SUMMARIZE)]
    completions = [r.completion_s for r in rows if r.completion_s is not None]
    return RunFigures(
        spans=spans,
        shards=rows,
        origin=plan.start if plan else (min(s.start for s in spans) if spans else None),
        makespan_s=max(work) - plan.start if plan and work else None,
        mean_shard_completion_s=sum(completions) / len(completions) if completions else None,
        max_shard_completion_s=max(completions) if completions else None,
    )
