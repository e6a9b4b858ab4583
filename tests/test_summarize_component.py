"""The ``summarize`` KFP component: its interface, and a kfp.local run against llama-server."""

# No ``from __future__ import annotations``: KFP reads the pipeline's return annotation as a type.

import inspect
import json
from pathlib import Path
from typing import NamedTuple

import kfp.local
import pytest
from kfp import dsl
from kfp.dsl import Dataset, Metrics

from components.common.records import FAILED, OK, parse_utc, read_jsonl
from components.summarize.client import (
    DEFAULT_ENDPOINT,
    DEFAULT_MODEL,
    DEFAULT_OBJECTIVE,
    ClientOptions,
)
from components.summarize.component import summarize, summarize_op
from pipelines.profiles import PipelineDefaults


def test_defaults_match_the_deployment_contract():
    params = inspect.signature(summarize).parameters
    assert params["llm_endpoint"].default == DEFAULT_ENDPOINT
    assert params["llm_model"].default == DEFAULT_MODEL
    assert params["llm_objective"].default == DEFAULT_OBJECTIVE
    assert DEFAULT_ENDPOINT == "http://llm-d-inference-gateway-istio.llm-d.svc.cluster.local/v1"
    assert (params["max_tokens"].default, params["max_concurrency"].default) == (256, 8)
    budget = ClientOptions().structured_max_tokens
    assert params["structured_max_tokens"].default == budget
    assert PipelineDefaults.structured_max_tokens == budget


def test_interface_is_described():
    spec = summarize_op.component_spec
    assert set(spec.outputs) == {"summaries", "metrics"}
    for name, value in {**spec.inputs, **spec.outputs}.items():
        assert value.description, f"{name} has no description"


def test_kfp_local_run(llm_server, tmp_path: Path):
    transcripts = tmp_path / "in" / "transcripts.jsonl"
    transcripts.parent.mkdir()
    rows = [
        {"source": "s3://calls/a.wav", "status": OK, "text": "Revenue grew nine percent.",
         "segments": [{"start": 0.0, "end": 2.0, "text": " Revenue grew nine percent."}]},
        {"source": "s3://calls/b.wav", "status": FAILED, "error": "not audio"},
        {"source": "s3://calls/c.wav", "status": OK, "text": "", "segments": []},
    ]  # fmt: skip
    transcripts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root")
    )

    class Outputs(NamedTuple):
        summaries: Dataset
        metrics: Metrics

    @dsl.pipeline
    def one_step() -> Outputs:
        imported = dsl.importer(artifact_uri=str(transcripts), artifact_class=Dataset)
        task = summarize_op(
            transcripts=imported.output,
            llm_endpoint=llm_server.endpoint,
            llm_model=llm_server.model,
            max_tokens=16,
            max_concurrency=2,
            llm_objective="",
        )
        return Outputs(task.outputs["summaries"], task.outputs["metrics"])

    run = one_step()
    records = read_jsonl(run.outputs["summaries"].path)
    assert [(r["source"], r["status"]) for r in records] == [
        ("s3://calls/a.wav", OK), ("s3://calls/b.wav", FAILED), ("s3://calls/c.wav", OK),
    ]  # fmt: skip
    assert records[0]["summary"] and records[0]["ttft_s"] > 0
    assert records[0]["completion_tokens"] == 16
    assert records[1]["error"] == "transcript failed: not audio"
    metrics = run.outputs["metrics"].metadata
    assert metrics["files"] == 3 and metrics["failures"] == 1 and metrics["requests"] == 1
    assert metrics["ttft_p50_s"] > 0
    # the step's start and end (UTC): in every record and, as UNIX seconds, in the metrics
    assert len({(r["step_started_at"], r["step_finished_at"]) for r in records}) == 1
    assert parse_utc(records[0]["step_started_at"]) == pytest.approx(metrics["step_started_at_s"])
    assert metrics["step_finished_at_s"] >= metrics["step_started_at_s"]
