"""Word timestamps of the batched decoder against openai-whisper's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.common.audio import load_audio
from components.transcribe.decode import decode_kwargs
from components.transcribe.engine import TranscribeOptions, resolve_options, transcribe_shard
from components.transcribe.weights import load_model
from tests.fixtures.dialogues import Dialogue


@pytest.mark.slow
def test_batched_word_timestamps_match_openai_whisper(
    whisper_model: str, call_dialogue: Dialogue, meeting_dialogue: Dialogue, tmp_path: Path
) -> None:
    model = load_model(whisper_model, "cpu")
    paths = [call_dialogue.mono, meeting_dialogue.mono]
    options = resolve_options(
        TranscribeOptions(model=whisper_model, language="en", batch_size=2, word_timestamps=True)
    )
    records = transcribe_shard([str(p) for p in paths], options, tmp_path, model=model)
    kwargs = decode_kwargs(options)
    gaps = []
    for path, record in zip(paths, records, strict=True):
        ref = model.transcribe(load_audio(path), **kwargs)
        ref_words = [w for s in ref["segments"] for w in s["words"]]
        words = [w for s in record.segments for w in s.words]
        assert [w["word"] for w in words] == [w["word"] for w in ref_words]
        assert all(set(w) == {"word", "start", "end", "probability"} for w in words)
        for ours, theirs in zip(words, ref_words, strict=True):
            gaps += [abs(ours["start"] - theirs["start"]), abs(ours["end"] - theirs["end"])]
    assert np.mean(gaps) <= 0.020
