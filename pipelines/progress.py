"""What ``kfp-asr run-local`` shows while it runs: one line per finished file, a bar per stage.

The steps' output (their ``logging`` lines through kfp's executor) and kfp.local's own log
come here line by line. Without ``verbose``:

- kfp's bookkeeping is hidden: the executor-input JSON dump of every step, "Looking for
  component", "Executing task", the task outputs, and the steps' other INFO lines;
- warnings, errors, tracebacks and anything a step prints outside ``logging`` stay visible,
  as do kfp.local's lines about failed tasks and retries;
- every file whose summary is done gets one line: name, audio seconds, times real time,
  status (the transcribe step's ``[i/n] name: ... s audio in ... s (...x real time ...)``
  and the summarize step's ``[i/n] name: summary ok in ... s`` lines are read for it);
- on a terminal each stage (plan, transcribe, summarize, report) has a ``tqdm`` bar whose
  text shows the stage's latest hidden line (e.g. progress inside a long file); elsewhere
  (a pipe, CI) each stage's start is one plain line.

With ``verbose`` every line is shown as it comes, and the per-file lines too.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, TextIO

from tqdm import tqdm

#: The stages in pipeline order; a step's KFP function name is its stage.
STAGES = ("plan", "transcribe", "summarize", "report")

_EXECUTOR = re.compile(r"^\[KFP Executor [^\]]*? (?P<level>[A-Z]+)\]: (?P<msg>.*)$")
_KFP_LOCAL = re.compile(r"^\d\d:\d\d:\d\d\.\d+ - (?P<level>[A-Z]+) - (?P<msg>.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PLAN = re.compile(r"^plan: (?P<inputs>\d+) inputs, (?P<todo>\d+) to process")
_TRANSCRIBED = re.compile(
    r"^\[\d+/\d+\] (?P<name>.+?): (?P<audio>[\d.]+) s audio in [\d.]+ s "
    r"\((?P<rtf>[\d.]+)x real time"
)
_TRANSCRIBE_FAILED = re.compile(r"^\[\d+/\d+\] (?P<name>.+?): failed: (?P<error>.*)$")
_SUMMARIZED = re.compile(r"^\[\d+/\d+\] (?P<name>.+?): summary (?P<status>\w+) in [\d.]+ s$")
#: kfp.local lines worth showing without ``verbose`` (failed tasks, retries, the run's end).
_KFP_NEWS = re.compile(r"fail|retry|error", re.IGNORECASE)
#: kfp's executor bookkeeping lines (hidden); the JSON dump follows "Got executor_input:".
_EXECUTOR_NOISE = (
    "Looking for component",
    "Loading KFP component",
    "Wrote executor output file",
    "Did not write output file",
)
_JSON_DUMP = "Got executor_input:"
_VISIBLE_LEVELS = {"WARNING", "ERROR", "CRITICAL"}


@dataclass
class _Transcribed:
    audio_s: float | None
    rtf: float | None
    error: str | None


class _StepStream:
    """Line state of one step process: whether a hidden JSON dump is being read."""

    def __init__(self) -> None:
        self.in_dump = False


class Progress:
    """Turns step and kfp.local output into readable progress on ``out``.

    ``tty`` (default: ``out.isatty()``) draws bars; thread-safe, as kfp.local runs tasks on
    worker threads.
    """

    def __init__(self, out: TextIO, verbose: bool = False, tty: bool | None = None) -> None:
        self.out = out
        self.verbose = verbose
        self.bars_on = (out.isatty() if tty is None else tty) and not verbose
        self._lock = threading.RLock()
        self._bars: dict[str, tqdm] = {}
        self._started: set[str] = set()
        self._todo: int | None = None
        self._transcribed: dict[str, deque[_Transcribed]] = defaultdict(deque)
        self._kfp_visible = False
        self._kfp_buffer = ""

    # ----------------------------------------------------------------- output
    def _print(self, text: str) -> None:
        if self._bars:
            tqdm.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        """Finish the bars (a run that ended keeps them as they stand)."""
        with self._lock:
            if self._kfp_buffer:
                self.kfp_line(self._kfp_buffer)
                self._kfp_buffer = ""
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()

    # ------------------------------------------------------------------ steps
    def step_started(self, stage: str) -> _StepStream:
        """A step process of ``stage`` starts; returns its line state for :meth:`step_line`."""
        with self._lock:
            if stage not in self._started:
                self._started.add(stage)
                if self.bars_on:
                    self._bar(stage)
                else:
                    self._print(f"{stage}: started")
        return _StepStream()

    def step_ended(self, stage: str, returncode: int) -> None:
        """A step process of ``stage`` ended with ``returncode``."""
        with self._lock:
            if returncode != 0:
                self._print(f"{stage}: step exited with status {returncode}")
            elif stage in ("plan", "report") and stage in self._bars:
                bar = self._bars[stage]
                bar.update(bar.total - bar.n)

    def step_line(self, stage: str, stream: _StepStream, line: str) -> None:
        """One line that a step of ``stage`` wrote (stdout and stderr together)."""
        line = line.rstrip("\n")
        with self._lock:
            if self.verbose:
                self._print(line)
            if stream.in_dump:
                stream.in_dump = line != "}"
                return
            match = _EXECUTOR.match(line)
            if not match:  # a traceback, a warning printed by a library, ffmpeg, ...
                if not self.verbose and line.strip():
                    self._print(line)
                return
            level, msg = match["level"], match["msg"]
            if msg.startswith(_JSON_DUMP):
                stream.in_dump = True
                return
            if msg.startswith(_EXECUTOR_NOISE):
                return
            self._read(stage, msg)
            if not self.verbose:
                if level in _VISIBLE_LEVELS:
                    self._print(f"{stage}: {level.lower()}: {msg}")
                elif stage in self._bars:
                    self._bars[stage].set_postfix_str(msg[:40], refresh=True)

    def _read(self, stage: str, msg: str) -> None:
        """Take the figures a progress line carries."""
        if stage == "plan" and (m := _PLAN.match(msg)):
            self._todo = int(m["todo"])
            skipped = int(m["inputs"]) - self._todo
            for name in ("transcribe", "summarize"):
                if name in self._bars:
                    self._bars[name].reset(total=self._todo)
            if skipped:
                self._print(f"plan: {skipped} of {m['inputs']} inputs finished earlier: skipped")
        elif stage == "transcribe" and (m := _TRANSCRIBED.match(msg)):
            self._transcribed[m["name"]].append(
                _Transcribed(float(m["audio"]), float(m["rtf"]), None)
            )
            self._advance(stage)
        elif stage == "transcribe" and (m := _TRANSCRIBE_FAILED.match(msg)):
            self._transcribed[m["name"]].append(_Transcribed(None, None, m["error"]))
            self._advance(stage)
        elif stage == "summarize" and (m := _SUMMARIZED.match(msg)):
            self._advance(stage)
            self._file_done(m["name"], m["status"])

    def _advance(self, stage: str) -> None:
        if stage in self._bars:
            self._bars[stage].update(1)

    def _file_done(self, name: str, summary_status: str) -> None:
        """The one line of a file whose summary is done."""
        queue = self._transcribed.get(name)
        t = queue.popleft() if queue else _Transcribed(None, None, None)
        if t.error is not None:
            status = "failed (transcribe)"
        elif summary_status != "ok":
            status = "failed (summarize)"
        else:
            status = "ok"
        audio = f"{t.audio_s:8.1f} s audio" if t.audio_s is not None else f"{'-':>8} s audio"
        rtf = f"{t.rtf:7.1f}x real time" if t.rtf is not None else f"{'-':>7}x real time"
        self._print(f"{name:<40} {audio} {rtf}  {status}")

    def _bar(self, stage: str) -> tqdm:
        total = 1 if stage in ("plan", "report") else self._todo
        self._bars[stage] = tqdm(
            total=total,
            desc=f"{stage:<10}",
            unit="file" if total != 1 else "step",
            file=self.out,
            position=STAGES.index(stage) if stage in STAGES else None,
            leave=True,
            # a terminal without a size (some ptys say 0 x 0) would hide every bar
            ncols=shutil.get_terminal_size((100, 24)).columns,
            nrows=shutil.get_terminal_size((100, 24)).lines,
        )
        return self._bars[stage]

    # -------------------------------------------------------------- kfp.local
    def kfp_line(self, line: str) -> None:
        """One line of kfp.local's own log (``HH:MM:SS.mmm - LEVEL - message``)."""
        line = _ANSI.sub("", line.rstrip("\n"))
        with self._lock:
            if self.verbose:
                self._print(line)
                return
            match = _KFP_LOCAL.match(line)
            if match:  # a new message; continuation lines share its visibility
                self._kfp_visible = match["level"] in _VISIBLE_LEVELS or bool(
                    _KFP_NEWS.search(match["msg"]) and "SUCCESS" not in match["msg"]
                )
            if self._kfp_visible and line.strip():
                self._print(line)

    def stdout_proxy(self) -> _KfpStdout:
        """A file object for ``contextlib.redirect_stdout`` that feeds :meth:`kfp_line`."""
        return _KfpStdout(self)


class _KfpStdout:
    """Line-buffers what kfp.local prints or logs to ``sys.stdout``."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def write(self, text: str) -> int:
        p = self._progress
        with p._lock:
            p._kfp_buffer += text
            *lines, p._kfp_buffer = p._kfp_buffer.split("\n")
            for line in lines:
                p.kfp_line(line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._progress.out, name)


def results_table(
    transcripts: list[dict[str, Any]], summaries: list[dict[str, Any]], width: int = 60
) -> str:
    """A short table of a run's files: name, audio seconds, status, summary beginning.

    A failed file shows its reason where the summary would be.
    """
    by_source = {s.get("source"): s for s in summaries}
    rows = [("file", "audio s", "status", "summary")]
    for t in transcripts:
        s = by_source.get(t.get("source"), {})
        name = str(t.get("source", "")).rsplit("/", 1)[-1]
        ok = t.get("status") == "ok" and s.get("status") == "ok"
        if t.get("status") != "ok":
            text = f"transcribe: {t.get('error')}"
        elif s.get("status") != "ok":
            text = f"summarize: {s.get('error')}"
        else:
            text = s.get("summary") or "(silence: no text)"
        text = " ".join(text.split())
        text = text if len(text) <= width else text[: width - 1] + "…"
        audio = t.get("duration_s")
        rows.append((name, f"{audio:.1f}" if audio else "-", "ok" if ok else "failed", text))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows
    )
