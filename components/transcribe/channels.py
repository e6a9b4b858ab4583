"""Calls recorded one speaker per channel: find them, name them, merge their transcripts.

Contact-centre recordings are usually stereo with the agent on one channel and the customer
on the other. Such a file is transcribed per channel and the channels' segments are merged
by time, each labelled with its channel's speaker. A channel-separated recording is told
from one whose channels carry the same sound (a mono file stored as stereo, or two
microphones in one room) by the level difference between the channels: in 30-ms frames
with speech, one channel is louder than the others by :data:`DOMINANCE_DB` or more in most
frames (:data:`SEPARATED_SHARE`), and at least two channels are the loud one in a fair share
of them (:data:`MIN_CHANNEL_SHARE`). Copies of one signal differ by 0 dB and are
transcribed once, as the mono mix.

Each side of a call is usually heard faintly on the other's channel (echo, crosstalk), and
Whisper transcribes even a -30 dB copy. So each channel is gated before it is decoded: the
frames where it is :data:`DOMINANCE_DB` or more below the loudest channel, or below
:data:`SPEECH_LEVEL_DB`, are silenced, except within :data:`GATE_HOLD_S` of its own speech
(so word onsets and endings stay). Overlapping speech stays on both channels.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from components.common import audio

#: A frame belongs to one channel when that channel is this much louder than every other.
DOMINANCE_DB = 10.0
#: Share of the speech frames that must belong to one channel for the file to count as
#: channel-separated.
SEPARATED_SHARE = 0.6
#: Share of the speech frames a channel must own to count as a speaker of its own.
MIN_CHANNEL_SHARE = 0.05
#: Frames quieter than this (dBFS, speech band) hold no speech in any channel.
SPEECH_LEVEL_DB = -45.0
#: Seconds of a channel's audio kept on both sides of the frames where it is speaking.
GATE_HOLD_S = 0.3


def channel_count(path: str | os.PathLike) -> int:
    """Audio channels of the first audio stream (ffprobe); 1 when it cannot tell."""
    cmd = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=channels",
        "-of",
        "default=noprint_wrappers=1:nokey=1",
        str(path),
    ]
    out = subprocess.run(cmd, capture_output=True, check=False, timeout=60)
    try:
        return max(1, int(out.stdout.decode().split()[0]))
    except (ValueError, IndexError):
        return 1


def load_channels(path: str | os.PathLike, channels: int) -> np.ndarray:
    """Each channel of ``path`` at 16 kHz as float32 rows: shape ``(channels, samples)``."""
    cmd = audio.pcm_command(path, channels)
    out = subprocess.run(cmd, capture_output=True, check=False)
    if out.returncode != 0:
        raise audio.AudioError(f"channels of {Path(path).name} not decodable")
    pcm = np.frombuffer(out.stdout, np.int16)
    pcm = pcm[: pcm.size - pcm.size % channels]
    return (pcm.reshape(-1, channels).T.astype(np.float32) / 32768.0).copy()


def speaker_channels(channels: np.ndarray) -> list[int]:
    """Indices of the channels that carry speakers of their own, or ``[]`` when the file
    is not channel-separated (copies, one shared room, a single active channel)."""
    if channels.shape[0] < 2:
        return []
    levels = np.stack([audio.frame_levels_db(c) for c in channels])
    speech = levels.max(axis=0) >= SPEECH_LEVEL_DB
    if not speech.any():
        return []
    levels = levels[:, speech]
    ordered = np.sort(levels, axis=0)
    dominant = ordered[-1] - ordered[-2] >= DOMINANCE_DB
    if dominant.mean() < SEPARATED_SHARE:
        return []
    owner = levels.argmax(axis=0)[dominant]
    shares = np.bincount(owner, minlength=channels.shape[0]) / speech.sum()
    active = [int(i) for i in np.flatnonzero(shares >= MIN_CHANNEL_SHARE)]
    return active if len(active) >= 2 else []


def own_speech(channels: np.ndarray) -> np.ndarray:
    """Per channel and 30-ms frame: whether the channel's own speaker is speaking there
    (loud enough, and not :data:`DOMINANCE_DB` below the loudest channel); shape
    ``(channels, frames)``, widened by :data:`GATE_HOLD_S` on both sides."""
    levels = np.stack([audio.frame_levels_db(c) for c in channels])
    own = (levels >= SPEECH_LEVEL_DB) & (levels >= levels.max(axis=0) - DOMINANCE_DB)
    hold = round(GATE_HOLD_S * audio.SAMPLE_RATE / audio.ENERGY_FRAME)
    kernel = np.ones(2 * hold + 1)
    return np.stack([np.convolve(row, kernel, mode="same") > 0 for row in own])


def distinct_channels(path: str | os.PathLike) -> dict[int, np.ndarray] | None:
    """``{channel index: gated samples}`` of a channel-separated file, else ``None`` (mono,
    identical or shared-room channels: the mono mix is transcribed once)."""
    count = channel_count(path)
    if count < 2:
        return None
    channels = load_channels(path, count)
    active = speaker_channels(channels)
    if not active:
        return None
    mask = np.repeat(own_speech(channels), audio.ENERGY_FRAME, axis=1)[:, : channels.shape[1]]
    return {i: channels[i] * mask[i] for i in active}


def speaker_names(setting: str | Sequence[str]) -> list[str]:
    """The ``channel_speakers`` setting (``"agent,customer"``) as a list of names."""
    names = setting.split(",") if isinstance(setting, str) else list(setting)
    return [n.strip() for n in names]


def channel_speaker(index: int, names: Sequence[str]) -> str:
    """The speaker of channel ``index``: its name from ``names``, else ``channel_<index>``."""
    if index < len(names) and names[index]:
        return names[index]
    return f"channel_{index}"


def fit_to_speech(segments: Sequence[dict[str, Any]], samples: np.ndarray) -> list[dict[str, Any]]:
    """Segments with ``start``/``end`` moved in to the first and last speech frame of the
    (gated) channel between them: Whisper stretches a segment over the silence before it,
    and the merge orders segments by their start."""
    levels = audio.frame_levels_db(samples)
    speech = np.flatnonzero(levels >= SPEECH_LEVEL_DB)
    frame_s = audio.ENERGY_FRAME / audio.SAMPLE_RATE
    fitted = []
    for seg in segments:
        first, last = int(seg["start"] / frame_s), int(np.ceil(seg["end"] / frame_s))
        inside = speech[(speech >= first) & (speech < last)]
        if inside.size:
            seg = {**seg, "start": inside[0] * frame_s, "end": (inside[-1] + 1) * frame_s}
        fitted.append(seg)
    return fitted


def merge_by_time(
    per_channel: Sequence[tuple[str, Sequence[dict[str, Any]]]], language: str | None
) -> dict[str, Any]:
    """One ``transcribe()``-shaped result from each speaker's segments, ordered by start.

    Args:
        per_channel: ``(speaker, segments)`` for each channel, segments as Whisper gives them.
        language: the language of the merged result.

    Returns:
        ``{"text", "segments", "language"}``; every segment carries its ``speaker``.
    """
    merged = [{**seg, "speaker": speaker} for speaker, segments in per_channel for seg in segments]
    merged.sort(key=lambda s: (s["start"], s["end"]))
    for i, seg in enumerate(merged):
        seg["id"] = i
    return {
        "text": " ".join(s["text"].strip() for s in merged if s["text"].strip()),
        "segments": merged,
        "language": language,
    }
