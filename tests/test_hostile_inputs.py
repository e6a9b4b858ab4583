"""Hostile but realistic inputs (issue 16): long names, ``--reprocess``, audio decided by
content, video longer than its audio, wrong language settings, odd keys in report links,
symlinks in a local input folder.

Real files made here with espeak-ng, sox and ffmpeg; real Whisper tiny.en, the S3 server
process (moto, or MinIO from the env), a real llama-server and headless-free checks of the
report's links (they are resolved as a browser resolves them, by ``urljoin``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml

from components.common import audio, ledger, storage
from components.common.errors import ConfigError
from components.common.ledger import IGNORE, PROCESS, SUMMARIES_DIR, TRANSCRIPTS_DIR, Item
from components.common.records import OK, read_jsonl, write_jsonl
from components.common.whisper_settings import check_language, english_only
from components.plan.planner import PlanOptions, holds_audio, plan
from components.report.report import ReportOptions, build_report, export
from components.summarize.client import ClientOptions
from components.summarize.engine import SummarizeOptions, run_summarize_step
from components.transcribe.engine import TranscribeOptions, run_transcribe_step
from pipelines.asr_summarize import COMPILED
from pipelines.cli import main
from tests.fixtures.run_local import run_local

#: 80 CJK characters (240 bytes in UTF-8): with ``.wav`` a legal 244-byte file name, and so
#: is ``<name>.json``, but not the temporary file it was written through.
CJK = "録音" * 40
#: 83 CJK characters: with ``.wav`` 253 bytes, a legal file name; ``<name>.json`` is not.
LONGEST = CJK + "録音録"
SENTENCES = {
    "a": "The river runs past the old mill every morning.",
    "b": "Please call the support team before noon on Friday.",
    "c": "Our quarterly earnings grew by ten percent this year.",
    "d": "The meeting starts at nine in the large room.",
    "e": "Bring the green umbrella because it will rain today.",
}


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One spoken English WAV per sentence (espeak-ng, 16 kHz mono)."""
    for tool in ("espeak-ng", "sox", "ffmpeg"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (apt-get install {tool}; .ci/run does)")
    folder = tmp_path_factory.mktemp("speech")
    clips = {}
    for key, text in SENTENCES.items():
        raw, wav = folder / f"{key}-raw.wav", folder / f"{key}.wav"
        _run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text])
        _run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)])
        clips[key] = wav
    return clips


def _amr(src: Path, dest: Path) -> Path:
    _run(["sox", str(src), "-r", "8000", "-c", "1", "-t", "amr-nb", str(dest)])
    return dest


def _opus(src: Path, dest: Path) -> Path:
    _run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "libopus", "-f", "ogg", str(dest)])
    return dest


def _video(src: Path, dest: Path, video_s: float = 30.0) -> Path:
    """An MP4 whose video track runs ``video_s`` seconds, far longer than its audio."""
    _run([
        "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
        "-i", f"color=c=black:s=64x64:r=10:d={video_s}", "-i", str(src),
        "-c:v", "mpeg4", "-c:a", "aac", "-movflags", "+faststart", str(dest),
    ])  # fmt: skip
    return dest


def _png(dest: Path) -> Path:
    _run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=8x8", "-frames:v",
          "1", str(dest)])  # fmt: skip
    return dest


# --- 1. long names ----------------------------------------------------------------------


def test_names_fit_local_and_s3_limits_and_never_collide() -> None:
    names = [
        f"{CJK}.wav",  # 244 bytes: fits
        f"{LONGEST}.wav",  # 253 bytes: a legal file name, too long for <name>.json
        f"{LONGEST}x.wav",  # shares the prefix of the one before
        "é" * 200 + ".wav",  # 2-byte characters, cut on a character boundary
        "x" * 300 + ".wav",
        "x" * 301 + ".wav",
        "a" * 251,
        "/".join(["d" * 200] * 6) + "/a.wav",  # 1,206 bytes: too long for one S3 key
        "/".join(["d" * 200] * 6) + "/b.wav",
        "d" * 300 + "/a.wav",  # one long folder: its files stay together
        "d" * 300 + "/b.wav",
        "plain/call.wav",
    ]
    fitted = [storage.fit_key(n, ledger.NAME_COMPONENT_BYTES, ledger.NAME_BYTES) for n in names]
    # a name that merely looks like a shortened one is shortened as well
    fitted.append(storage.fit_key(fitted[4], ledger.NAME_COMPONENT_BYTES, ledger.NAME_BYTES))
    assert len(set(fitted)) == len(fitted), fitted
    for name in fitted:
        assert len(name.encode()) <= ledger.NAME_BYTES
        assert all(len(p.encode()) <= ledger.NAME_COMPONENT_BYTES for p in name.split("/"))
        name.encode("utf-8")  # whole characters only
    assert fitted[0] == f"{CJK}.wav" and fitted[-2] == "plain/call.wav"  # they fit: kept
    assert re.fullmatch(rf"{CJK[:70]}.*~[0-9a-f]{{16}}\.wav", fitted[1])
    assert fitted[9].split("/")[0] == fitted[10].split("/")[0]
    assert fitted == [
        storage.fit_key(n, ledger.NAME_COMPONENT_BYTES, ledger.NAME_BYTES) for n in names
    ] + [fitted[-1]]  # deterministic
    # every key derived from a name fits one local file name and one S3 key
    out = f"s3://bucket/{'p' * 200}/{'q' * 200}"  # a 401-byte output prefix
    for name in fitted:
        item = Item("s3://in/x", name, "0123456789abcdef0123456789abcdef-12")
        for uri in (
            ledger.result_uri(out, TRANSCRIPTS_DIR, name),
            ledger.ledger_uri(out, item),
            storage.child(f"{out}/subtitles", f"{name}.vtt"),
        ):
            key = storage.split_s3_uri(uri)[1]
            assert len(key.encode()) <= storage.MAX_KEY_BYTES
            assert all(len(p.encode()) <= storage.MAX_COMPONENT_BYTES for p in key.split("/"))
    ledger.check_output_prefix(out)  # 401 bytes: room enough
    with pytest.raises(ConfigError, match=r"output_uri: the key prefix .* is 501 bytes"):
        ledger.check_output_prefix(f"{out}/{'r' * 99}")


@pytest.mark.slow
def test_long_s3_keys_are_transcribed_stored_and_finished(
    speech: dict[str, Path], whisper_model: str, s3_bucket: str, tmp_path: Path
) -> None:
    """A 300-byte folder name is a legal S3 key but no local file name (download, store)."""
    inp, out = f"s3://{s3_bucket}/in/", f"s3://{s3_bucket}/out"
    long_key = f"in/{'d' * 300}/{CJK}.wav"
    storage.upload_file(speech["a"], f"s3://{s3_bucket}/{long_key}")
    storage.upload_file(speech["b"], f"{inp}short.wav")
    result = plan(inp, PlanOptions(num_shards=1), out)
    items = result.shards[0]
    assert {it.name for it in items} >= {"short.wav"} and len(items) == 2

    options = TranscribeOptions(model=whisper_model, language="en", beam_size=None)
    run_transcribe_step(items, tmp_path / "t.jsonl", options, out)
    records = {r["source"]: r for r in read_jsonl(tmp_path / "t.jsonl")}
    assert set(records) == {it.source for it in items}
    assert all(r["status"] == OK for r in records.values()), records
    assert "river" in records[f"s3://{s3_bucket}/{long_key}"]["text"].lower()
    for item in items:
        assert (
            ledger.load_result(out, TRANSCRIPTS_DIR, item)["text"] == records[item.source]["text"]
        )
        ledger.mark_finished(out, item)
    assert all(ledger.is_finished(it, ledger.finished(out)) for it in items)


# --- 2. --reprocess --------------------------------------------------------------------


def test_reprocess_does_not_reuse_stored_transcripts(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    item = Item("/data/a.wav", "a.wav", "etag-1", 10)
    ledger.store_result(out, TRANSCRIPTS_DIR, item, {"source": item.source, "status": OK})
    options = TranscribeOptions(model="no-such-model")  # loading it is a ConfigError
    assert run_transcribe_step([item], tmp_path / "t.jsonl", options, out)["files_reused"] == 1
    with pytest.raises(ConfigError, match="no-such-model"):  # it loads the model: no reuse
        run_transcribe_step([item], tmp_path / "t.jsonl", options, out, reprocess=True)


@pytest.mark.slow
def test_reprocess_summarizes_again(llm_server, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    item = Item("/data/a.wav", "a.wav", "etag-1", 10)
    transcript = {"source": item.source, "status": OK, "text": SENTENCES["b"], "segments": []}
    write_jsonl(tmp_path / "t.jsonl", [transcript])
    old = {"source": item.source, "status": OK, "summary": "OLD SUMMARY", "model": "old"}
    ledger.store_result(out, SUMMARIES_DIR, item, old)
    options = SummarizeOptions(
        client=ClientOptions(endpoint=llm_server.endpoint, model=llm_server.model, max_tokens=8)
    )
    kept = run_summarize_step(tmp_path / "t.jsonl", tmp_path / "s.jsonl", options, [item], out)
    assert (kept["reused"], kept["requests"]) == (1, 0)
    again = run_summarize_step(
        tmp_path / "t.jsonl", tmp_path / "s.jsonl", options, [item], out, reprocess=True
    )
    assert (again["reused"], again["requests"]) == (0, 1)
    [summary] = read_jsonl(tmp_path / "s.jsonl")
    assert summary["status"] == OK and summary["summary"] != "OLD SUMMARY"
    assert 0 < summary["completion_tokens"] <= 8
    assert ledger.load_result(out, SUMMARIES_DIR, item)["summary"] == summary["summary"]


def _compiled_tasks() -> dict[str, dict]:
    spec = yaml.safe_load(COMPILED.read_text().split("\n---\n")[0])
    tasks = dict(spec["root"]["dag"]["tasks"])
    tasks.update(spec["components"]["comp-for-loop-1"]["dag"]["tasks"])
    return tasks


def test_reprocess_and_language_reach_the_steps_in_the_compiled_pipeline() -> None:
    tasks = _compiled_tasks()

    def pipeline_param(task: str, name: str) -> str | None:
        value = tasks[task]["inputs"]["parameters"].get(name, {})
        return value.get("componentInputParameter")

    for step in ("plan", "transcribe", "summarize"):
        assert pipeline_param(step, "reprocess") in ("reprocess", "pipelinechannel--reprocess")
    assert pipeline_param("plan", "language") == "language"
    assert pipeline_param("plan", "whisper_model") == "whisper_model"
    # a configuration error fails the plan at once instead of three times
    assert tasks["plan"]["retryPolicy"].get("maxRetryCount", 0) == 0


# --- 3. audio decided by content --------------------------------------------------------


def test_audio_is_decided_by_content_and_skips_are_listed(
    speech: dict[str, Path], tmp_path: Path
) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    _amr(speech["a"], inp / "voice.amr")
    _opus(speech["b"], inp / "memo.opus")
    shutil.copy(speech["c"], inp / "export.dat")  # a WAV by content, not by name
    shutil.copy(speech["d"], inp / "call.wav")
    (inp / "call.txt").write_text(SENTENCES["d"])  # a reference transcript
    (inp / "notes.txt").write_text("not audio\n")
    _png(inp / "cover.png")
    result = plan(str(inp), PlanOptions(num_shards=2))
    actions = {Path(f.source).name: (f.action, f.reason) for f in result.files}
    assert actions == {
        "voice.amr": (PROCESS, None),
        "memo.opus": (PROCESS, None),
        "export.dat": (PROCESS, None),
        "call.wav": (PROCESS, None),
        "call.txt": (IGNORE, "reference transcript of call.wav"),
        "notes.txt": (IGNORE, actions["notes.txt"][1]),
        "cover.png": (IGNORE, "not audio: no audio stream (video or other streams only)"),
    }
    assert actions["notes.txt"][1].startswith("not audio: ffprobe cannot read it")
    assert sorted(it.name for s in result.shards for it in s) == sorted(
        ["voice.amr", "memo.opus", "export.dat", "call.wav"]
    )
    durations = {Path(f.source).name: f.duration_s for f in result.files if f.action == PROCESS}
    assert all(d and d > 1 for d in durations.values()), durations

    only = tmp_path / "only"
    only.mkdir()
    _amr(speech["a"], only / "voice.amr")
    _opus(speech["b"], only / "memo.opus")
    assert holds_audio(str(only), PlanOptions())
    shards = plan(str(only), PlanOptions()).shards  # not "holds no audio files"
    assert sum(map(len, shards)) == 2
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("no audio")
    with pytest.raises(ConfigError, match=r"holds no audio files \(1 skipped, e\.g\. notes\.txt"):
        plan(str(tmp_path / "text"), PlanOptions())


def test_content_is_probed_on_s3_too(speech: dict[str, Path], s3_bucket: str) -> None:
    inp = f"s3://{s3_bucket}/in/"
    storage.upload_file(speech["a"], inp + "recording.bin")
    storage.write_text(inp + "readme.md", "not audio")
    result = plan(inp, PlanOptions(), f"s3://{s3_bucket}/out")
    actions = {f.name: f.action for f in result.files}
    assert actions == {"recording.bin": PROCESS, "readme.md": IGNORE}


# --- 4. video longer than its audio ---------------------------------------------------


def test_video_longer_than_its_audio_is_not_truncated(
    speech: dict[str, Path], tmp_path: Path
) -> None:
    clip = _video(speech["a"], tmp_path / "talk.mp4")
    found = audio.probe(clip)
    assert found.duration_s == pytest.approx(30.0, abs=0.1)
    assert found.audio_s == pytest.approx(audio.probe(speech["a"]).duration_s, abs=0.2)
    samples = audio.load_audio(clip)
    assert samples.size / audio.SAMPLE_RATE == pytest.approx(found.audio_s, abs=0.2)
    # a cut-off file is still caught: its audio stream declares more than decodes
    whole = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(
        audio.AudioError, match=rf"truncated: the header declares {found.audio_s:.2f} s"
    ):
        audio.load_audio(cut)


# --- 5. language settings -------------------------------------------------------------


def test_language_settings_are_checked_against_the_model(whisper_model: str) -> None:
    assert check_language("English", "tiny.en") == "en"
    assert check_language("auto", whisper_model) is None
    assert check_language("fr", "medium") == "fr"
    assert english_only(whisper_model) is True  # read from the checkpoint's vocabulary
    assert english_only("s3://bucket/model.pt") is None
    with pytest.raises(ConfigError, match=r"language='xx' is not a Whisper language"):
        check_language("xx", "medium")
    with pytest.raises(ConfigError, match=r"language='fr', but whisper_model=.* English-only"):
        check_language("fr", whisper_model)


@pytest.mark.parametrize(
    ("language", "message"),
    [("xx", "--language='xx' is not a Whisper language"), ("fr", "--whisper-model=")],
)
def test_wrong_language_exits_2_before_any_step(
    language: str,
    message: str,
    speech: dict[str, Path],
    whisper_model: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture,
) -> None:
    (tmp_path / "in").mkdir()
    shutil.copy(speech["a"], tmp_path / "in" / "a.wav")
    argv = [
        "run-local", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
        "--whisper-model", whisper_model, "--language", language,
        "--llm-endpoint", "http://127.0.0.1:9/v1",
    ]  # fmt: skip
    assert main(argv) == 2
    captured = capfd.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.out + captured.err  # no step ran, none crashed
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_plan_step_fails_on_a_wrong_language(
    speech: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    from kfp import local

    from components.plan.component import plan_op

    (tmp_path / "in").mkdir()
    shutil.copy(speech["a"], tmp_path / "in" / "a.wav")
    local.init(local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    with pytest.raises(RuntimeError):
        plan_op(input_uri=str(tmp_path / "in"), whisper_model="tiny.en", language="fr")
    assert "ConfigError: language='fr', but whisper_model='tiny.en' is English-only" in (
        capfd.readouterr().out
    )


# --- 6. report links ------------------------------------------------------------------


def test_report_links_are_percent_encoded(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    names = ["q?x=1#h.wav", "%2e%2e/x.wav", "a b(1).wav"]
    manifest, transcripts, summaries = [], [], []
    for name in names:
        source = str(inp / name)
        manifest.append({"source": source, "name": name, "size": 1, "etag": "e", "shard": 0})
        transcripts.append(
            {"source": source, "status": OK, "text": "hi", "duration_s": 1.0,
             "segments": [{"start": 0.0, "end": 1.0, "text": "hi"}]}
        )  # fmt: skip
        summaries.append({"source": source, "status": OK, "summary": "s"})
    for path, records in (("m", manifest), ("t", transcripts), ("s", summaries)):
        write_jsonl(tmp_path / f"{path}.jsonl", records)
    report = build_report(
        str(tmp_path / "m.jsonl"), [str(tmp_path / "t.jsonl")], [str(tmp_path / "s.jsonl")],
        str(inp), ReportOptions(),
    )  # fmt: skip
    export(str(out), report)
    base = (out / "report.html").as_uri()
    html_hrefs = re.findall(r'<a href="([^"]+)"', report.html)  # not the charts' SVG <use>
    md_hrefs = re.findall(r"\]\(([^)]+)\)", report.markdown)
    assert len(html_hrefs) == len(md_hrefs) == 3 * len(names)
    assert sorted(html_hrefs) == sorted(md_hrefs)
    targets = set()
    for href in html_hrefs:
        assert not set(href) & set("?# ()"), href
        url = urlsplit(urljoin(base, href.replace("&amp;", "&")))
        assert not url.query and not url.fragment
        path = Path(unquote(url.path))
        assert path.is_relative_to(out) and path.is_file(), href  # the exported file itself
        targets.add(path)
    assert Path(out, "text", "%2e%2e", "x.wav.txt") in targets
    assert Path(out, "subtitles", "q?x=1#h.wav.srt") in targets


# --- 7. symlinks in a local input folder ------------------------------------------------


def test_symlinks_are_recorded_under_the_link_name_or_skipped(
    speech: dict[str, Path], tmp_path: Path
) -> None:
    inp, outside = tmp_path / "in", tmp_path / "outside"
    inp.mkdir()
    outside.mkdir()
    shutil.copy(speech["a"], inp / "a.wav")
    shutil.copy(speech["b"], outside / "real.wav")
    os.symlink(outside / "real.wav", inp / "linked.wav")
    os.symlink(outside, inp / "folder-link")
    os.symlink(tmp_path / "missing.wav", inp / "broken.wav")
    shutil.copy(speech["c"], os.fsdecode(bytes(inp) + b"/bad\xff.wav"))  # no UTF-8 name
    result = plan(str(inp), PlanOptions())
    write_jsonl(tmp_path / "manifest.jsonl", result.files)  # every line is JSON text
    files = {f.name: f for f in result.files}
    assert set(files) == {"a.wav", "linked.wav", "folder-link", "broken.wav", "bad\ufffd.wav"}
    assert files["bad\ufffd.wav"].reason == "the path is not valid UTF-8"
    assert files["linked.wav"].source == str(inp / "linked.wav")  # not the target's path
    assert files["linked.wav"].action == PROCESS and files["linked.wav"].size > 0
    assert (files["folder-link"].action, files["folder-link"].reason) == (
        IGNORE,
        "symlink to a folder (not followed)",
    )
    assert (files["broken.wav"].action, files["broken.wav"].reason) == (
        IGNORE,
        "broken symlink (its target is missing)",
    )


# --- end to end -------------------------------------------------------------------------


def _records(path: Path) -> dict[str, dict]:
    return {r["source"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.slow
def test_hostile_folder_end_to_end_then_reprocess(
    speech: dict[str, Path], whisper_model: str, llm_server, tmp_path: Path
) -> None:
    """Long CJK names, AMR, Opus, an MP4 with 30 s of video, a symlink to a file outside
    the folder and a text file: every audio input is transcribed, stored and reported; then
    ``--reprocess`` with new settings does every input again."""
    inp, outside, out = tmp_path / "in", tmp_path / "outside", tmp_path / "out"
    inp.mkdir()
    outside.mkdir()
    shutil.copy(speech["a"], inp / f"{CJK}.wav")
    shutil.copy(speech["b"], inp / f"{LONGEST}.wav")
    _amr(speech["b"], inp / "voice.amr")
    _opus(speech["c"], inp / "memo.opus")
    _video(speech["d"], inp / "talk.mp4")
    shutil.copy(speech["e"], outside / "real.wav")
    os.symlink(outside / "real.wav", inp / "linked.wav")
    (inp / "notes.txt").write_text("not audio\n")
    expected = {
        f"{CJK}.wav": "river",
        f"{LONGEST}.wav": "support",
        "voice.amr": "support",
        "memo.opus": "earnings",
        "talk.mp4": "meeting",
        "linked.wav": "umbrella",
    }

    def run(*extra: str) -> int:
        return run_local(
            str(inp), str(out), whisper_model, llm_server.endpoint, llm_server.model,
            "--shards", "2", *extra,
        )  # fmt: skip

    assert run("--max-tokens", "48") == 0
    transcripts, summaries = _records(out / "transcripts.jsonl"), _records(out / "summaries.jsonl")
    sources = {str(inp / name) for name in expected}
    assert set(transcripts) == set(summaries) == sources
    for name, word in expected.items():
        record = transcripts[str(inp / name)]
        assert record["status"] == OK and word in record["text"].lower(), (name, record)
        assert summaries[str(inp / name)]["status"] == OK
    assert (out / "transcripts" / f"{CJK}.wav.json").is_file()  # 249 bytes: fits, kept
    long_name = ledger.relative_name(str(inp / f"{LONGEST}.wav"), str(inp))
    assert long_name != f"{LONGEST}.wav" and (out / "transcripts" / f"{long_name}.json").is_file()
    assert (out / "subtitles" / f"{long_name}.srt").is_file()
    assert (out / "text" / "linked.wav.txt").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["files_processed"], metrics["files_ok"]) == (6, 6)
    for report in ("report.md", "report.html"):  # what was not processed is named, with why
        text = (out / report).read_text()
        assert "Not processed" in text and "notes.txt" in text and "not audio" in text, report
    stored = {p: p.stat().st_mtime_ns for p in (out / "transcripts").iterdir()}

    # a second run with new settings and --reprocess does every input again
    assert run("--reprocess", "--beam-size", "1", "--max-tokens", "8") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["files_processed"], metrics["files_skipped"], metrics["files_ok"]) == (6, 0, 6)
    assert all(p.stat().st_mtime_ns != mtime for p, mtime in stored.items())
    for path in (out / "summaries").iterdir():
        record = json.loads(path.read_text())
        assert record["status"] == OK and 0 < record["completion_tokens"] <= 8, record
