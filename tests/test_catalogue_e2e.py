"""Three scheduled ``run-local`` runs over one folder (3 files, nothing new, 1 more file):
the catalogue at the output prefix holds 3, 3 and 4 records in each JSON Lines file and in
the Parquet dataset, DuckDB queries the dataset in place, each run keeps its own folder, and
the report of a real run draws its charts in headless Chromium.

Real Whisper tiny.en, a real llama-server, kfp.local; the demo clips of ``samples/``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.fixtures.browser import render
from tests.fixtures.run_local import run_local

#: The first test's fixture makes three whole pipeline runs: more than the suite's per-test limit
#: on a busy 2-core machine.
pytestmark = pytest.mark.timeout(3600)
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FIRST = ["earnings_call.mp3", "support_call.mp3", "team_meeting.mp3"]
LATER = "voicemail.flac"


def _count_lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def _parquet_counts(out: Path, table: str) -> tuple[int, int]:
    rows, sources = (
        duckdb.connect()
        .execute(
            f"SELECT count(*), count(DISTINCT source) "
            f"FROM read_parquet('{out}/catalog/{table}/*.parquet')"
        )
        .fetchall()[0]
    )
    return rows, sources


@pytest.fixture(scope="module")
def three_runs(whisper_model: str, llm_server, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run three times; after each run, the catalogue's counts and the run's metrics."""
    root = tmp_path_factory.mktemp("catalogue-e2e")
    inp, out = root / "in", root / "out"
    inp.mkdir()
    for name in FIRST:
        shutil.copy(SAMPLES / name, inp / name)
    after = []
    for step in range(3):
        if step == 2:
            shutil.copy(SAMPLES / LATER, inp / LATER)
        code = run_local(
            str(inp), str(out), whisper_model, llm_server.endpoint, llm_server.model,
            "--shards", "2", "--max-tokens", "32", "--beam-size", "1",
        )  # fmt: skip
        assert code == 0
        after.append(
            {
                "transcripts.jsonl": _count_lines(out / "transcripts.jsonl"),
                "summaries.jsonl": _count_lines(out / "summaries.jsonl"),
                "catalog/transcripts": _parquet_counts(out, "transcripts"),
                "catalog/summaries": _parquet_counts(out, "summaries"),
                "metrics": json.loads((out / "metrics.json").read_text()),
            }
        )
    return {"in": inp, "out": out, "after": after}


@pytest.mark.slow
def test_the_catalogue_holds_every_input_after_every_run(three_runs: dict) -> None:
    for expected, after in zip((3, 3, 4), three_runs["after"], strict=True):
        assert after["transcripts.jsonl"] == after["summaries.jsonl"] == expected
        assert after["catalog/transcripts"] == after["catalog/summaries"] == (expected, expected)
        assert after["metrics"]["catalogue_files"] == expected
    processed = [a["metrics"]["files_processed"] for a in three_runs["after"]]
    assert processed == [3, 0, 1]
    assert [a["metrics"]["catalogue_added"] for a in three_runs["after"]] == [3, 0, 1]


@pytest.mark.slow
def test_duckdb_queries_the_dataset_in_place(three_runs: dict) -> None:
    out, inp = three_runs["out"], three_runs["in"]
    rows = (
        duckdb.connect()
        .execute(
            f"""
            SELECT t.name, t.status, s.status, len(t.segments) > 0, t.segments[1].start,
                   t.duration_s, s.summary <> '', t.run = s.run
            FROM read_parquet('{out}/catalog/transcripts/*.parquet') t
            JOIN read_parquet('{out}/catalog/summaries/*.parquet') s USING (source)
            ORDER BY t.name
            """
        )
        .fetchall()
    )
    assert [r[0] for r in rows] == sorted([*FIRST, LATER])
    assert all(r[1] == r[2] == "ok" and r[3] and r[4] == 0.0 and r[6] and r[7] for r in rows)
    assert all(r[5] > 5 for r in rows)
    jsonl = {
        json.loads(x)["source"] for x in (out / "transcripts.jsonl").read_text().split("\n") if x
    }
    assert jsonl == {str(inp / n) for n in [*FIRST, LATER]}


@pytest.mark.slow
def test_each_run_keeps_its_manifest_metrics_report_and_delta(three_runs: dict) -> None:
    runs = sorted((three_runs["out"] / "runs").iterdir())
    assert len(runs) == 3
    for folder, delta in zip(runs, (3, 0, 1), strict=True):
        assert _count_lines(folder / "transcripts.jsonl") == delta
        assert _count_lines(folder / "manifest.jsonl") in (3, 4)
        assert json.loads((folder / "metrics.json").read_text())["files_processed"] == delta
        assert (folder / "report.html").is_file() and (folder / "report.md").is_file()
    first = json.loads((runs[0] / "metrics.json").read_text())
    assert first["makespan_s"] > 0 and first["mean_shard_completion_s"] > 0
    assert first["shards"] == 2


@pytest.mark.slow
def test_the_report_draws_its_charts_in_headless_chromium(three_runs: dict, tmp_path: Path) -> None:
    """The first run's report (two shards at work): timeline, TTFT and audio duration
    histograms are inline SVG with drawn shapes, and the page logs no console message
    (no script error, no blocked load) with the network unreachable."""
    page = sorted((three_runs["out"] / "runs").iterdir())[0] / "report.html"
    shown = render(page, tmp_path / "profile")
    assert shown.console == []
    charts = re.findall(r'<figure class="chart" id="(\w+)">(.*?)</figure>', shown.dom, re.S)
    assert [name for name, _ in charts] == ["timeline", "ttft", "audio"]
    for name, body in charts:
        assert body.count("<svg") == 1, name
        assert len(re.findall(r"<path\b", body)) >= 4, name  # bars, axes, ticks
    timeline = charts[0][1]
    for label in ("plan", "shard 0", "shard 1", "report", "transcribe", "summarize"):
        assert f">{label}<" in timeline, label
