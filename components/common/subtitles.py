"""Subtitles from transcript segments: SubRip (``.srt``) and WebVTT (``.vtt``).

Segments are :class:`~components.common.records.Segment` objects or dicts with ``start``,
``end`` (seconds) and ``text``, as in ``transcripts.jsonl``. Cues with no text are left out
and cues are renumbered; no segments give a valid empty file (empty SRT, bare ``WEBVTT``
header).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from components.common.records import Segment


def _fields(segment: Segment | dict[str, Any]) -> tuple[float, float, str]:
    if isinstance(segment, dict):
        return float(segment["start"]), float(segment["end"]), str(segment["text"])
    return float(segment.start), float(segment.end), segment.text


def format_timestamp(seconds: float, decimal_marker: str) -> str:
    """``HH:MM:SS,mmm`` (SRT, marker ``,``) or ``HH:MM:SS.mmm`` (VTT, marker ``.``)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _cues(segments: Iterable[Segment | dict[str, Any]]) -> list[tuple[float, float, str]]:
    cues = []
    for segment in segments:
        start, end, text = _fields(segment)
        # A cue's text may not hold a blank line (it would end the cue early).
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        if lines:
            cues.append((start, max(start, end), "\n".join(lines).replace("-->", "->")))
    return cues


def to_srt(segments: Iterable[Segment | dict[str, Any]]) -> str:
    """The segments as a SubRip file: numbered cues from 1, ``HH:MM:SS,mmm`` timestamps."""
    blocks = [
        f"{n}\n{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}\n{text}\n"
        for n, (start, end, text) in enumerate(_cues(segments), 1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Iterable[Segment | dict[str, Any]]) -> str:
    """The segments as a WebVTT file: ``WEBVTT`` header, ``HH:MM:SS.mmm`` timestamps."""
    blocks = [
        f"{n}\n{format_timestamp(start, '.')} --> {format_timestamp(end, '.')}\n{text}\n"
        for n, (start, end, text) in enumerate(_cues(segments), 1)
    ]
    return "\n".join(["WEBVTT\n", *blocks])
