"""Audio through ffmpeg and ffprobe: probe streams, decode to 16 kHz mono, find silence.

Decoding goes through the ``ffmpeg`` command line (as openai-whisper does), so every format
ffmpeg reads works. Problems come back as :class:`AudioError` with one readable line (the
last line ffmpeg printed), never a wall of ffmpeg banner text.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
#: A decoded file shorter than its header says by more than both of these is truncated.
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_FRACTION = 0.10
#: Frame length of the energy check, in samples (30 ms at 16 kHz).
ENERGY_FRAME = 480
#: The energy check measures only what lies above this frequency: speech keeps its level
#: (within 0.5 dB on the test clips), a full-scale 50/60 Hz mains hum reads -61/-59 dBFS.
SPEECH_BAND_LOW_HZ = 250.0


class AudioError(Exception):
    """A file cannot be decoded as audio (corrupt, empty, truncated, not audio)."""


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


@dataclass(frozen=True)
class Probe:
    """What ffprobe reads from a container's header.

    ``duration_s`` is the container's (its longest stream); ``audio_duration_s`` that of the
    first audio stream where the container states one (an MP4's video track may run longer);
    ``error`` is ffprobe's last line when it cannot read the input at all.
    """

    duration_s: float | None = None
    audio_duration_s: float | None = None
    audio_streams: int = 0
    other_streams: int = 0
    error: str | None = None

    @property
    def audio_s(self) -> float | None:
        """Seconds of audio: the audio stream's, else the container's when it holds only audio."""
        if self.audio_duration_s is not None:
            return self.audio_duration_s
        return self.duration_s if self.audio_streams and not self.other_streams else None


def _seconds(value: Any) -> float | None:
    """ffprobe's ``12.5`` or Matroska's ``00:00:12.500000000`` as seconds, else ``None``."""
    text = str(value or "").strip()
    try:
        if ":" in text:
            hours, minutes, seconds = text.split(":")
            result = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            result = float(text)
    except ValueError:
        return None
    return result if result >= 0 and math.isfinite(result) else None


def probe(path_or_url: str | os.PathLike, timeout_s: float = 60.0) -> Probe:
    """Read the streams and durations of a file or an HTTP(S) URL with ffprobe.

    Presigned S3 URLs work (ffprobe reads only what it needs). Input ffprobe cannot read, or a
    timeout, gives a :class:`Probe` with ``error`` set and no streams.
    """
    cmd = [
        "ffprobe",
        "-v",
        "error",
        "-show_entries",
        "format=duration:stream=codec_type,duration:stream_tags=DURATION",
        "-of",
        "json",
        str(path_or_url),
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return Probe(error=f"ffprobe took longer than {timeout_s:g} s")
    if out.returncode != 0:
        return Probe(error=_last_line(out.stderr).replace(str(path_or_url), "input"))
    try:
        data = json.loads(out.stdout.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError:
        return Probe(error="ffprobe gave no readable answer")
    streams = data.get("streams") or []
    audio_streams = [s for s in streams if s.get("codec_type") == "audio"]
    first = audio_streams[0] if audio_streams else {}
    first_duration = first.get("duration") or (first.get("tags") or {}).get("DURATION")
    return Probe(
        duration_s=_seconds((data.get("format") or {}).get("duration")),
        audio_duration_s=_seconds(first_duration),
        audio_streams=len(audio_streams),
        other_streams=len(streams) - len(audio_streams),
    )


def probe_duration(path_or_url: str | os.PathLike, timeout_s: float = 60.0) -> float | None:
    """The container's duration in seconds that ffprobe reads (see :func:`probe`), else ``None``."""
    return probe(path_or_url, timeout_s).duration_s


def wav_declared_duration(path: str | os.PathLike) -> float | None:
    """The duration a RIFF/WAVE header declares (``data`` chunk size / byte rate), else ``None``.

    ffprobe derives a WAV's duration from the file size, so it cannot see a cut-off WAV; the
    header can. Streaming writers that leave the size unknown (0 or 0xFFFFFFFF) give ``None``.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        byte_rate = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"fmt ":
                fmt = f.read(size)
                if len(fmt) < 12:
                    return None
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
                f.seek(size % 2, os.SEEK_CUR)
            elif chunk_id == b"data":
                if not byte_rate or size in (0, 0xFFFFFFFF):
                    return None
                return size / byte_rate
            else:
                f.seek(size + size % 2, os.SEEK_CUR)


def _declared_duration(path: Path) -> float | None:
    """The audio duration the header declares: the WAV header's, else the audio stream's."""
    declared = wav_declared_duration(path)
    return declared if declared is not None else probe(path).audio_s


def pcm_command(
    path: str | os.PathLike, channels: int, sample_rate: int = SAMPLE_RATE
) -> list[str]:
    """The ffmpeg command that decodes ``path``'s audio to ``channels`` interleaved 16-bit
    little-endian PCM channels at ``sample_rate`` on its standard output."""
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-threads", "0",
        "-i", str(path), "-vn", "-f", "s16le", "-ac", str(channels), "-acodec", "pcm_s16le",
        "-ar", str(sample_rate), "-",
    ]  # fmt: skip


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any ffmpeg-readable file to mono float32 samples in [-1, 1] at ``sample_rate``.

    Raises :class:`AudioError` for an empty file, input ffmpeg cannot decode, a file without
    audio samples, and a truncated file (fewer samples than its header declares).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    cmd = pcm_command(path, 1, sample_rate)
    out = subprocess.run(cmd, capture_output=True, check=False)
    if out.returncode != 0:
        reason = _last_line(out.stderr).replace(str(path), path.name)
        raise AudioError(f"not decodable as audio: {reason}")
    samples = np.frombuffer(out.stdout, np.int16).astype(np.float32) / 32768.0
    if samples.size == 0:
        raise AudioError("no audio samples in the file (no audio stream or header only)")
    decoded = samples.size / sample_rate
    declared = _declared_duration(path)
    if (
        declared is not None
        and declared - decoded > TRUNCATION_TOLERANCE_S
        and declared - decoded > TRUNCATION_TOLERANCE_FRACTION * declared
    ):
        raise AudioError(
            f"truncated: the header declares {declared:.2f} s but only {decoded:.2f} s decode"
        )
    return samples


def frame_levels_db(
    samples: np.ndarray, frame: int = ENERGY_FRAME, low_hz: float = SPEECH_BAND_LOW_HZ
) -> np.ndarray:
    """Level of each ``frame``-sample frame in dBFS (a trailing partial frame included),
    counting only content above ``low_hz``.

    Each frame is Hann-windowed and transformed; the power of the bins from ``low_hz`` up,
    scaled so that a full-band sine reads its RMS level, gives the frame's level. The
    window keeps a strong 50 Hz hum from leaking into the speech band.
    """
    if samples.size == 0:
        return np.zeros(0, np.float32)
    frames = np.pad(samples.astype(np.float32), (0, -samples.size % frame)).reshape(-1, frame)
    window = np.hanning(frame).astype(np.float32)
    first_bin = max(1, int(np.ceil(low_hz * frame / SAMPLE_RATE)))
    scale = 2.0 / (frame * float(np.sum(window * window)))  # one-sided spectrum
    levels = []
    for start in range(0, len(frames), 8192):  # bounded memory for hour-long files
        spectrum = np.fft.rfft(frames[start : start + 8192] * window, axis=1)[:, first_bin:]
        power = np.sum(spectrum.real**2 + spectrum.imag**2, axis=1) * scale
        levels.append(10 * np.log10(np.maximum(power, 1e-20)))
    return np.concatenate(levels).astype(np.float32)


def is_silent(samples: np.ndarray, threshold_db: float) -> bool:
    """True when no 30-ms frame of ``samples`` reaches ``threshold_db`` dBFS in the speech
    band (above :data:`SPEECH_BAND_LOW_HZ`): digital silence, quiet noise and low hum."""
    levels = frame_levels_db(samples)
    return levels.size == 0 or float(levels.max()) < threshold_db
