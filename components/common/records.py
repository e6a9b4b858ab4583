"""Per-file records that every stage writes, one JSON object per line (JSON Lines).

Every input object yields exactly one record in every stage: ``status`` is ``"ok"`` or
``"failed"`` and a failed record carries a readable ``error``. Nothing is dropped silently.

Step times: every step stamps its records with ``step_started_at`` and ``step_finished_at``,
the UTC start and end of the task that wrote them (ISO 8601, ``...Z``, :func:`stamp_jsonl`),
and logs the same times in its KFP Metrics as UNIX seconds (:func:`step_metrics`). The
report draws its timeline and computes makespan and shard completion times from them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OK = "ok"
FAILED = "failed"


@dataclass
class Segment:
    """One timed piece of a transcript, in seconds from the start of the file."""

    start: float
    end: float
    text: str
    #: Who said it: a channel's speaker (``channel_0``, or its ``channel_speakers`` name) or
    #: a diarized speaker (``speaker_0``); ``None`` when speakers are not labelled.
    speaker: str | None = None
    #: ``[{word, start, end, probability}]`` with word timestamps, else ``None``.
    words: list[dict[str, Any]] | None = None


@dataclass
class TranscriptRecord:
    """One line of ``transcripts.jsonl``."""

    source: str
    status: str = OK
    error: str | None = None
    language: str | None = None
    duration_s: float | None = None
    text: str = ""
    segments: list[Segment] = field(default_factory=list)
    model: str | None = None
    processing_s: float | None = None
    step_started_at: str | None = None
    step_finished_at: str | None = None

    @classmethod
    def failed(cls, source: str, error: str, **extra: Any) -> TranscriptRecord:
        """A failed record for ``source`` with a readable reason."""
        return cls(source=source, status=FAILED, error=error, **extra)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SummaryRecord:
    """One line of ``summaries.jsonl``."""

    source: str
    status: str = OK
    error: str | None = None
    summary: str = ""
    model: str | None = None
    ttft_s: float | None = None
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    step_started_at: str | None = None
    step_finished_at: str | None = None
    #: The structured summary (components/summarize/structured.py), or ``None``.
    structured: dict[str, Any] | None = None
    #: Why there is no structured summary although one was asked for.
    structured_error: str | None = None

    @classmethod
    def failed(cls, source: str, error: str, **extra: Any) -> SummaryRecord:
        """A failed record for ``source`` with a readable reason."""
        return cls(source=source, status=FAILED, error=error, **extra)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_dict(record: Any) -> dict[str, Any]:
    return record if isinstance(record, dict) else record.to_dict()


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> int:
    """Write records (dataclasses or dicts) to ``path`` atomically; returns the count.

    The file is written beside its destination and renamed into place, so a reader never
    sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    count = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(_as_dict(record), ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSON Lines file, skipping blank lines."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: not a JSON object: {e}") from e


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All JSON objects of a JSON Lines file."""
    return list(iter_jsonl(path))


def utc_now() -> str:
    """The current time in UTC as ISO 8601 with microseconds and a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> float:
    """UNIX seconds of a time written by :func:`utc_now` (any ISO 8601 time with a zone)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def stamped(records: Iterable[Any], started_at: str, finished_at: str) -> Iterator[dict[str, Any]]:
    """The records as dicts carrying the step's ``step_started_at`` and ``step_finished_at``."""
    for record in records:
        yield {
            **_as_dict(record),
            "step_started_at": started_at,
            "step_finished_at": finished_at,
        }


def stamp_jsonl(path: str | os.PathLike, started_at: str, finished_at: str) -> int:
    """Rewrite a step's JSON Lines output with the step's start and end times in every record."""
    return write_jsonl(path, stamped(read_jsonl(path), started_at, finished_at))


def step_metrics(started_at: str, finished_at: str) -> dict[str, float]:
    """A step's times for its KFP Metrics: UNIX seconds (UTC) of start and end, and the span."""
    start, end = parse_utc(started_at), parse_utc(finished_at)
    return {
        "step_started_at_s": round(start, 3),
        "step_finished_at_s": round(end, 3),
        "step_seconds": round(end - start, 3),
    }
