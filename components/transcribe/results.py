"""``transcripts.jsonl`` records from decoded results, and a shard's metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from components.common import audio
from components.common.records import FAILED, Segment, TranscriptRecord
from components.transcribe.silence import speech_segments

if TYPE_CHECKING:
    from components.transcribe.engine import TranscribeOptions
    from components.transcribe.inputs import LoadedAudio


def build_record(
    source: str,
    result: dict[str, Any],
    samples: np.ndarray,
    options: TranscribeOptions,
    processing_s: float,
) -> TranscriptRecord:
    """A ``transcripts.jsonl`` record from a ``whisper.transcribe()``-shaped result."""
    kept = speech_segments(result, samples, options)
    return TranscriptRecord(
        source=source,
        language=result.get("language") or options.language,
        duration_s=round(samples.size / audio.SAMPLE_RATE, 3),
        text="".join(seg["text"] for seg in kept).strip(),
        segments=[
            Segment(
                start=round(float(seg["start"]), 3),
                end=round(float(seg["end"]), 3),
                text=seg["text"].strip(),
                speaker=seg.get("speaker"),
                words=seg.get("words") if options.word_timestamps else None,
            )
            for seg in kept
        ],
        model=options.model,
        processing_s=round(processing_s, 3),
    )


def silent_record(
    item: LoadedAudio, options: TranscribeOptions, language: str | None
) -> TranscriptRecord:
    """The record of an input whose audio is all below the silence threshold: no text."""
    return build_record(
        item.source,
        {"text": "", "segments": [], "language": language},
        item.samples,
        options,
        item.load_s,
    )


def shard_metrics(records: list[TranscriptRecord]) -> dict[str, float]:
    """KFP metrics of a shard: files, failures, audio and processing seconds, real-time factor."""
    ok = [r for r in records if r.status != FAILED]
    audio_s = sum(r.duration_s or 0.0 for r in ok)
    processing_s = sum(r.processing_s or 0.0 for r in records)
    return {
        "files": len(records),
        "files_failed": len(records) - len(ok),
        "audio_seconds": round(audio_s, 3),
        "processing_seconds": round(processing_s, 3),
        "real_time_factor": round(audio_s / processing_s, 3) if processing_s else 0.0,
    }
