"""Run one ``kfp-asr run-local`` step so that it ends with the run (standard library only).

    python -m pipelines.step_guard PARENT_PID -- COMMAND...

Starts ``COMMAND`` (the step's ``sh -ec ... kfp.dsl.executor_main ...``) in its own process
group, waits for it and exits with its status. Every :data:`POLL_S` it checks that
``PARENT_PID`` (the ``run-local`` process) is still its parent; once it is not (``run-local``
was killed, even with ``kill -9``), it kills the whole group (the shell, the step's Python,
its ffmpeg decoders), so nothing of the killed run writes into the output afterwards.
SIGINT, SIGTERM and SIGHUP are passed on to the group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

#: Seconds between two checks of the parent.
POLL_S = 0.2
#: Exit status when the parent died and the step was killed (128 + SIGKILL, as a shell says).
KILLED = 128 + signal.SIGKILL


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def guard(parent: int, command: list[str]) -> int:
    """Run ``command`` in a new process group; kill the group when ``parent`` is gone."""
    step = subprocess.Popen(command, start_new_session=True)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: _kill_group(step.pid, number))
    while True:
        try:
            return step.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                _kill_group(step.pid, signal.SIGKILL)
                step.wait()
                return KILLED


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m pipelines.step_guard PARENT_PID -- COMMAND...", file=sys.stderr)
        return 2
    return guard(int(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
