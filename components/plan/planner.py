"""Split a batch of audio files into shards balanced by audio duration.

Whisper's processing time grows with audio duration, so each file weighs its duration in
seconds. Files are placed longest first, each onto the shard with the least audio so far
(longest-processing-time-first, LPT). The slowest shard then finishes within
``longest file`` or ``total / shards + the (shards+1)-th longest file`` of the start,
whichever is larger; on sets of many short calls and a few long recordings that is within
a few per cent of the lower bound ``max(total / shards, longest)``.

Durations come from the container header (ffprobe, through a presigned URL for S3
objects). At most :attr:`PlanOptions.max_probes` files are probed (an evenly spaced sample
of a larger batch), so planning a bucket of many thousand objects takes seconds. A file
that is not or cannot be probed weighs its size converted to seconds with the median
bytes-per-second of the probed files (or :attr:`PlanOptions.fallback_bytes_per_s` when none
could be probed); the transcribe stage reports the file if it is broken.

What is audio is decided by content, not only by name: an object with one of
:data:`storage.AUDIO_EXTENSIONS` is audio (transcribe reports it if it is broken); any other
is audio when ffprobe finds an audio stream in it (``.amr`` voice notes, ``.dat`` exports).
Everything else under the input prefix is planned as ``ignore`` with its reason (not audio,
a reference transcript, a symlink to a folder, a broken symlink, ...): the manifest names
every object, nothing is dropped silently.

Incremental runs: with an output URI, inputs that the ledger there marks as finished at
their current ETag (:mod:`components.common.ledger`, one listing) are planned as ``skip``
and left out of the shards, unless ``reprocess`` is set; a changed object (new ETag) is
processed again.
"""

from __future__ import annotations

import heapq
import logging
import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from components.common import audio, ledger, storage
from components.common.errors import ConfigError, StorageError, UnsafeKeyError
from components.common.ledger import IGNORE, PROCESS, SKIP, Item
from components.common.storage import ObjectInfo

log = logging.getLogger(__name__)

#: ``reason`` of a manifest line skipped because the ledger marks the input as finished.
FINISHED = "finished earlier at this ETag (ledger)"


@dataclass(frozen=True)
class PlanOptions:
    """How to plan a batch."""

    num_shards: int = 4
    #: ffprobe calls in flight at once (each reads only the container header).
    probe_workers: int = 8
    #: Most files probed; a larger batch gets an evenly spaced sample probed.
    max_probes: int = 64
    #: Longest one ffprobe call may take.
    probe_timeout_s: float = 20.0
    #: Bytes per second of audio assumed when no file could be probed (16 kHz 16-bit mono WAV).
    fallback_bytes_per_s: float = 32_000.0
    #: Process every input again, whatever the ledger says.
    reprocess: bool = False
    #: Most objects without an audio extension that ffprobe looks into; the rest are skipped.
    max_content_probes: int = 10_000


@dataclass(frozen=True)
class PlannedFile:
    """One line of the plan manifest."""

    source: str
    name: str
    size: int
    etag: str
    duration_s: float | None
    weight_s: float
    shard: int | None
    action: str = PROCESS
    #: Why a ``skip`` or ``ignore`` line is not processed.
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """The shards (items per shard, heaviest file first) and every input file.

    There is always at least one shard, possibly empty, so a pipeline loop over the shards
    never runs zero times (:mod:`components.common.shards` writes them for the stages).
    """

    shards: list[list[Item]]
    files: list[PlannedFile]


def balance(weights: Sequence[float], num_shards: int) -> list[list[int]]:
    """Indices of ``weights`` per shard by LPT: ``min(num_shards, len(weights))`` shards,
    none empty.

    A file goes to the least-loaded shard; equal loads (files of weight 0 included) go to the
    shard with fewer files, then the lower index, so the result depends only on the input.
    """
    if num_shards < 1:
        raise ConfigError(f"num_shards must be at least 1, got {num_shards}")
    order = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
    shards: list[list[int]] = [[] for _ in range(min(num_shards, len(weights)))]
    heap = [(0.0, 0, s) for s in range(len(shards))]
    for i in order:
        load, count, s = heapq.heappop(heap)
        shards[s].append(i)
        heapq.heappush(heap, (load + weights[i], count + 1, s))
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


def probe_sample(count: int, max_probes: int) -> list[int]:
    """Indices of the files to probe: all of them, or ``max_probes`` evenly spaced ones."""
    if count <= max_probes:
        return list(range(count))
    if max_probes <= 0:
        return []
    if max_probes == 1:
        return [0]
    return sorted({round(i * (count - 1) / (max_probes - 1)) for i in range(max_probes)})


def plan_items(items: Sequence[Item], options: PlanOptions) -> Plan:
    """Probe (a sample of) the items' durations and balance the items onto shards."""
    sample = probe_sample(len(items), options.max_probes)

    def probe(index: int) -> float | None:  # unreadable: weighed by size; transcribe reports it
        found = probe_source(items[index].source, options.probe_timeout_s)
        return found.audio_s if found.audio_s is not None else found.duration_s

    durations: list[float | None] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=max(1, options.probe_workers)) as pool:
        for index, duration in zip(sample, pool.map(probe, sample), strict=True):
            durations[index] = duration
    weights = estimate_weights(durations, [it.size for it in items], options.fallback_bytes_per_s)
    shard_indices = balance(weights, options.num_shards) or [[]]
    shard_of = {i: s for s, shard in enumerate(shard_indices) for i in shard}
    files = [
        PlannedFile(
            it.source, it.name, it.size, it.etag, durations[i], round(weights[i], 3), shard_of[i]
        )
        for i, it in enumerate(items)
    ]
    return Plan(shards=[[items[i] for i in shard] for shard in shard_indices], files=files)


def probe_source(source: str, timeout_s: float) -> audio.Probe:
    """ffprobe's view of an input (through a presigned URL for S3 objects)."""
    try:
        url = storage.presigned_url(source)
    except (StorageError, UnsafeKeyError) as e:
        return audio.Probe(error=f"not readable: {e}")
    return audio.probe(url, timeout_s=timeout_s)


def not_audio_reason(found: audio.Probe) -> str | None:
    """Why a probed object is not audio, or ``None`` when it has an audio stream."""
    if found.audio_streams:
        return None
    if found.error:
        return f"not audio: ffprobe cannot read it ({found.error})"
    if found.other_streams:
        return "not audio: no audio stream (video or other streams only)"
    return "not audio: no audio stream"


def sort_inputs(
    objects: Sequence[ObjectInfo], input_uri: str, options: PlanOptions
) -> tuple[list[ObjectInfo], dict[str, str]]:
    """The objects that are audio (see the module docstring), in listing order, and the
    reason each other object is skipped, by URI."""
    named = [o for o in objects if storage.is_audio(o.uri)]
    stems = {o.uri.rpartition(".")[0]: o.uri for o in named}
    reasons: dict[str, str] = {}
    unknown = []
    for o in objects:
        if storage.is_audio(o.uri):
            continue
        stem, _, extension = o.uri.rpartition(".")
        if extension == "txt" and stem in stems:
            audio_name = ledger.relative_name(stems[stem], input_uri)
            reasons[o.uri] = f"reference transcript of {audio_name}"
        elif len(unknown) < options.max_content_probes:
            unknown.append(o)
        else:
            reasons[o.uri] = (
                f"not probed: more than {options.max_content_probes} files without an "
                "audio extension"
            )
    with ThreadPoolExecutor(max_workers=max(1, options.probe_workers)) as pool:
        probes = pool.map(lambda o: probe_source(o.uri, options.probe_timeout_s), unknown)
        for o, found in zip(unknown, probes, strict=True):
            reason = not_audio_reason(found)
            if reason:
                reasons[o.uri] = reason
    return [o for o in objects if o.uri not in reasons], reasons


def holds_audio(input_uri: str, options: PlanOptions) -> bool:
    """Whether anything under ``input_uri`` is audio; probes only until the first is found."""
    objects, _ = storage.list_input(input_uri)
    return any(storage.is_audio(o.uri) for o in objects) or any(
        probe_source(o.uri, options.probe_timeout_s).audio_streams for o in objects
    )


def to_items(objects: Sequence[ObjectInfo], input_uri: str) -> list[Item]:
    """The listed objects as items named relative to the input prefix."""
    return [Item(o.uri, ledger.relative_name(o.uri, input_uri), o.etag, o.size) for o in objects]


def plan(input_uri: str, options: PlanOptions, output_uri: str | None = None) -> Plan:
    """List everything under ``input_uri`` (S3 prefix or local folder) and plan its audio.

    With ``output_uri``, inputs its ledger marks as finished are planned as ``skip`` (see the
    module docstring); every object that is not audio is planned as ``ignore``, with its
    reason. Raises
    :class:`ConfigError` when the input holds no audio at all: a run over nothing is a
    configuration mistake (wrong prefix), not an empty success. An input whose audio is all
    finished is no error: the plan has one empty shard.
    """
    if output_uri:
        ledger.check_output_prefix(output_uri)
    objects, unreadable = storage.list_input(input_uri)
    found, reasons = sort_inputs(objects, input_uri, options)
    not_audio = [
        PlannedFile(o.uri, ledger.relative_name(o.uri, input_uri), o.size, o.etag, None, 0.0,
                    None, IGNORE, reasons[o.uri])
        for o in objects
        if o.uri in reasons
    ] + [
        PlannedFile(u.uri, ledger.relative_name(u.uri, input_uri), 0, "", None, 0.0, None, IGNORE,
                    u.reason)
        for u in unreadable
    ]  # fmt: skip
    for f in not_audio:
        log.info("plan: ignoring %s: %s", f.name, f.reason)
    if not found:
        example = f" ({len(not_audio)} skipped, e.g. {not_audio[0].name}: {not_audio[0].reason})"
        raise ConfigError(
            f"input_uri {input_uri} holds no audio files{example if not_audio else ''}"
        )
    items = to_items(found, input_uri)
    done = ledger.finished(output_uri) if output_uri and not options.reprocess else set()
    todo = [it for it in items if not ledger.is_finished(it, done)]
    result = plan_items(todo, options)
    skipped = [
        PlannedFile(it.source, it.name, it.size, it.etag, None, 0.0, None, SKIP, FINISHED)
        for it in items
        if ledger.is_finished(it, done)
    ]
    log.info(
        "plan: %d inputs, %d to process in %d shard(s), %d finished earlier (skipped), "
        "%d other objects (ignored)",
        len(items),
        len(todo),
        len(result.shards),
        len(skipped),
        len(not_audio),
    )
    files = sorted(result.files + skipped + not_audio, key=lambda f: f.source)
    return Plan(shards=result.shards, files=files)
