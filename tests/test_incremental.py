"""Incremental, idempotent runs: the ledger, reuse of stored results, scheduled re-runs.

End to end through ``kfp-asr run-local`` against the S3 server process (moto, or MinIO from
the env), real Whisper tiny.en and a real llama-server.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components.common import ledger, storage
from components.common.errors import ConfigError
from components.common.ledger import SKIP, TRANSCRIPTS_DIR, Item
from components.common.records import OK, read_jsonl
from components.plan.planner import PlanOptions, plan, to_items
from components.transcribe.engine import TranscribeOptions, run_transcribe_step
from tests.fixtures.run_local import run_local

CLIPS = [
    "utt06_en-gb+m3_s140.wav",
    "utt07_en-us_s130.wav",
    "utt11_en-us+m1_s155.wav",
    "utt03_en+m3_s170.wav",
]


def _copy(audio_dir: Path, folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(audio_dir / name, folder / name)) for name in names]


def test_plan_skips_finished_inputs_and_plans_changed_ones(audio_dir: Path, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", str(tmp_path / "out")
    paths = _copy(audio_dir, inp, CLIPS[:3])
    for item in to_items(storage.list_audio(str(inp)), str(inp)):
        ledger.mark_finished(out, item)
    paths[2].write_bytes(paths[2].read_bytes() + b"\0" * 64)  # a changed object: new etag

    result = plan(str(inp), PlanOptions(num_shards=2), out)
    actions = {Path(f.source).name: f.action for f in result.files}
    assert actions == {CLIPS[0]: SKIP, CLIPS[1]: SKIP, CLIPS[2]: "process"}
    assert [[it.name for it in shard] for shard in result.shards] == [[CLIPS[2]]]

    again = plan(str(inp), PlanOptions(num_shards=2, reprocess=True), out)
    assert sorted(it.name for shard in again.shards for it in shard) == sorted(CLIPS[:3])

    ledger.mark_finished(out, result.shards[0][0])
    idle = plan(str(inp), PlanOptions(num_shards=2), out)  # nothing new: no error
    assert idle.shards == [[]] and {f.action for f in idle.files} == {SKIP}
    # the changed file's ledger now holds only its new version
    assert len(list(storage.list_objects(f"{out}/_ledger/{CLIPS[2]}/"))) == 1
    (inp / "notes.txt").write_text("no audio")
    for p in paths:
        p.unlink()
    with pytest.raises(ConfigError, match="holds no audio"):
        plan(str(inp), PlanOptions(), out)


def test_stored_transcripts_are_reused_without_loading_the_model(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    item = Item("/data/a.wav", "a.wav", "etag-1", 10)
    ledger.store_result(
        out, TRANSCRIPTS_DIR, item, {"source": item.source, "status": OK, "text": "stored"}
    )
    options = TranscribeOptions(model="no-such-model")  # loading it would be a ConfigError
    metrics = run_transcribe_step([item], tmp_path / "t.jsonl", options, out)
    assert metrics["files_reused"] == 1 and metrics["model_load_seconds"] == 0
    assert read_jsonl(tmp_path / "t.jsonl") == [
        {"source": item.source, "status": OK, "text": "stored"}
    ]
    assert run_transcribe_step([], tmp_path / "e.jsonl", options, out)["files"] == 0
    changed = Item(item.source, item.name, "etag-2", 10)
    with pytest.raises(ConfigError, match="no-such-model"):
        run_transcribe_step([changed], tmp_path / "t.jsonl", options, out)


@pytest.mark.slow
def test_a_retried_shard_redoes_only_files_without_stored_results(
    audio_dir: Path, whisper_model: str, tmp_path: Path
) -> None:
    """What a pod killed mid-shard leaves behind: the first file's result is stored."""
    inp, out = tmp_path / "in", str(tmp_path / "out")
    _copy(audio_dir, inp, CLIPS[:2])
    first, second = to_items(storage.list_audio(str(inp)), str(inp))
    kept = {"source": first.source, "status": OK, "text": "from the killed pod"}
    ledger.store_result(out, TRANSCRIPTS_DIR, first, kept)

    options = TranscribeOptions(model=whisper_model, language="en", beam_size=None)
    metrics = run_transcribe_step([first, second], tmp_path / "t.jsonl", options, out)
    records = read_jsonl(tmp_path / "t.jsonl")
    assert records[0] == kept
    assert records[1]["status"] == OK and "river" in records[1]["text"].lower()
    assert (metrics["files"], metrics["files_reused"]) == (2, 1)
    assert ledger.load_result(out, TRANSCRIPTS_DIR, first)["text"] == "from the killed pod"
    assert ledger.load_result(out, TRANSCRIPTS_DIR, second)["text"] == records[1]["text"]


def _run(inp: str, out: str, whisper_model: str, llm_server, *extra: str) -> int:
    return run_local(
        inp, out, whisper_model, llm_server.endpoint, llm_server.model,
        "--shards", "1", "--max-tokens", "32", *extra,
    )  # fmt: skip


def _etags(prefix: str) -> dict[str, str]:
    return {o.uri: o.etag for o in storage.list_objects(prefix)}


@pytest.mark.slow
def test_scheduled_runs_process_only_new_and_changed_objects(
    audio_dir: Path, whisper_model: str, llm_server, s3_bucket: str
) -> None:
    inp, out = f"s3://{s3_bucket}/incoming/", f"s3://{s3_bucket}/results"
    for name in CLIPS[:2]:
        storage.upload_file(audio_dir / name, inp + name)

    assert _run(inp, out, whisper_model, llm_server) == 0
    metrics = json.loads(storage.read_text(f"{out}/metrics.json"))
    assert (metrics["files_processed"], metrics["files_skipped"], metrics["files_ok"]) == (2, 0, 2)
    stored = _etags(f"{out}/transcripts/") | _etags(f"{out}/summaries/")
    assert len(stored) == 4 and len(ledger.finished(out)) == 2

    # second run over an unchanged bucket: nothing transcribed or summarized again
    assert _run(inp, out, whisper_model, llm_server) == 0
    metrics = json.loads(storage.read_text(f"{out}/metrics.json"))
    assert (metrics["files_total"], metrics["files_processed"], metrics["files_skipped"]) == (
        2,
        0,
        2,
    )
    assert _etags(f"{out}/transcripts/") | _etags(f"{out}/summaries/") == stored
    for table in ("transcripts", "summaries"):  # the catalogue still holds both inputs
        lines = storage.read_text(f"{out}/{table}.jsonl").splitlines()
        assert sorted(json.loads(x)["source"] for x in lines) == [inp + n for n in CLIPS[:2]]

    # two new objects and one changed object: exactly those three are processed
    for name in CLIPS[2:]:
        storage.upload_file(audio_dir / name, inp + name)
    storage.upload_file(audio_dir / CLIPS[3], inp + CLIPS[0])  # new content, new ETag
    assert _run(inp, out, whisper_model, llm_server) == 0
    metrics = json.loads(storage.read_text(f"{out}/metrics.json"))
    assert (
        metrics["files_total"],
        metrics["files_processed"],
        metrics["files_skipped"],
        metrics["files_failed"],
    ) == (4, 3, 1, 0)
    catalogue = [
        json.loads(line) for line in storage.read_text(f"{out}/transcripts.jsonl").splitlines()
    ]  # every input once, the changed one at its new version
    assert sorted(r["source"] for r in catalogue) == sorted(inp + n for n in CLIPS)
    by_name = {r["name"]: r for r in catalogue}
    assert by_name[CLIPS[0]]["etag"] == _etags(inp)[inp + CLIPS[0]]
    assert "rain" in by_name[CLIPS[0]]["text"].lower()
    assert metrics["catalogue_replaced"] == 1 and metrics["catalogue_added"] == 2
    changed = json.loads(storage.read_text(f"{out}/transcripts/{CLIPS[0]}.json"))
    assert "rain" in changed["text"].lower()  # CLIPS[3]'s words under CLIPS[0]'s key
    untouched = f"{out}/transcripts/{CLIPS[1]}.json"
    assert _etags(f"{out}/transcripts/")[untouched] == stored[untouched]
    # one ledger entry per input at its current ETag, one result object per stage and input
    current = {(ledger.relative_name(o.uri, inp), o.etag) for o in storage.list_audio(inp)}
    assert ledger.finished(out) == current
    assert len(_etags(f"{out}/transcripts/")) == len(_etags(f"{out}/summaries/")) == 4
    assert "skipped (finished earlier) | 1 |" in storage.read_text(f"{out}/report.md")
