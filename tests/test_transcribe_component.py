"""The ``transcribe`` KFP component: compiled interface and runs under ``kfp.local``."""

# No ``from __future__ import annotations``: KFP reads the pipeline's return annotation as a type.

import os
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from kfp import compiler, dsl, local

from components.common.ledger import Item
from components.common.records import FAILED, OK, parse_utc, read_jsonl
from components.common.shards import write_shards
from components.transcribe.component import transcribe_op

REPO = Path(__file__).resolve().parents[1]
CLIP = "utt06_en-gb+m3_s140.wav"


@pytest.fixture
def local_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``kfp.local`` with a subprocess runner; returns the (fresh) pipeline root."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("WHISPER_CACHE_DIR", str(tmp_path / "whisper-cache"))
    root = tmp_path / "pipeline-root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    return root


def test_interface_and_descriptions(tmp_path: Path) -> None:
    out = tmp_path / "transcribe.yaml"
    compiler.Compiler().compile(transcribe_op, str(out))
    spec = yaml.safe_load(out.read_text())
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["shard_index"]["parameterType"] == "NUMBER_INTEGER"
    shards = spec["root"]["inputDefinitions"]["artifacts"]["shards"]
    assert shards["artifactType"]["schemaTitle"] == "system.Dataset"
    assert inputs["whisper_model"]["defaultValue"] == "tiny.en"
    assert inputs["language"]["defaultValue"] == "auto"
    assert inputs["beam_size"]["defaultValue"] == 5
    assert inputs["batch_size"]["defaultValue"] == 1
    assert "s3:// URI of a checkpoint" in inputs["whisper_model"]["description"]
    outputs = spec["root"]["outputDefinitions"]["artifacts"]
    assert outputs["transcripts"]["artifactType"]["schemaTitle"] == "system.Dataset"
    assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert "one record per input file" in outputs["transcripts"]["description"]


@pytest.mark.slow
def test_runs_under_kfp_local(
    local_runner: Path, tmp_path: Path, audio_dir: Path, whisper_model: str
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    shard = [str(audio_dir / CLIP), str(bad)]
    shards = tmp_path / "shards.jsonl"
    write_shards(shards, [[], [Item(s, Path(s).name, "e", 1) for s in shard]])

    class Outputs(NamedTuple):
        transcripts: dsl.Dataset
        metrics: dsl.Metrics

    @dsl.pipeline
    def second_shard() -> Outputs:
        plan = dsl.importer(artifact_uri=str(shards), artifact_class=dsl.Dataset)
        task = transcribe_op(
            shards=plan.output, shard_index=1, whisper_model=whisper_model, language="en"
        )
        return Outputs(task.outputs["transcripts"], task.outputs["metrics"])

    run = second_shard()
    records = read_jsonl(run.outputs["transcripts"].path)
    assert [r["source"] for r in records] == shard
    assert [r["status"] for r in records] == [OK, FAILED]
    assert "agenda" in records[0]["text"].lower()
    metrics = run.outputs["metrics"].metadata
    assert metrics["files"] == 2 and metrics["files_failed"] == 1
    assert metrics["audio_seconds"] == pytest.approx(6.395, abs=0.05)
    assert metrics["real_time_factor"] == pytest.approx(
        metrics["audio_seconds"] / metrics["processing_seconds"], rel=0.01
    )
    # the step's start and end (UTC): in every record and, as UNIX seconds, in the metrics
    assert len({(r["step_started_at"], r["step_finished_at"]) for r in records}) == 1
    assert parse_utc(records[1]["step_finished_at"]) == pytest.approx(metrics["step_finished_at_s"])
    assert metrics["step_seconds"] >= metrics["processing_seconds"]


def test_config_error_fails_the_task_and_writes_nothing(
    local_runner: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    clip = tmp_path / "x.wav"
    clip.write_bytes(b"")
    shards = tmp_path / "shards.jsonl"
    write_shards(shards, [[Item(str(clip), "x.wav", "e")]])

    @dsl.pipeline
    def bad_model() -> None:
        plan = dsl.importer(artifact_uri=str(shards), artifact_class=dsl.Dataset)
        transcribe_op(shards=plan.output, shard_index=0, whisper_model="tiny-english")

    with pytest.raises(RuntimeError):
        bad_model()
    captured = capfd.readouterr()
    assert "whisper_model='tiny-english' is not a Whisper model name" in captured.out + captured.err
    assert not [p for p in local_runner.rglob("*") if p.is_file()], "nothing half-written"
