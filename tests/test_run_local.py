"""``kfp-asr run-local`` end to end: real Whisper checkpoint, real llama.cpp server, kfp.local."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.fixtures.run_local import run_local

CLIPS = [
    "long01_meeting_en-us_s165.wav",
    "utt01_en-us_s175.wav",
    "utt03_en+m3_s170.mp3",
    "utt05_en-us+f3_s190.wav",
]
OUTPUTS = ["transcripts.jsonl", "summaries.jsonl", "report.html", "report.md", "metrics.json"]


def _inputs(audio_dir: Path, folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    for name in names:
        shutil.copy(audio_dir / name, folder / name)
    return folder


def _run(inp: Path, out: Path, whisper_model: str, llm_server) -> int:
    return run_local(
        str(inp), str(out), whisper_model, llm_server.endpoint, llm_server.model,
        "--shards", "2", "--max-tokens", "64", "--concurrency", "2",
    )  # fmt: skip


def _records(path: Path) -> dict[str, dict]:
    return {r["source"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.slow
def test_run_local_end_to_end(
    audio_dir: Path, audio_manifest: dict, whisper_model: str, llm_server, tmp_path: Path
) -> None:
    inp = _inputs(audio_dir, tmp_path / "in", CLIPS)
    (inp / "utt01_en-us_s175.txt").write_text(audio_manifest["utt01_en-us_s175.wav"]["text"])
    out = tmp_path / "out"
    assert _run(inp, out, whisper_model, llm_server) == 0

    for name in OUTPUTS:
        assert (out / name).is_file(), name
    sources = {str(inp / name) for name in CLIPS}
    transcripts, summaries = _records(out / "transcripts.jsonl"), _records(out / "summaries.jsonl")
    assert set(transcripts) == set(summaries) == sources
    assert len((out / "transcripts.jsonl").read_text().splitlines()) == len(CLIPS)
    assert all(r["status"] == "ok" and r["text"] for r in transcripts.values())
    assert all(r["status"] == "ok" and r["summary"] for r in summaries.values())
    assert transcripts[str(inp / CLIPS[0])]["duration_s"] > 30
    for name in CLIPS:
        assert "-->" in (out / "subtitles" / f"{name}.srt").read_text()
        assert (out / "subtitles" / f"{name}.vtt").read_text().startswith("WEBVTT")

    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["files_total"],
        metrics["files_ok"],
        metrics["files_failed"],
        metrics["files_skipped"],
    ) == (4, 4, 0, 0)
    assert (metrics["summaries_ok"], metrics["summaries_failed"]) == (4, 0)
    expected_s = sum(audio_manifest[n.rsplit(".", 1)[0] + ".wav"]["duration_s"] for n in CLIPS)
    assert metrics["audio_seconds"] == pytest.approx(expected_s, abs=1.0)
    assert metrics["real_time_factor"] > 0
    assert 0 < metrics["ttft_p50_s"] <= metrics["ttft_p95_s"]
    assert metrics["wer_files"] == 1 and 0 <= metrics["wer"] < 0.5
    assert "long01_meeting_en-us_s165.wav" in (out / "report.html").read_text()


@pytest.mark.slow
def test_run_local_with_a_corrupt_file_exits_3(
    audio_dir: Path, whisper_model: str, llm_server, tmp_path: Path
) -> None:
    inp = _inputs(audio_dir, tmp_path / "in", CLIPS[1:3])
    (inp / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\xff" * 4000)
    out = tmp_path / "out"
    assert _run(inp, out, whisper_model, llm_server) == 3

    transcripts, summaries = _records(out / "transcripts.jsonl"), _records(out / "summaries.jsonl")
    corrupt = str(inp / "corrupt.wav")
    assert set(transcripts) == set(summaries) == {corrupt, *(str(inp / n) for n in CLIPS[1:3])}
    assert transcripts[corrupt]["status"] == "failed" and transcripts[corrupt]["error"]
    assert summaries[corrupt]["status"] == "failed"
    assert all(r["status"] == "ok" for s, r in transcripts.items() if s != corrupt)
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["files_total"], metrics["files_ok"], metrics["files_failed"]) == (3, 2, 1)
    html = (out / "report.html").read_text()
    assert html.index("corrupt.wav") < html.index(CLIPS[1])  # failures first


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["--input", "{tmp}/nowhere"], "input"),
        (["--input", "{tmp}/empty"], "--input"),
        (["--whisper-model", "no-such-model"], "--whisper-model"),
        (["--llm-endpoint", "llm.local:8080"], "--llm-endpoint"),
        (["--shards", "0"], "--shards must be at least 1"),
        (["--batch-size", "-1"], "--batch-size must be 0"),
    ],
)
def test_configuration_errors_exit_2_naming_the_setting(
    args: list[str],
    setting: str,
    audio_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    _inputs(audio_dir, tmp_path / "in", CLIPS[1:2])
    (tmp_path / "empty").mkdir()
    base = {"--input": str(tmp_path / "in"), "--output": str(tmp_path / "out")}
    base.update(dict(zip(args[::2], (a.format(tmp=tmp_path) for a in args[1::2]), strict=True)))
    argv = ["run-local", *[x for kv in base.items() for x in kv]]
    assert main(argv) == 2
    assert setting in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
