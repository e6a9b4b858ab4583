"""Chunked long-form decoding: speech regions cut into <= 30-s chunks, decoded as batch rows.

``whisper.transcribe()`` decodes a file's 30-s windows one after another, since each window
starts where the previous one's last timestamp ended; a shard of 4 one-hour meetings then has
at most 4 rows per decoder step. Here, as in WhisperX and faster-whisper's batched pipeline,
a voice-activity model (:mod:`components.transcribe.vad`) finds the speech, the speech regions
are merged into chunks of at most :data:`MAX_CHUNK_S` seconds cut at the longest pauses
(:func:`plan_chunks`), and every chunk of every file is one independent audio for the decoder,
so the chunks of one file and of different files fill the rows of one batch. Non-speech
between chunks is never decoded. Each chunk's segments are moved by the chunk's start
(:func:`merge_results`), so a file's segments are in order on the file's own clock.

With ``prompt_previous`` a chunk is prompted with the previous chunk's text, as the
sequential path conditions on the previous window; chunk ``k`` of a file then waits for
chunk ``k - 1``, so one round holds one chunk per file (bench/RESULTS.md measures both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from components.common.audio import SAMPLE_RATE

#: Whisper's window: a chunk is never longer, so it is decoded in one window (or two, when the
#: model stops mid-sentence and the rest is decoded again, as for any short file).
MAX_CHUNK_S = 30.0

#: ``decode(audios, prompts, on_done)``: ``transcribe()``-shaped results of short audios, each
#: prompted with its text (or none); ``on_done(i, result)`` as each audio finishes.
Decode = Callable[
    [list[np.ndarray], list[str | None], Callable[[int, dict], None] | None], list[dict]
]


@dataclass(frozen=True)
class Chunk:
    """One span of a file decoded as its own audio: ``[start_s, end_s)`` on the file's clock."""

    file: int
    start_s: float
    end_s: float

    def samples(self, audio: np.ndarray) -> np.ndarray:
        """The chunk's samples of its file's waveform ``audio``."""
        return audio[round(self.start_s * SAMPLE_RATE) : round(self.end_s * SAMPLE_RATE)]


def plan_chunks(
    regions: Sequence[tuple[float, float]], max_s: float = MAX_CHUNK_S
) -> list[tuple[float, float]]:
    """Speech regions merged into spans of at most ``max_s`` seconds, in order.

    A run of regions that spans more than ``max_s`` is split at its longest pause (the
    widest gap between two neighbouring regions), again until every span fits; a single
    region longer than ``max_s`` (the VAD cuts those at their longest pause already) is cut
    into equal parts. Then neighbouring spans that fit in ``max_s`` together are joined, so
    chunks are long (more context per window, fewer rows).
    """
    spans: list[tuple[float, float]] = []
    stack = [list(regions)] if regions else []
    while stack:
        run = stack.pop()
        start, end = run[0][0], run[-1][1]
        if end - start <= max_s:
            spans.append((start, end))
        elif len(run) == 1:
            parts = int(np.ceil((end - start) / max_s))
            edges = np.linspace(start, end, parts + 1)
            spans.extend(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
        else:
            gaps = [run[i + 1][0] - run[i][1] for i in range(len(run) - 1)]
            cut = int(np.argmax(gaps)) + 1
            stack += [run[cut:], run[:cut]]  # left half popped first: spans stay in order
    filled: list[tuple[float, float]] = []  # then neighbours that fit together are joined
    for start, end in spans:
        if filled and end - filled[-1][0] <= max_s:
            filled[-1] = (filled[-1][0], end)
        else:
            filled.append((start, end))
    return filled


def merge_results(chunks: Sequence[Chunk], results: Sequence[dict], language: str) -> dict:
    """One file's ``transcribe()``-shaped result from its chunks' results (same order).

    Segment times move by the chunk's start and end no later than the chunk; ``seek`` is
    the chunk's start in mel frames; ``id`` counts through the file.
    """
    segments = []
    for chunk, result in zip(chunks, results, strict=True):
        for seg in result["segments"]:
            start = min(chunk.start_s + seg["start"], chunk.end_s)
            end = min(chunk.start_s + seg["end"], chunk.end_s)
            segments.append(
                {
                    **seg,
                    "id": len(segments),
                    "seek": round(chunk.start_s * SAMPLE_RATE / 160) + seg["seek"],
                    "start": start,
                    "end": max(start, end),
                }
            )
    return {
        "text": "".join(r["text"] for r in results),
        "segments": segments,
        "language": results[0]["language"] if results else language,
    }


def join_prompt(initial_prompt: str | None, previous: str | None) -> str | None:
    """The prompt of a chunk: the shard's ``initial_prompt``, then the previous chunk's text."""
    parts = [p.strip() for p in (initial_prompt, previous) if p and p.strip()]
    return " ".join(parts) or None


def transcribe_chunked(
    audios: Sequence[np.ndarray],
    regions: Sequence[Sequence[tuple[float, float]]],
    decode: Decode,
    *,
    language: str,
    initial_prompt: str | None = None,
    prompt_previous: bool = False,
    on_done: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """``transcribe()``-shaped results of ``audios`` decoded chunk by chunk.

    Args:
        audios: 16 kHz mono float32 waveforms.
        regions: each waveform's speech regions in seconds (:func:`vad.speech_regions`).
        decode: decodes a list of chunk waveforms with their prompts (see :data:`Decode`).
        language: the language of a file without speech.
        initial_prompt: text every chunk is prompted with (before the previous chunk's text).
        prompt_previous: prompt each chunk with its file's previous chunk's text.
        on_done: called with ``(index, result)`` as soon as each file's last chunk is done.

    Returns:
        One result per audio, in order; a file without speech regions gets no segments.
    """
    plans = [
        [Chunk(i, s, e) for s, e in plan_chunks(file_regions)]
        for i, file_regions in enumerate(regions)
    ]
    results: list[list[dict | None]] = [[None] * len(p) for p in plans]
    merged: list[dict | None] = [None] * len(audios)

    def finish(i: int) -> None:
        merged[i] = merge_results(plans[i], results[i], language)  # type: ignore[arg-type]
        if on_done is not None:
            on_done(i, merged[i])

    remaining = [len(p) for p in plans]  # chunks of each file not decoded yet
    for i, plan in enumerate(plans):
        if not plan:
            finish(i)
    # without prompt_previous, one round holds every chunk; with it, round k holds chunk k
    rounds = max(remaining, default=0) if prompt_previous else 1
    for k in range(rounds):
        todo = [
            (i, j)
            for i, plan in enumerate(plans)
            for j in range(len(plan))
            if not prompt_previous or j == k
        ]
        if not todo:
            continue
        previous = [results[i][j - 1]["text"] if prompt_previous and j else None for i, j in todo]
        prompts = [join_prompt(initial_prompt, text) for text in previous]

        def chunk_done(n: int, result: dict, todo=todo) -> None:
            i, j = todo[n]
            results[i][j] = result
            remaining[i] -= 1
            if remaining[i] == 0:
                finish(i)

        decode([plans[i][j].samples(audios[i]) for i, j in todo], prompts, chunk_done)
    return merged  # type: ignore[return-value]
