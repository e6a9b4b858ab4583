"""Mono diarization: speaker embeddings, clustering, words to speakers, segments split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.common.audio import load_audio
from components.transcribe.diarize import cluster, diarize_result, embed_windows
from components.transcribe.engine import TranscribeOptions, transcribe_shard
from components.transcribe.speakers import SpeakerOptions
from tests.fixtures.dialogues import Dialogue


def _reference_at(dialogue: Dialogue, t: float) -> str | None:
    speakers = [spk for start, end, spk, _ in dialogue.turns if start <= t <= end]
    return speakers[0] if len(speakers) == 1 else None


def _purity(dialogue: Dialogue, times: np.ndarray, labels: list) -> float:
    """Share of the single-speaker points whose label is the majority label of their speaker."""
    pairs = [(_reference_at(dialogue, t), lab) for t, lab in zip(times, labels, strict=True)]
    pairs = [(ref, lab) for ref, lab in pairs if ref is not None]
    right = 0
    for speaker in dialogue.speakers:
        mine = [lab for ref, lab in pairs if ref == speaker]
        right += max(mine.count(x) for x in set(mine))
    return right / len(pairs)


def _words(dialogue: Dialogue) -> dict:
    """A transcribe()-shaped result with words spread evenly over the reference turns, in
    one segment per 10 s (so segments hold several speakers, as Whisper's can)."""
    words = []
    for start, end, _, text in dialogue.turns:
        parts = text.split()
        step = (end - start) / len(parts)
        words += [
            {"word": f" {w}", "start": start + i * step, "end": start + (i + 1) * step}
            for i, w in enumerate(parts)
        ]
    segments = []
    for first in range(0, int(dialogue.duration_s) + 1, 10):
        mine = [w for w in words if first <= w["start"] < first + 10]
        if mine:
            text = "".join(w["word"] for w in mine)
            segments.append({"start": first, "end": first + 10, "text": text, "words": mine})
    return {"text": "", "segments": segments, "language": "en"}


@pytest.mark.parametrize("name", ["call", "meeting"])
def test_number_of_speakers_is_estimated_and_windows_cluster_by_voice(
    name: str, call_dialogue: Dialogue, meeting_dialogue: Dialogue
) -> None:
    dialogue = {"call": call_dialogue, "meeting": meeting_dialogue}[name]
    centres, vectors = embed_windows(load_audio(dialogue.mono))
    assert vectors.shape[1] == 256 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    labels = cluster(vectors)
    assert len(set(labels)) == len(dialogue.speakers)
    assert _purity(dialogue, centres, list(labels)) >= 0.85
    assert len(set(cluster(vectors, num_speakers=2))) == 2


def test_segments_are_split_where_the_speaker_changes(meeting_dialogue: Dialogue) -> None:
    result = diarize_result(_words(meeting_dialogue), load_audio(meeting_dialogue.mono))
    segments = result["segments"]
    assert {s["speaker"] for s in segments} == {"speaker_0", "speaker_1", "speaker_2"}
    assert segments[0]["speaker"] == "speaker_0"
    for seg in segments:
        assert seg["start"] == seg["words"][0]["start"] and seg["end"] == seg["words"][-1]["end"]
        assert seg["text"] == "".join(w["word"] for w in seg["words"])
    words = [(w, s["speaker"]) for s in segments for w in s["words"]]
    assert len(words) == sum(len(t[3].split()) for t in meeting_dialogue.turns)
    mids = np.array([(w["start"] + w["end"]) / 2 for w, _ in words])
    assert _purity(meeting_dialogue, mids, [spk for _, spk in words]) >= 0.9


def test_a_result_without_words_is_left_as_it_is() -> None:
    result = {"text": "", "segments": [], "language": "en"}
    assert diarize_result(result, np.zeros(16000, np.float32)) is result


@pytest.mark.slow
def test_a_mono_meeting_is_diarized_through_the_engine(
    whisper_model: str, meeting_dialogue: Dialogue, tmp_path: Path
) -> None:
    options = TranscribeOptions(
        model=whisper_model, language="en", speakers=SpeakerOptions(diarize=True)
    )
    (record,) = transcribe_shard([str(meeting_dialogue.mono)], options, tmp_path)
    assert record.status == "ok"
    assert len({s.speaker for s in record.segments}) == 3
    assert all(s.words is None for s in record.segments)  # not asked for
    mids = np.array([(s.start + s.end) / 2 for s in record.segments])
    assert _purity(meeting_dialogue, mids, [s.speaker for s in record.segments]) >= 0.8
