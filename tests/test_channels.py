"""Channel-separated calls: detection, per-channel transcription, labels merged by time."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from components.transcribe import channels
from components.transcribe.engine import TranscribeOptions, transcribe_shard
from components.transcribe.speakers import SpeakerOptions
from tests.fixtures.dialogues import Dialogue


def _write(path: Path, rows: np.ndarray) -> Path:
    pcm = (np.clip(rows, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(pcm.shape[0])
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(pcm.T.tobytes())
    return path


def _speaker_at(turns: list, start: float, end: float) -> str:
    """The reference speaker who talks most within ``[start, end]``."""
    overlap: dict[str, float] = {}
    for t0, t1, speaker, _ in turns:
        overlap[speaker] = overlap.get(speaker, 0.0) + max(0.0, min(end, t1) - max(start, t0))
    return max(overlap, key=overlap.get)


def test_a_call_is_channel_separated(call_dialogue: Dialogue) -> None:
    split = channels.distinct_channels(call_dialogue.stereo)
    assert split is not None and sorted(split) == [0, 1]


def test_copies_and_mono_are_not_split(call_dialogue: Dialogue, tmp_path: Path) -> None:
    mono = channels.load_channels(call_dialogue.mono, 1)[0]
    copies = _write(tmp_path / "copies.wav", np.stack([mono, mono]))
    room = _write(tmp_path / "room.wav", np.stack([mono, 0.7 * mono + 0.01]))
    one_side = _write(tmp_path / "left.wav", np.stack([mono, np.zeros_like(mono)]))
    assert channels.distinct_channels(call_dialogue.mono) is None
    assert channels.distinct_channels(copies) is None
    assert channels.distinct_channels(room) is None
    assert channels.distinct_channels(one_side) is None


def test_gating_silences_the_other_side_on_each_channel(call_dialogue: Dialogue) -> None:
    split = channels.distinct_channels(call_dialogue.stereo)
    raw = channels.load_channels(call_dialogue.stereo, 2)
    for start, end, speaker, _ in call_dialogue.turns:
        index = call_dialogue.speakers.index(speaker)
        other = 1 - index
        # the middle of a turn (no overlap there in the script): own side kept, crosstalk gone
        mid = slice(
            int((start + 0.3 * (end - start)) * 16000), int((end - 0.3 * (end - start)) * 16000)
        )
        assert np.array_equal(split[index][mid], raw[index][mid])
        assert np.abs(raw[other][mid]).max() > 0
        assert np.abs(split[other][mid]).max() < np.abs(raw[other][mid]).max()


def test_names_of_channel_speakers() -> None:
    names = channels.speaker_names(" agent, customer ")
    assert [channels.channel_speaker(i, names) for i in range(3)] == [
        "agent",
        "customer",
        "channel_2",
    ]


@pytest.mark.slow
def test_stereo_call_is_transcribed_per_channel_with_speakers(
    whisper_model: str, call_dialogue: Dialogue, tmp_path: Path
) -> None:
    options = TranscribeOptions(
        model=whisper_model,
        language="en",
        batch_size=2,
        speakers=SpeakerOptions(channel_speakers=("agent", "customer")),
    )
    (call,) = transcribe_shard([str(call_dialogue.stereo)], options, tmp_path)
    assert call.status == "ok"
    speakers = [s.speaker for s in call.segments]
    assert set(speakers) == {"agent", "customer"}
    starts = [s.start for s in call.segments]
    assert starts == sorted(starts)
    right = sum(
        s.speaker == _speaker_at(call_dialogue.turns, s.start, s.end) for s in call.segments
    )
    assert right >= 0.9 * len(call.segments)
    assert "account number" in call.text and "technician" in call.text
    # no crosstalk transcribed: about one segment per turn, not two
    assert len(call.segments) <= len(call_dialogue.turns) + 2
