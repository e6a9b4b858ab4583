"""Split a batch of audio files into shards balanced by audio duration.

Whisper's processing time grows with audio duration, so each file weighs its duration in
seconds. Files are placed longest first, each onto the shard with the least audio so far
(longest-processing-time-first, LPT). The slowest shard then finishes within
``longest file`` or ``total / shards + the (shards+1)-th longest file`` of the start,
whichever is larger; on sets of many short calls and a few long recordings that is within
a few per cent of the lower bound ``max(total / shards, longest)``.

Durations come from the container header (ffprobe, through a presigned URL for S3
objects). A file that cannot be probed weighs its size converted to seconds with the
median bytes-per-second of the probed files (or :attr:`PlanOptions.fallback_bytes_per_s`
when none could be probed); the transcribe stage reports the file if it is broken.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from components.common import storage
from components.common.audio import probe_duration
from components.common.errors import ConfigError
from components.common.storage import ObjectInfo


@dataclass(frozen=True)
class PlanOptions:
    """How to plan a batch."""

    num_shards: int = 4
    #: ffprobe calls in flight at once (each reads only the container header).
    probe_workers: int = 8
    #: Bytes per second of audio assumed when no file could be probed (16 kHz 16-bit mono WAV).
    fallback_bytes_per_s: float = 32_000.0


@dataclass(frozen=True)
class PlannedFile:
    """One line of the plan manifest."""

    source: str
    size: int
    etag: str
    duration_s: float | None
    weight_s: float
    shard: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """The shards (source URIs per shard, heaviest file first) and every planned file."""

    shards: list[list[str]]
    files: list[PlannedFile]


def balance(weights: Sequence[float], num_shards: int) -> list[list[int]]:
    """Indices of ``weights`` per shard by LPT; empty shards are left out.

    Ties are broken by index, so the result depends only on the input.
    """
    if num_shards < 1:
        raise ConfigError(f"num_shards must be at least 1, got {num_shards}")
    order = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
    shards: list[list[int]] = [[] for _ in range(min(num_shards, len(weights)))]
    heap = [(0.0, s) for s in range(len(shards))]
    for i in order:
        load, s = heapq.heappop(heap)
        shards[s].append(i)
        heapq.heappush(heap, (load + weights[i], s))
    return shards


def makespan(weights: Sequence[float], shards: Sequence[Sequence[int]]) -> float:
    """The load of the heaviest shard."""
    return max((sum(weights[i] for i in shard) for shard in shards), default=0.0)


def lower_bound(weights: Sequence[float], num_shards: int) -> float:
    """No split of ``weights`` onto ``num_shards`` shards has a smaller makespan."""
    return max(sum(weights) / num_shards, max(weights, default=0.0))


def estimate_weights(
    durations: Sequence[float | None], sizes: Sequence[int], fallback_bytes_per_s: float
) -> list[float]:
    """Durations where known, else sizes turned into seconds at the batch's median byte rate."""
    rates = [size / d for d, size in zip(durations, sizes, strict=True) if d and size > 0]
    bytes_per_s = statistics.median(rates) if rates else fallback_bytes_per_s
    return [d if d else size / bytes_per_s for d, size in zip(durations, sizes, strict=True)]


def _probe(obj: ObjectInfo) -> float | None:
    return probe_duration(storage.presigned_url(obj.uri))


def plan_objects(objects: Sequence[ObjectInfo], options: PlanOptions) -> Plan:
    """Probe every object's duration and balance the objects onto shards."""
    with ThreadPoolExecutor(max_workers=max(1, options.probe_workers)) as pool:
        durations = list(pool.map(_probe, objects))
    weights = estimate_weights(durations, [o.size for o in objects], options.fallback_bytes_per_s)
    shard_indices = balance(weights, options.num_shards)
    shard_of = {i: s for s, shard in enumerate(shard_indices) for i in shard}
    files = [
        PlannedFile(o.uri, o.size, o.etag, durations[i], round(weights[i], 3), shard_of[i])
        for i, o in enumerate(objects)
    ]
    shards = [[objects[i].uri for i in shard] for shard in shard_indices]
    return Plan(shards=shards, files=files)


def plan(input_uri: str, options: PlanOptions) -> Plan:
    """List the audio under ``input_uri`` (S3 prefix or local folder) and plan it.

    Raises :class:`ConfigError` when the input holds no audio: a run over nothing is a
    configuration mistake (wrong prefix), not an empty success.
    """
    objects = storage.list_audio(input_uri)
    if not objects:
        raise ConfigError(f"input_uri {input_uri} holds no audio files")
    return plan_objects(objects, options)
