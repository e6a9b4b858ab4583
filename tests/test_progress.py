"""What ``run-local`` shows: kfp's noise hidden, one line per file, bars on a terminal."""

from __future__ import annotations

import io
import json
import re

from pipelines.progress import Progress, results_table

TS = "[KFP Executor 2026-12-01 19:52:01,123 {}]: {}"
DUMP = json.dumps({"inputs": {"parameterValues": {"input_uri": "/in"}}}, indent=4)


def executor(level: str, msg: str) -> list[str]:
    return TS.format(level, msg).split("\n")


def step_output(stage: str) -> list[str]:
    """What a step process writes, in kfp's executor log format."""
    lines = executor("INFO", "Looking for component `x` in --component_module_path `/t`")
    lines += executor("INFO", f"Got executor_input:\n{DUMP}")
    if stage == "plan":
        lines += executor("INFO", "plan: 3 inputs, 2 to process in 1 shard(s), 1 finished earlier")
    if stage == "transcribe":
        lines += executor("INFO", "loaded Whisper tiny.en on cpu in 1.2 s")
        lines += executor(
            "INFO", "[1/2] a.wav: 12.5 s audio in 2.50 s (5.0x real time; shard 5.0x)"
        )
        lines += executor("WARNING", "[2/2] b.wav: failed: ffmpeg: invalid data")
        lines += ["Traceback (most recent call last):", '  File "x.py", line 1', "OSError: boom"]
    if stage == "summarize":
        lines += executor("WARNING", "LLM request failed (503); retry 1/5 in 0.50 s")
        lines += executor("INFO", "[1/2] a.wav: summary ok in 3.1 s")
        lines += executor("INFO", "[2/2] b.wav: summary failed in 0.0 s")
    lines += executor("INFO", "Wrote executor output file to /tmp/out.json.")
    return lines


KFP_LOCAL = [
    "19:52:00.001 - INFO - Executing task \x1b[96m'transcribe'\x1b[0m",
    "19:52:00.002 - INFO - Streamed logs:",
    "19:52:09.000 - INFO - Task 'transcribe' finished with status \x1b[92mSUCCESS\x1b[0m",
    "19:52:09.001 - INFO - Task 'transcribe' outputs:",
    "    transcripts: Dataset( name='transcripts',",
    "19:52:10.000 - INFO - Task 'report' failed (attempt 1/3). Retrying in 30.0s...",
]


def run(progress: Progress) -> None:
    for stage in ("plan", "transcribe", "summarize", "report"):
        stream = progress.step_started(stage)
        for line in step_output(stage):
            progress.step_line(stage, stream, line + "\n")
        progress.step_ended(stage, 0)
    proxy = progress.stdout_proxy()
    for line in KFP_LOCAL:
        proxy.write(line + "\n")
    progress.close()


def test_plain_output_hides_kfp_and_shows_files_and_errors():
    out = io.StringIO()
    run(Progress(out, tty=False))
    text = out.getvalue()
    for hidden in ("parameterValues", "executor_input", "Looking for component",
                   "Wrote executor output", "Executing task", "outputs:", "Dataset(",
                   "loaded Whisper", "SUCCESS"):  # fmt: skip
        assert hidden not in text, hidden
    lines = text.splitlines()
    assert "plan: 1 of 3 inputs finished earlier: skipped" in lines
    assert "transcribe: warning: [2/2] b.wav: failed: ffmpeg: invalid data" in lines
    assert "summarize: warning: LLM request failed (503); retry 1/5 in 0.50 s" in lines
    assert "OSError: boom" in lines and "Traceback (most recent call last):" in lines
    assert any("'report' failed (attempt 1/3). Retrying" in x for x in lines)
    [a] = [x for x in lines if x.startswith("a.wav")]
    [b] = [x for x in lines if x.startswith("b.wav")]
    assert a.split() == ["a.wav", "12.5", "s", "audio", "5.0x", "real", "time", "ok"]
    assert b.endswith("failed (transcribe)") and "-" in b.split()
    assert [x for x in lines if x.endswith(": started")] == [
        "plan: started", "transcribe: started", "summarize: started", "report: started",
    ]  # fmt: skip


def test_verbose_shows_everything():
    out = io.StringIO()
    run(Progress(out, verbose=True, tty=True))
    text = out.getvalue()
    for shown in ("parameterValues", "Looking for component", "Executing task", "Dataset(",
                  "loaded Whisper", "OSError: boom"):  # fmt: skip
        assert shown in text, shown
    assert sum(x.startswith("a.wav") for x in text.splitlines()) == 1


def test_terminal_gets_a_bar_per_stage():
    out = io.StringIO()
    run(Progress(out, tty=True))
    text = out.getvalue()
    for stage, done in (("plan", "1/1"), ("transcribe", "2/2"), ("summarize", "2/2")):
        assert any(stage in x and done in x for x in text.split("\r")), stage
    assert "parameterValues" not in text and ": started" not in text
    plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).replace("\r", "\n")
    assert sum(x.startswith("a.wav") for x in plain.splitlines()) == 1
    assert "transcribe: warning: [2/2] b.wav: failed: ffmpeg: invalid data" in plain


def test_results_table():
    transcripts = [
        {"source": "/in/a.wav", "status": "ok", "duration_s": 12.5},
        {"source": "/in/b.wav", "status": "failed", "error": "ffmpeg: invalid data"},
        {"source": "/in/c.wav", "status": "ok", "duration_s": 3.0},
    ]
    summaries = [
        {"source": "/in/a.wav", "status": "ok", "summary": "word " * 40},
        {"source": "/in/b.wav", "status": "failed", "error": "transcript failed"},
        {"source": "/in/c.wav", "status": "failed", "error": "HTTP 503", "summary": ""},
    ]
    header, a, b, c = results_table(transcripts, summaries, width=20).splitlines()
    assert header.split() == ["file", "audio", "s", "status", "summary"]
    assert a.split()[:3] == ["a.wav", "12.5", "ok"] and a.endswith("word word…")
    assert b.split()[:3] == ["b.wav", "-", "failed"] and b.endswith(
        "transcribe: ffmpeg: invalid data"[:19] + "…"
    )
    assert c.split()[:3] == ["c.wav", "3.0", "failed"] and c.endswith("summarize: HTTP 503")
