"""``run-local`` as a process: ``kill -9`` stops its steps, temporary files are cleaned up.

Real Whisper (tiny.en) on a real clip of ``samples/``; scripted LLM servers, because only
they can hold a summary request open on demand (the moment the run is killed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.run_folder import OWNER_FILE, TMP_PREFIX, clean_stale_runs, process_start_time
from tests.test_summarize_faults import MODEL, Reply, ScriptedServer, sequence

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "samples" / "voicemail.flac"


def _processes_mentioning(text: str) -> list[int]:
    """Live PIDs whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _run_local(inp: Path, out: Path, whisper_model: str, endpoint: str, env: dict) -> list:
    return [
        sys.executable, "-m", "pipelines", "run-local", "--input", str(inp), "--output",
        str(out), "--whisper-model", whisper_model, "--language", "en", "--llm-endpoint",
        endpoint, "--llm-model", MODEL, "--max-tokens", "16", "--retries", "0",
    ]  # fmt: skip


def _wait_for(condition, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {limit_s:.0f} s")
        time.sleep(0.2)


@pytest.mark.slow
def test_kill_9_stops_the_steps_and_the_rerun_leaves_no_temp_files(
    whisper_model: str, tmp_path: Path
) -> None:
    inp, out, system_tmp = tmp_path / "in", tmp_path / "out", tmp_path / "system-tmp"
    inp.mkdir()
    system_tmp.mkdir()
    (inp / CLIP.name).write_bytes(CLIP.read_bytes())
    env = {
        **os.environ,
        "TMPDIR": str(system_tmp),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    stalled = ScriptedServer(sequence(Reply(stall_after=1)))  # holds every summary request
    good = ScriptedServer(sequence(Reply()))
    try:
        with open(tmp_path / "first.log", "wb") as log:
            first = subprocess.Popen(
                _run_local(inp, out, whisper_model, stalled.endpoint, env),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        _wait_for(
            lambda: stalled.chats or first.poll() is not None,
            600,
            "the summarize step sent no request",
        )
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        [run_dir] = system_tmp.glob("kfp-asr-local-*")
        assert _processes_mentioning(str(run_dir))  # the step, mid-request
        first.kill()  # kill -9 of run-local alone, not of its process group
        first.wait()
        _wait_for(
            lambda: not _processes_mentioning(str(run_dir)),
            20,
            "the killed run's steps are still running",
        )

        rerun = subprocess.run(
            _run_local(inp, out, whisper_model, good.endpoint, env),
            env=env,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    finally:
        stalled.close()
        good.close()
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert list(system_tmp.iterdir()) == []  # no kfp-asr-local-*, tmp.*, kfp-workspace-*
    summaries = (out / "summaries.jsonl").read_text().splitlines()
    assert len(summaries) == 1 and '"status": "ok"' in summaries[0]
    # readable output: no executor-input dumps, one line for the file
    assert "executor_input" not in rerun.stdout and "Executing task" not in rerun.stdout
    lines = rerun.stdout.splitlines()
    [line] = [x for x in lines if x.startswith(CLIP.name) and "x real time" in x]
    assert "s audio" in line and line.endswith("ok")
    assert f"report: {out / 'report.html'}" in lines


def test_clean_stale_runs_removes_only_dead_runs_and_kills_their_leftovers(tmp_path: Path):
    dead, alive, starting, other = (
        tmp_path / f"{TMP_PREFIX}dead",
        tmp_path / f"{TMP_PREFIX}alive",
        tmp_path / f"{TMP_PREFIX}starting",
        tmp_path / "kfp-workspace-x",
    )
    for folder in (dead, alive, starting, other):
        (folder / "tmp").mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (dead / OWNER_FILE).write_text(f"{gone.stdout.strip()} 12345")
    (alive / OWNER_FILE).write_text(f"{os.getpid()} {process_start_time(os.getpid())}")
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", str(dead / "tmp")]
    )
    try:
        # the child names the folder only once it has exec'd Python (slow on a busy machine)
        cmdline = Path(f"/proc/{leftover.pid}/cmdline")
        deadline = time.monotonic() + 30
        while str(dead).encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert clean_stale_runs(tmp_path) == [dead]
        assert leftover.wait(timeout=30) == -9
    finally:
        leftover.kill()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (alive, starting, other)
    )
