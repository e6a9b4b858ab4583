"""Progress lines in the step's log: per file, and inside long files at least every 30 s."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from components.common.records import FAILED, TranscriptRecord

log = logging.getLogger(__name__)

#: Seconds between two progress lines while files are being decoded.
PROGRESS_INTERVAL_S = 30.0


class DecodeProgress:
    """Logs how far the decoding of a group of files has come, at most every ``interval_s``.

    ``update(windows, seconds)`` is called after every decoder round (windows or chunks
    decoded, audio seconds the files advanced by); a line names the windows done, the audio
    seconds done of the group's total and the real-time factor so far. ``seconds=None``
    (``model.transcribe()`` does not tell how far a window moved) leaves the seconds out.
    """

    def __init__(
        self,
        label: str,
        total_s: float,
        interval_s: float = PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label = label
        self.total_s = total_s
        self.interval_s = interval_s
        self.clock = clock
        self.started = self.last = clock()
        self.windows = 0
        self.seconds: float | None = 0.0

    def update(self, windows: int, seconds: float | None) -> None:
        """Count a round; log a line when ``interval_s`` has passed since the last one."""
        self.windows += windows
        self.seconds = None if seconds is None or self.seconds is None else self.seconds + seconds
        now = self.clock()
        if now - self.last < self.interval_s:
            return
        self.last = now
        elapsed = now - self.started
        if self.seconds is None:
            log.info(
                "%s: %d windows decoded in %.0f s (%.0f s audio in all)",
                self.label,
                self.windows,
                elapsed,
                self.total_s,
            )
            return
        log.info(
            "%s: %d windows decoded, %.0f of %.0f s audio (%.0f %%), %.1fx real time",
            self.label,
            self.windows,
            self.seconds,
            self.total_s,
            100 * self.seconds / self.total_s if self.total_s else 100.0,
            self.seconds / elapsed if elapsed > 0 else 0.0,
        )


def log_record(
    index: int, total: int, record: TranscriptRecord, audio_s: float, processing_s: float
) -> None:
    """One line per finished file: its real-time factor and the shard's so far."""
    name = record.source.rsplit("/", 1)[-1]
    if record.status == FAILED:
        log.warning("[%d/%d] %s: failed: %s", index, total, name, record.error)
        return
    rtf = (record.duration_s or 0) / record.processing_s if record.processing_s else 0.0
    running = audio_s / processing_s if processing_s else 0.0
    log.info(
        "[%d/%d] %s: %.1f s audio in %.2f s (%.1fx real time; shard so far %.1fx)",
        index,
        total,
        name,
        record.duration_s or 0,
        record.processing_s or 0,
        rtf,
        running,
    )
