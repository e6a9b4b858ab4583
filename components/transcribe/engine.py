"""Transcribe a shard of audio files with OpenAI Whisper: the sequential reference path.

One model load per shard, then per file: download (S3) or open (local), decode through
ffmpeg, skip Whisper for silent audio, decode with Whisper (``model.transcribe``, beam 5
and the CLI's temperature fallback by default), drop no-speech and silent segments, and
build a :class:`TranscriptRecord`. Every input yields exactly one record, in input order;
a bad file becomes a ``failed`` record and the shard goes on.

The decoding step consumes and produces ``whisper.transcribe()``-shaped dicts
(``{"text", "segments", "language"}``), so the batched decoder of
:mod:`components.transcribe.batched` plugs in through ``TranscribeOptions.batch_size > 1``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from whisper.model import Whisper

from components.common import audio, ledger, storage
from components.common import redact as redaction
from components.common.errors import ConfigError, StorageError, UnsafeKeyError
from components.common.ledger import TRANSCRIPTS_DIR, Item
from components.common.records import FAILED, Segment, TranscriptRecord, write_jsonl
from components.common.whisper_settings import normalize_language
from components.transcribe import channels, speakers
from components.transcribe.speakers import SpeakerOptions
from components.transcribe.weights import default_cache_dir, load_model

log = logging.getLogger(__name__)

#: The whisper CLI's fallback: temperature 0, then +0.2 per failed decode up to 1.0.
DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Seconds added on both sides of a segment before its energy is checked.
SEGMENT_ENERGY_MARGIN_S = 0.5
#: The batched decoder gets this many times ``batch_size`` files at once, so it can refill a
#: finished file's row from the rest; their samples are all in memory meanwhile.
BATCH_GROUP_FACTOR = 2


@dataclass
class TranscribeOptions:
    """How to transcribe a shard.

    Attributes:
        model: a Whisper model name (``tiny.en`` ... ``large-v3``), a checkpoint file path,
            or an ``s3://`` URI of a checkpoint file.
        language: a language code or name; ``None``/``"auto"`` detects it per file.
        beam_size: beams at temperature 0 (``None``: greedy).
        best_of: candidates sampled at temperatures above 0.
        temperature: temperatures tried in turn when a decode fails the thresholds.
        fp16: half precision; ``None`` means on for CUDA, off on CPU.
        device: ``cuda``, ``cuda:1``, ``cpu``; ``None``/``"auto"`` picks CUDA when present.
        batch_size: files decoded together; 1 is the sequential reference path, more uses
            :mod:`components.transcribe.batched`; 0 picks the
            size from the device and its free memory (:func:`batched.auto_batch_size`).
        no_speech_threshold: a window whose no-speech probability is above this and whose
            average log probability is below ``logprob_threshold`` is silence.
        logprob_threshold: see ``no_speech_threshold``; also triggers temperature fallback.
        compression_ratio_threshold: a more compressible (repetitive) decode falls back.
        condition_on_previous_text: prompt each 30-s window with the previous text.
        word_timestamps: align words (cross-attention); refines segment boundaries and
            adds ``words`` to every segment (batched: :mod:`components.transcribe.timing`).
        silence_threshold_db: audio (and segments) whose 30-ms frames all stay below this
            level in dBFS, measured above 250 Hz (so mains hum counts as silence too), give
            no text; ``None`` turns it off.
        model_cache_dir: where fetched weights are kept (``$WHISPER_CACHE_DIR``).
        initial_prompt: domain terms or a sample sentence that prompt the first window, so
            Whisper spells them as given (``None``: no prompt).
        speakers: speaker labels (:class:`~components.transcribe.speakers.SpeakerOptions`).
    """

    model: str = "tiny.en"
    language: str | None = None
    beam_size: int | None = 5
    best_of: int | None = 5
    temperature: tuple[float, ...] = DEFAULT_TEMPERATURES
    fp16: bool | None = None
    device: str | None = None
    batch_size: int = 1
    no_speech_threshold: float | None = 0.6
    logprob_threshold: float | None = -1.0
    compression_ratio_threshold: float | None = 2.4
    condition_on_previous_text: bool = True
    word_timestamps: bool = False
    silence_threshold_db: float | None = -50.0
    model_cache_dir: str = field(default_factory=default_cache_dir)
    initial_prompt: str | None = None
    speakers: SpeakerOptions = field(default_factory=SpeakerOptions)


def resolve_device(device: str | None) -> str:
    """``device``, or ``cuda`` when CUDA is available and ``cpu`` otherwise."""
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_options(options: TranscribeOptions) -> TranscribeOptions:
    """Options with ``device``, ``fp16`` and ``language`` made concrete and values checked."""
    if options.batch_size < 0:
        raise ConfigError(f"batch_size must be 0 (auto) or more, got {options.batch_size}")
    if options.speakers.num_speakers < 0:
        raise ConfigError(
            f"num_speakers must be 0 (estimate) or more, got {options.speakers.num_speakers}"
        )
    if options.beam_size is not None and options.beam_size < 1:
        raise ConfigError(f"beam_size must be at least 1, got {options.beam_size}")
    device = resolve_device(options.device)
    fp16 = device.startswith("cuda") if options.fp16 is None else options.fp16
    return replace(options, device=device, fp16=fp16, language=normalize_language(options.language))


def decode_kwargs(options: TranscribeOptions) -> dict[str, Any]:
    """Keyword arguments of ``whisper.transcribe`` for resolved ``options``."""
    return {
        "language": options.language,
        "task": "transcribe",
        "beam_size": options.beam_size,
        "best_of": options.best_of,
        "temperature": tuple(options.temperature),
        "fp16": options.fp16,
        "no_speech_threshold": options.no_speech_threshold,
        "logprob_threshold": options.logprob_threshold,
        "compression_ratio_threshold": options.compression_ratio_threshold,
        "condition_on_previous_text": options.condition_on_previous_text,
        "initial_prompt": options.initial_prompt or None,
        "word_timestamps": options.word_timestamps,
        "verbose": None,
    }


def decode_one(model: Whisper, samples: np.ndarray, options: TranscribeOptions) -> dict[str, Any]:
    """Whisper's own long-form decoding of one file's samples (the reference path)."""
    return model.transcribe(samples, **decode_kwargs(options))


def decode_many(
    model: Whisper, batch: list[np.ndarray], options: TranscribeOptions
) -> list[dict[str, Any]]:
    """``whisper.transcribe()``-shaped results for ``batch``: sequential or batched."""
    if options.batch_size == 1 or len(batch) == 1:
        return [decode_one(model, samples, options) for samples in batch]
    from components.transcribe.batched import transcribe_batch

    kwargs = decode_kwargs(options)
    del kwargs["verbose"], kwargs["word_timestamps"]
    return transcribe_batch(model, batch, batch_size=options.batch_size, **kwargs)


def is_no_speech(segment: dict[str, Any], options: TranscribeOptions) -> bool:
    """Whisper's silence rule: high no-speech probability and a low average log probability."""
    threshold = options.no_speech_threshold
    if threshold is None or segment.get("no_speech_prob") is None:
        return False
    if segment["no_speech_prob"] <= threshold:
        return False
    logprob = options.logprob_threshold
    return not (logprob is not None and segment.get("avg_logprob", -np.inf) > logprob)


def is_silent_span(samples: np.ndarray, start: float, end: float, threshold_db: float) -> bool:
    """True when the audio of ``[start, end]`` (plus a margin) stays below ``threshold_db``."""
    lo = max(0, int((start - SEGMENT_ENERGY_MARGIN_S) * audio.SAMPLE_RATE))
    hi = int((end + SEGMENT_ENERGY_MARGIN_S) * audio.SAMPLE_RATE)
    return audio.is_silent(samples[lo:hi], threshold_db)


def speech_segments(
    result: dict[str, Any], samples: np.ndarray, options: TranscribeOptions
) -> list[dict[str, Any]]:
    """The segments of a result that hold speech: not empty, not no-speech, not silent."""
    kept = []
    for seg in result.get("segments", []):
        if not seg["text"].strip() or is_no_speech(seg, options):
            continue
        if options.silence_threshold_db is not None and is_silent_span(
            samples, seg["start"], seg["end"], options.silence_threshold_db
        ):
            continue
        kept.append(seg)
    return kept


def build_record(
    source: str,
    result: dict[str, Any],
    samples: np.ndarray,
    options: TranscribeOptions,
    processing_s: float,
) -> TranscriptRecord:
    """A ``transcripts.jsonl`` record from a ``whisper.transcribe()``-shaped result."""
    kept = speech_segments(result, samples, options)
    return TranscriptRecord(
        source=source,
        language=result.get("language") or options.language,
        duration_s=round(samples.size / audio.SAMPLE_RATE, 3),
        text="".join(seg["text"] for seg in kept).strip(),
        segments=[
            Segment(
                start=round(float(seg["start"]), 3),
                end=round(float(seg["end"]), 3),
                text=seg["text"].strip(),
                speaker=seg.get("speaker"),
                words=seg.get("words") if options.word_timestamps else None,
            )
            for seg in kept
        ],
        model=options.model,
        processing_s=round(processing_s, 3),
    )


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


def decode_records(
    model: Whisper, items: list[LoadedAudio], options: TranscribeOptions
) -> list[TranscriptRecord]:
    """Records for decoded inputs; a batch that raises is retried one file at a time."""
    started = time.monotonic()
    try:
        results = speakers.decode_attributed(model, items, options)
    except Exception as e:  # one file's decoding failure must not end the shard
        if len(items) > 1:
            log.warning(
                "batch of %d files failed (%s: %s); decoding them one by one",
                len(items),
                type(e).__name__,
                e,
            )
            return [rec for it in items for rec in decode_records(model, [it], options)]
        log.exception("transcribing %s failed", items[0].source)
        item = items[0]
        return [
            TranscriptRecord.failed(
                item.source,
                f"transcription failed: {type(e).__name__}: {e}",
                duration_s=round(item.samples.size / audio.SAMPLE_RATE, 3),
                model=options.model,
                processing_s=round(item.load_s + time.monotonic() - started, 3),
            )
        ]
    elapsed = time.monotonic() - started
    total = sum(it.samples.size for it in items)
    return [
        build_record(
            it.source, result, it.samples, options, it.load_s + elapsed * it.samples.size / total
        )
        for it, result in zip(items, results, strict=True)
    ]


def silent_record(
    item: LoadedAudio, options: TranscribeOptions, language: str | None
) -> TranscriptRecord:
    """The record of an input whose audio is all below the silence threshold: no text."""
    return build_record(
        item.source,
        {"text": "", "segments": [], "language": language},
        item.samples,
        options,
        item.load_s,
    )


def _log_progress(
    index: int, total: int, record: TranscriptRecord, audio_s: float, processing_s: float
) -> None:
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


def transcribe_shard(
    sources: list[str],
    options: TranscribeOptions,
    work_dir: str | os.PathLike,
    model: Whisper | None = None,
    on_record: Callable[[TranscriptRecord], None] | None = None,
) -> list[TranscriptRecord]:
    """One record per source, in order. ``model`` (already loaded) saves the load.

    ``on_record`` is called with every record as soon as it is made (in order), e.g. to
    store it before the next file is decoded.

    Raises :class:`ConfigError` for bad options (model, language, batch size) before any
    file is read; per-file problems become ``failed`` records.
    """
    options = resolve_options(options)
    if model is None:
        model = load_model(options.model, options.device, options.model_cache_dir)
    if options.batch_size == 0:
        from components.transcribe.batched import auto_batch_size

        beams = max(options.beam_size or 1, options.best_of or 1)
        options = replace(options, batch_size=auto_batch_size(model, beams))
        log.info(
            "batch_size 0: %d files decoded together on %s", options.batch_size, options.device
        )
    if not model.is_multilingual and options.language not in (None, "en"):
        raise ConfigError(
            f"language={options.language!r}, but whisper_model={options.model!r} "
            "is English-only: use 'en', 'auto' or a multilingual model"
        )
    default_language = options.language or (None if model.is_multilingual else "en")
    records: list[TranscriptRecord] = []
    audio_s = processing_s = 0.0
    group = 1 if options.batch_size == 1 else BATCH_GROUP_FACTOR * options.batch_size
    for first in range(0, len(sources), group):
        opened = [open_source(src, work_dir, options) for src in sources[first : first + group]]
        speech = [
            it
            for it in opened
            if isinstance(it, LoadedAudio)
            and not (
                options.silence_threshold_db is not None
                and audio.is_silent(it.samples, options.silence_threshold_db)
            )
        ]
        decoded = iter(decode_records(model, speech, options) if speech else [])
        for item in opened:
            if isinstance(item, TranscriptRecord):
                record = item
            elif any(item is it for it in speech):
                record = next(decoded)
            else:
                record = silent_record(item, options, default_language)
            records.append(record)
            if on_record is not None:
                on_record(record)
            processing_s += record.processing_s or 0.0
            if record.status != FAILED:
                audio_s += record.duration_s or 0.0
            _log_progress(len(records), len(sources), record, audio_s, processing_s)
    return records


def shard_metrics(records: list[TranscriptRecord]) -> dict[str, float]:
    """KFP metrics of a shard: files, failures, audio and processing seconds, real-time factor."""
    ok = [r for r in records if r.status != FAILED]
    audio_s = sum(r.duration_s or 0.0 for r in ok)
    processing_s = sum(r.processing_s or 0.0 for r in records)
    return {
        "files": len(records),
        "files_failed": len(records) - len(ok),
        "audio_seconds": round(audio_s, 3),
        "processing_seconds": round(processing_s, 3),
        "real_time_factor": round(audio_s / processing_s, 3) if processing_s else 0.0,
    }


def run_transcribe_step(
    shard: Sequence[Item],
    transcripts_path: str | os.PathLike,
    options: TranscribeOptions,
    output_uri: str | None = None,
    reprocess: bool = False,
    redact: str = redaction.NONE,
    raw_output_uri: str | None = None,
) -> dict[str, float]:
    """The ``transcribe`` component's work: transcribe a shard, write JSONL, return metrics.

    With ``output_uri``, an input whose ``ok`` transcript is stored there at its current
    ETag (:mod:`components.common.ledger`) is reused without being read (unless
    ``reprocess``: then every input is transcribed again with these options), and every new
    record is stored as soon as it is made, so a retried or repeated task redoes only the
    inputs without a stored result. The model is loaded only when some input needs it (an
    empty shard loads nothing). ``transcripts_path`` is written only at the end, whole.

    ``redact`` (:mod:`components.common.redact`): the records stored under ``output_uri`` are
    redacted unless it is ``none``; ``transcripts_path`` too with ``before_llm``. With
    ``raw_output_uri`` the unredacted records are stored there as well.
    """
    options = resolve_options(options)
    items = list(shard)
    stored = (
        ledger.load_results(output_uri, TRANSCRIPTS_DIR, items)
        if output_uri and not reprocess
        else [None] * len(items)
    )
    pending = {it.source: it for it, rec in zip(items, stored, strict=True) if rec is None}

    redacted: dict[str, dict] = {}  # source → the redacted record (made once)

    def keep(record: TranscriptRecord) -> None:
        item = pending[record.source]
        if raw_output_uri:
            ledger.store_result(raw_output_uri, TRANSCRIPTS_DIR, item, record.to_dict())
        if output_uri or redact == redaction.BEFORE_LLM:
            redacted[record.source] = redaction.redact_transcript(record.to_dict(), redact)
        if output_uri:
            ledger.store_result(output_uri, TRANSCRIPTS_DIR, item, redacted[record.source])

    new: list[TranscriptRecord] = []
    load_s = 0.0
    if pending:
        started = time.monotonic()
        model = load_model(options.model, options.device, options.model_cache_dir)
        load_s = time.monotonic() - started
        with tempfile.TemporaryDirectory(prefix="transcribe-") as work_dir:
            new = transcribe_shard(list(pending), options, work_dir, model=model, on_record=keep)
    fresh = iter(new)
    records = [
        next(fresh).to_dict() if rec is None else {k: v for k, v in rec.items() if k != "etag"}
        for rec in stored
    ]
    if redact == redaction.BEFORE_LLM:
        records = [redacted.get(r["source"]) or r for r in records]
    write_jsonl(transcripts_path, records)
    metrics = shard_metrics(new)
    metrics["files"] = len(items)
    metrics["files_reused"] = len(items) - len(new)
    metrics["model_load_seconds"] = round(load_s, 3)
    log.info("shard done: %s", metrics)
    return metrics
