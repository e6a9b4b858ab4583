"""Done when: a stereo two-speaker call and a mono three-speaker meeting go through
``run-local`` (and the compiled pipeline passes the settings) with speaker labels in every
output format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.asr_summarize import COMPILED
from tests.fixtures.dialogues import Dialogue
from tests.fixtures.run_local import run_local

SETTINGS = {
    "word_timestamps": False,
    "channel_speakers": "",
    "diarize": False,
    "num_speakers": 0,
}


def test_compiled_pipeline_passes_the_speaker_settings_to_transcribe() -> None:
    spec = next(yaml.safe_load_all(COMPILED.read_text()))
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    for name, default in SETTINGS.items():
        assert inputs[name].get("defaultValue", "") == default, name
    loop = spec["root"]["dag"]["tasks"]["for-loop-1"]
    tasks = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    params = tasks["transcribe"]["inputs"]["parameters"]
    for name in SETTINGS:
        assert params[name]["componentInputParameter"].endswith(name), name


@pytest.mark.slow
def test_call_and_meeting_get_speaker_labels_in_every_output(
    whisper_model: str,
    llm_server,
    call_dialogue: Dialogue,
    meeting_dialogue: Dialogue,
    tmp_path: Path,
) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(call_dialogue.stereo, inp / "call.wav")
    shutil.copy(meeting_dialogue.mono, inp / "meeting.wav")
    out = tmp_path / "out"
    code = run_local(
        str(inp), str(out), whisper_model, llm_server.endpoint, llm_server.model,
        "--shards", "1", "--batch-size", "2", "--max-tokens", "48",
        "--channel-speakers", "agent,customer", "--diarize", "--word-timestamps",
    )  # fmt: skip
    assert code == 0
    records = {
        Path(r["source"]).name: r
        for r in map(json.loads, (out / "transcripts.jsonl").read_text().splitlines())
    }
    call, meeting = records["call.wav"], records["meeting.wav"]
    assert {s["speaker"] for s in call["segments"]} == {"agent", "customer"}
    assert len({s["speaker"] for s in meeting["segments"]}) >= 2
    for record in (call, meeting):
        assert all(s["speaker"] and s["words"] for s in record["segments"])
    for name, record in (("call.wav", call), ("meeting.wav", meeting)):
        speakers = {s["speaker"] for s in record["segments"]}
        text = (out / "text" / f"{name}.txt").read_text().splitlines()
        assert text and all(line.split(":")[0] in speakers for line in text)
        srt = (out / "subtitles" / f"{name}.srt").read_text()
        vtt = (out / "subtitles" / f"{name}.vtt").read_text()
        for speaker in speakers:
            assert f"\n{speaker}: " in srt and f"<v {speaker}>" in vtt
        assert all(speaker in (out / "report.html").read_text() for speaker in speakers)
    summaries = (out / "summaries.jsonl").read_text().splitlines()
    assert len(summaries) == 2 and all(json.loads(s)["status"] == "ok" for s in summaries)
