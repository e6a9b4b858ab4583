"""The temporary folder of one ``kfp-asr run-local`` run, and the clean-up after killed runs.

A run keeps everything temporary in one ``kfp-asr-local-*`` folder of the system temp folder
(kfp's pipeline root and workspace, the steps' ``TMPDIR``) and removes it when it ends. The
folder's ``owner`` file names the run's process (PID and start time, so a reused PID is not
taken for it). A run that was killed cannot remove its folder: :func:`clean_stale_runs`, which
every run calls first, removes each folder whose owner is gone, after killing any process
left from it (a process whose command line names the folder).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: Name prefix of a run's folder in the system temp folder.
TMP_PREFIX = "kfp-asr-local-"
#: File in that folder naming its owner: ``PID START_TIME`` (start time as in /proc).
OWNER_FILE = "owner"
#: A folder without an owner file (a run that is starting, or one of a version that wrote
#: none) is left alone until it is this old and no process names it.
_UNOWNED_GRACE_S = 24 * 3600.0


def process_start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), ``None`` if it is gone.

    Without ``/proc`` (macOS) a live process gets ``"0"``: PID reuse then goes unnoticed.
    """
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "0"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(folder: Path) -> bool:
    """Whether the run that made ``folder`` is still running (unknown owner: a grace time)."""
    try:
        pid, started = (folder / OWNER_FILE).read_text().split()
    except (OSError, ValueError):
        try:
            young = time.time() - folder.stat().st_mtime < _UNOWNED_GRACE_S
        except OSError:
            return False
        return young or bool(_processes_mentioning(str(folder)))
    return process_start_time(int(pid)) == started


def _processes_mentioning(text: str) -> list[int]:
    """PIDs (other than this one) whose command line contains ``text``."""
    needle, found = text.encode(), []
    for entry in Path("/proc").glob("[0-9]*"):
        if int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def clean_stale_runs(temp_root: Path | None = None) -> list[Path]:
    """Remove the folders of killed runs, killing their leftover step processes first.

    Returns the folders removed. Only ``kfp-asr-local-*`` folders whose owner is gone are
    touched; a leftover process is one whose command line names such a folder.
    """
    root = Path(temp_root or tempfile.gettempdir())
    removed = []
    for folder in sorted(root.glob(f"{TMP_PREFIX}*")):
        if not folder.is_dir() or _owner_alive(folder):
            continue
        leftovers = _processes_mentioning(str(folder))
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while any(Path(f"/proc/{pid}").exists() for pid in leftovers):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


@contextlib.contextmanager
def run_folder() -> Iterator[Path]:
    """This run's ``kfp-asr-local-*`` folder, owned by this process, removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
    try:
        (folder / OWNER_FILE).write_text(f"{os.getpid()} {process_start_time(os.getpid())}")
        (folder / "tmp").mkdir()
        (folder / "workspace").mkdir()
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
