"""One input of a shard: downloaded (S3) or opened (local), checked, decoded to samples."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from components.common import audio, storage
from components.common.errors import StorageError, UnsafeKeyError
from components.common.records import TranscriptRecord
from components.transcribe import channels

if TYPE_CHECKING:
    from components.transcribe.engine import TranscribeOptions


@dataclass
class LoadedAudio:
    """One input decoded to samples, and the seconds its download and decoding took."""

    source: str
    samples: np.ndarray
    load_s: float
    channels: dict[int, np.ndarray] | None = None  # one speaker each (channels.py)


def open_source(
    source: str, work_dir: str | os.PathLike, options: TranscribeOptions
) -> LoadedAudio | TranscriptRecord:
    """Download (S3) and decode one input; a problem gives a ``failed`` record instead.

    A downloaded copy is deleted as soon as its samples are in memory.
    """
    started = time.monotonic()

    def failed(error: str) -> TranscriptRecord:
        return TranscriptRecord.failed(
            source, error, model=options.model, processing_s=round(time.monotonic() - started, 3)
        )

    try:
        path = storage.download(source, work_dir)
    except FileNotFoundError as e:
        return failed(f"not found: {e}")
    except (StorageError, UnsafeKeyError) as e:
        return failed(f"download failed: {e}")
    try:
        samples = audio.load_audio(path)
        split = channels.distinct_channels(path) if options.speakers.split_channels else None
    except audio.AudioError as e:
        return failed(str(e))
    finally:
        if storage.is_remote(source):
            path.unlink(missing_ok=True)
    return LoadedAudio(source, samples, time.monotonic() - started, split)
