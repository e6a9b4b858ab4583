"""Which decoded segments hold speech: Whisper's no-speech rule and the energy gate.

Whisper sometimes writes text over silence or noise ("Thank you.", "You"); a segment is kept
only when it has text, Whisper's own no-speech test does not flag it, and its audio (plus
:data:`SEGMENT_ENERGY_MARGIN_S` on both sides) rises above ``silence_threshold_db``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from components.common import audio

if TYPE_CHECKING:
    from components.transcribe.engine import TranscribeOptions

#: Seconds added on both sides of a segment before its energy is checked.
SEGMENT_ENERGY_MARGIN_S = 0.5


def is_no_speech(segment: dict[str, Any], options: TranscribeOptions) -> bool:
    """Whisper's silence rule: high no-speech probability and a low average log probability."""
    threshold = options.no_speech_threshold
    if threshold is None or segment.get("no_speech_prob") is None:
        return False
    if segment["no_speech_prob"] <= threshold:
        return False
    logprob = options.logprob_threshold
    return not (logprob is not None and segment.get("avg_logprob", -np.inf) > logprob)


def is_silent_span(samples: np.ndarray, start: float, end: float, threshold_db: float) -> bool:
    """True when the audio of ``[start, end]`` (plus a margin) stays below ``threshold_db``."""
    lo = max(0, int((start - SEGMENT_ENERGY_MARGIN_S) * audio.SAMPLE_RATE))
    hi = int((end + SEGMENT_ENERGY_MARGIN_S) * audio.SAMPLE_RATE)
    return audio.is_silent(samples[lo:hi], threshold_db)


def speech_segments(
    result: dict[str, Any], samples: np.ndarray, options: TranscribeOptions
) -> list[dict[str, Any]]:
    """The segments of a result that hold speech: not empty, not no-speech, not silent."""
    kept = []
    for seg in result.get("segments", []):
        if not seg["text"].strip() or is_no_speech(seg, options):
            continue
        if options.silence_threshold_db is not None and is_silent_span(
            samples, seg["start"], seg["end"], options.silence_threshold_db
        ):
            continue
        kept.append(seg)
    return kept
