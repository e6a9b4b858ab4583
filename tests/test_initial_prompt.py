"""Domain vocabulary: ``initial_prompt`` makes Whisper (tiny.en) spell a term it gets wrong.

espeak-ng says "Kueue"; without a prompt tiny.en writes another word, with the term in the
prompt it writes "Kueue". Checked on the sequential path (``batch_size=1``) and the batched
one (two files decoded together).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components.transcribe.engine import TranscribeOptions, transcribe_shard

SENTENCE = "We run the pipeline on Kubeflow, and Kueue admits the jobs."
OTHER = "The summaries come from the language model and the audio sits in a bucket."
PROMPT = "Kubeflow, Kueue, llm-d, MinIO."


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not on the PATH (apt-get install espeak-ng)")
    folder = tmp_path_factory.mktemp("vocabulary")
    paths = []
    for name, text in (("term", SENTENCE), ("other", OTHER)):
        path = folder / f"{name}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("batch_size", [1, 2])
def test_initial_prompt_spells_the_term(clips, whisper_model, tmp_path: Path, batch_size):
    def text(prompt: str | None) -> str:
        options = TranscribeOptions(
            model=whisper_model,
            language="en",
            device="cpu",
            batch_size=batch_size,
            initial_prompt=prompt,
        )
        return transcribe_shard(clips, options, tmp_path)[0].text

    assert "Kueue" not in text(None)
    assert "Kueue" in text(PROMPT)
