"""The report: joining records, metrics, HTML/Markdown pages and the export (local and S3)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from components.common import storage
from components.common.records import (
    Segment,
    SummaryRecord,
    TranscriptRecord,
    stamped,
    write_jsonl,
)
from components.report.report import ReportOptions, all_ok, build_report, run_report_step

T0 = "2026-12-01T10:00:00.000000Z"


def _at(seconds: float) -> str:
    """The UTC time ``seconds`` after T0."""
    return f"2026-12-01T10:{int(seconds) // 60:02d}:{seconds % 60:09.6f}Z"


@pytest.fixture
def stage_outputs(tmp_path: Path) -> dict:
    """Four planned files: ok, transcribe failed, summarize failed, never reported (lost).

    Records are written the way the transcribe and summarize steps write them: one JSONL
    file per shard.
    """
    inp = tmp_path / "in"
    (inp / "team").mkdir(parents=True)
    src = {name: str(inp / name) for name in ("team/ok.wav", "bad.mp3", "nosum.wav", "lost.wav")}
    (inp / "team" / "ok.txt").write_text("The budget was approved today.")
    write_jsonl(
        tmp_path / "manifest.jsonl",
        stamped(
            [
                {"source": s, "size": 1000, "etag": "e", "duration_s": d, "shard": i // 2}
                for i, (s, d) in enumerate(zip(src.values(), (12.0, None, 30.0, 44.0), strict=True))
            ],
            _at(0),
            _at(2),
        ),
    )
    # shard 0: transcribe 2..8 s, summarize 8..10 s; shard 1: transcribe 2..12, summarize 12..20
    write_jsonl(
        tmp_path / "t0.jsonl",
        stamped(
            [
                TranscriptRecord(
                    src["team/ok.wav"],
                    language="en",
                    duration_s=12.0,
                    text="The budget was approved to day.",
                    model="tiny.en",
                    processing_s=2.0,
                    segments=[
                        Segment(0.0, 3.5, "The budget was"),
                        Segment(3.5, 6.0, "approved to day."),
                    ],
                ),
                TranscriptRecord.failed(src["bad.mp3"], "cannot decode audio: Invalid data found"),
            ],
            _at(2),
            _at(8),
        ),
    )
    write_jsonl(
        tmp_path / "t1.jsonl",
        stamped(
            [
                TranscriptRecord(
                    src["nosum.wav"],
                    language="en",
                    duration_s=30.0,
                    text="Hello | world",
                    model="tiny.en",
                    processing_s=4.0,
                    segments=[Segment(0, 1, "Hello")],
                ),
            ],
            _at(2),
            _at(12),
        ),
    )
    write_jsonl(
        tmp_path / "s0.jsonl",
        stamped(
            [
                SummaryRecord(
                    src["team/ok.wav"],
                    summary="Budget <b>approved</b> | done.",
                    ttft_s=0.2,
                    latency_s=1.0,
                    model="m",
                ),
                SummaryRecord.failed(src["bad.mp3"], "transcript failed"),
            ],
            _at(8),
            _at(10),
        ),
    )
    write_jsonl(
        tmp_path / "s1.jsonl",
        stamped(
            [
                SummaryRecord.failed(src["nosum.wav"], "HTTP 500 from the LLM endpoint"),
            ],
            _at(12),
            _at(20),
        ),
    )
    return {"dir": tmp_path, "input": str(inp), "src": src}


def _build(outputs: dict):
    d = outputs["dir"]
    return build_report(
        str(d / "manifest.jsonl"),
        [str(d / "t0.jsonl"), str(d / "t1.jsonl")],
        [str(d / "s0.jsonl"), str(d / "s1.jsonl")],
        outputs["input"],
        ReportOptions(),
    )


def test_metrics(stage_outputs: dict) -> None:
    report = _build(stage_outputs)
    m = report.metrics
    assert (m["files_total"], m["files_ok"], m["files_failed"], m["files_skipped"]) == (4, 2, 2, 0)
    assert (m["files_processed"], m["files_lost"]) == (4, 1)
    assert m["audio_seconds"] == 42.0
    assert m["audio_hours"] == pytest.approx(42.0 / 3600, abs=1e-4)
    assert m["real_time_factor"] == pytest.approx(42.0 / 6.0)
    assert (m["summaries_ok"], m["summaries_failed"]) == (1, 3)
    assert m["ttft_p50_s"] == m["ttft_p95_s"] == 0.2
    # one reference (ok.txt): 5 reference words, "today" -> "to day" is 1 substitution + 1 insertion
    assert m["wer"] == pytest.approx(2 / 5)
    assert m["wer_files"] == 1
    assert not all_ok(m)


def test_every_planned_file_has_one_record_of_each_kind(stage_outputs: dict) -> None:
    report = _build(stage_outputs)
    sources = list(stage_outputs["src"].values())
    assert [t["source"] for t in report.transcripts] == sources
    assert [s["source"] for s in report.summaries] == sources
    lost = report.transcripts[3]
    assert lost["status"] == "failed" and lost["error"].startswith("lost")


def test_rows_list_failures_first_with_readable_errors(stage_outputs: dict) -> None:
    rows = _build(stage_outputs).rows
    assert [(r.name, r.status) for r in rows] == [
        ("bad.mp3", "failed"),
        ("lost.wav", "lost"),
        ("nosum.wav", "failed"),
        ("team/ok.wav", "ok"),
    ]
    assert rows[0].error == "transcribe: cannot decode audio: Invalid data found"
    assert rows[2].error == "summarize: HTTP 500 from the LLM endpoint"
    assert rows[1].duration_s == 44.0  # from the plan's probe when no transcript came back
    assert rows[3].real_time_factor == pytest.approx(6.0)


def test_pages_escape_untrusted_text(stage_outputs: dict) -> None:
    report = _build(stage_outputs)
    assert "<b>approved</b>" not in report.html
    assert "Budget &lt;b&gt;approved&lt;/b&gt; | done." in report.html
    assert '<a href="subtitles/team/ok.wav.srt">srt</a>' in report.html
    assert report.html.index("Failures") < report.html.index("Files</h2>")
    assert "Budget &lt;b&gt;approved&lt;/b&gt; \\| done." in report.markdown
    assert "[text](text/team/ok.wav.txt)" in report.markdown
    assert "| WER | 0.4 |" in report.markdown
    table = report.markdown.split("## Files")[1].strip().splitlines()
    assert len(table) == 2 + 4
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 8 for line in table)


def _exported(read, names: list[str]) -> dict[str, str]:
    return {name: read(name) for name in names}


EXPORT = [
    "transcripts.jsonl",
    "summaries.jsonl",
    "report.html",
    "report.md",
    "metrics.json",
    "text/team/ok.wav.txt",
    "subtitles/team/ok.wav.srt",
    "subtitles/team/ok.wav.vtt",
    "subtitles/nosum.wav.srt",
]
RUN_FILES = [
    "manifest.jsonl",
    "transcripts.jsonl",
    "summaries.jsonl",
    "metrics.json",
    "report.html",
    "report.md",
]


def _step(outputs: dict, out: str):
    d = outputs["dir"]
    return run_report_step(
        str(d / "manifest.jsonl"),
        [str(d / "t0.jsonl"), str(d / "t1.jsonl")],
        [str(d / "s0.jsonl"), str(d / "s1.jsonl")],
        outputs["input"],
        out,
        "run-1",
    )


def _check_export(read, report) -> None:
    files = _exported(read, EXPORT)
    here = _exported(read, [f"{report.run_dir}/{n}" for n in RUN_FILES])
    assert report.run_dir == "runs/20261201T100000Z-run-1"
    sources = sorted(t["source"] for t in report.transcripts)
    for jsonl in ("transcripts.jsonl", "summaries.jsonl"):  # the catalogue: every input once
        assert sorted(json.loads(x)["source"] for x in files[jsonl].splitlines()) == sources
        delta = here[f"{report.run_dir}/{jsonl}"].splitlines()
        assert [json.loads(x)["source"] for x in delta] == [t["source"] for t in report.transcripts]
    assert {json.loads(x)["run"] for x in files["transcripts.jsonl"].splitlines()} == {"run-1"}
    assert len(here[f"{report.run_dir}/manifest.jsonl"].splitlines()) == 4
    assert json.loads(files["metrics.json"]) == report.metrics
    assert json.loads(here[f"{report.run_dir}/metrics.json"]) == report.metrics
    assert files["report.html"] == report.html
    assert '<a href="../../subtitles/team/ok.wav.srt">' in here[f"{report.run_dir}/report.html"]
    assert files["text/team/ok.wav.txt"] == "The budget was approved to day.\n"
    assert "00:00:03,500 --> 00:00:06,000\napproved to day." in files["subtitles/team/ok.wav.srt"]
    assert files["subtitles/team/ok.wav.vtt"].startswith("WEBVTT")
    assert (report.metrics["catalogue_files"], report.metrics["catalogue_ok"]) == (4, 2)


def test_export_to_a_local_folder(stage_outputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = _step(stage_outputs, str(out))
    _check_export(lambda n: (out / n).read_text(), report)
    assert not (out / "subtitles" / "bad.mp3.srt").exists()


def test_export_to_s3(stage_outputs: dict, s3_bucket: str) -> None:
    prefix = f"s3://{s3_bucket}/results"
    report = _step(stage_outputs, prefix)
    _check_export(lambda n: storage.read_text(f"{prefix}/{n}"), report)


def test_figures_come_from_the_step_times(stage_outputs: dict) -> None:
    m = _build(stage_outputs).metrics
    assert m["makespan_s"] == 20.0  # plan start to the end of shard 1's summarize
    # completion from the plan's end (2 s): shard 0 at 10 s, shard 1 at 20 s
    assert (m["mean_shard_completion_s"], m["max_shard_completion_s"]) == (13.0, 18.0)
    assert m["shards"] == 2
    report = _build(stage_outputs)
    assert "| 0 | 2 | 1 | 12.0 | 6.0 | 2 | 2.0 | 8.0 |" in report.markdown  # RTF 12 s / 6 s
    assert "| 1 | 2 | 1 | 30.0 | 10.0 | 3 | 8.0 | 18.0 |" in report.markdown  # lost.wav too
    assert "| shard 1 | summarize | 12.0 | 20.0 |" in report.markdown
    assert "| 0.00 – 0.70 | 1 |" in report.markdown  # one TTFT of 0.2 s
    html = report.html
    assert html.count("<svg") == 3  # timeline, TTFT and audio durations
    assert 'id="timeline"' in html and 'id="ttft"' in html and 'id="audio"' in html


def test_all_ok_when_every_file_and_summary_is_ok(stage_outputs: dict) -> None:
    d = stage_outputs["dir"]
    ok = stage_outputs["src"]["team/ok.wav"]
    write_jsonl(
        d / "manifest.jsonl",
        [{"source": ok, "size": 1, "etag": "e", "duration_s": 12.0, "shard": 0}],
    )
    report = _build(stage_outputs)
    assert all_ok(report.metrics)
    assert "Failures" not in report.html


def _ok_plus(stage_outputs: dict, other: dict) -> str:
    """Write a manifest of the processed ``team/ok.wav`` and one ``other`` line; its source."""
    ok = stage_outputs["src"]["team/ok.wav"]
    write_jsonl(
        stage_outputs["dir"] / "manifest.jsonl",
        [
            {
                "source": ok,
                "name": "team/ok.wav",
                "size": 1,
                "etag": "e",
                "duration_s": 12.0,
                "shard": 0,
                "action": "process",
            },
            {"size": 1, "etag": "e", "duration_s": None, "shard": None, **other},
        ],
    )
    return ok


def test_inputs_finished_earlier_are_counted_not_listed(stage_outputs: dict) -> None:
    ok = _ok_plus(
        stage_outputs, {"source": "/elsewhere/old.wav", "name": "old.wav", "action": "skip"}
    )
    report = _build(stage_outputs)
    m = report.metrics
    assert (m["files_total"], m["files_processed"], m["files_skipped"]) == (2, 1, 1)
    assert (m["files_ok"], m["files_failed"]) == (1, 0)
    assert all_ok(m)
    assert [r.name for r in report.rows] == ["team/ok.wav"]
    assert [t["source"] for t in report.transcripts] == [ok]
    assert "| skipped (finished earlier) | 1 |" in report.markdown


def test_objects_that_are_not_audio_are_listed_with_their_reason(stage_outputs: dict) -> None:
    _ok_plus(
        stage_outputs,
        {
            "source": "/in/<b>notes</b>.txt",
            "name": "<b>notes</b>.txt",
            "action": "ignore",
            "reason": "not audio: ffprobe cannot read it",
        },
    )
    report = _build(stage_outputs)
    m = report.metrics
    assert (m["files_total"], m["files_processed"], m["files_skipped"]) == (1, 1, 0)
    assert [r.name for r in report.rows] == ["team/ok.wav"]
    assert "- `&lt;b&gt;notes&lt;/b&gt;.txt`: not audio: ffprobe cannot read it" in report.markdown
    assert "<code>&lt;b&gt;notes&lt;/b&gt;.txt</code>: not audio: ffprobe" in report.html
