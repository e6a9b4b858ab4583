"""Transcribe a shard of audio files with OpenAI Whisper: options and the shard loop.

One model load per shard, then per file: download (S3) or open (local) and decode through
ffmpeg (:mod:`inputs`), skip Whisper for silent audio, decode with Whisper (:mod:`decode`:
``model.transcribe`` per file, the batched decoder of :mod:`batched`, or chunks that
:mod:`vad` and :mod:`chunking` cut), drop no-speech and silent segments (:mod:`silence`), and
build a :class:`TranscriptRecord` (:mod:`results`). Every input yields exactly one record,
returned in input order and handed on as soon as it is made; a bad file becomes a ``failed``
record and the shard goes on. :func:`run_transcribe_step` adds the stored results
(:mod:`components.common.ledger`); the weights are loaded by :mod:`weights`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from whisper.model import Whisper

from components.common import audio, ledger
from components.common import redact as redaction
from components.common.errors import ConfigError
from components.common.ledger import TRANSCRIPTS_DIR, Item
from components.common.records import FAILED, TranscriptRecord, write_jsonl
from components.common.whisper_settings import normalize_language
from components.transcribe import vad
from components.transcribe.decode import decode_many, decode_records
from components.transcribe.inputs import LoadedAudio, open_source
from components.transcribe.progress import PROGRESS_INTERVAL_S, log_record
from components.transcribe.results import shard_metrics, silent_record
from components.transcribe.silence import speech_segments
from components.transcribe.speakers import SpeakerOptions
from components.transcribe.weights import default_cache_dir, load_model

log = logging.getLogger(__name__)

#: The whisper CLI's fallback: temperature 0, then +0.2 per failed decode up to 1.0.
DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: How a file longer than one 30-s window is decoded (``TranscribeOptions.long_form``).
LONG_FORM_MODES = ("sequential", "chunked")
#: Used by :mod:`components.transcribe.speakers` through this module.
__all__ = ["LoadedAudio", "TranscribeOptions", "decode_many", "speech_segments"]
#: The batched decoder gets this many times ``batch_size`` files at once, so it can refill a
#: finished file's row from the rest; their samples are all in memory meanwhile.
BATCH_GROUP_FACTOR = 2
#: ...but no more audio than this (seconds) in one group: float32 samples at 16 kHz are
#: 230 MB an hour, so 128 files of 15 min (batch 64) would need 7.4 GB, against the
#: transcribe task's 8-GiB memory limit (pipelines/profiles.yaml). 3 h is 0.7 GB (a stereo
#: call's channel tracks count too); a group holds at least one file, however long.
MAX_GROUP_AUDIO_S = 3 * 3600.0


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
        initial_prompt: domain terms or a sample sentence that prompt the first window (in
            chunked mode: every chunk), so Whisper spells them as given (``None``: no prompt).
        long_form: ``"sequential"``: a file's 30-s windows one after another, each prompted
            with the previous text (``transcribe()``'s algorithm); ``"chunked"``: speech
            regions found by Silero VAD, cut into <= 30-s chunks at pauses and decoded as
            independent rows, so one long file fills a batch (:mod:`chunking`).
        prompt_previous_chunk: in chunked mode, prompt each chunk with the previous chunk's
            text (the chunks of a file are then decoded one after another).
        progress_interval_s: seconds between progress lines inside a long decode.
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
    long_form: str = "sequential"
    prompt_previous_chunk: bool = False
    progress_interval_s: float = PROGRESS_INTERVAL_S
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
    if options.long_form not in LONG_FORM_MODES:
        raise ConfigError(
            f"long_form must be one of {', '.join(LONG_FORM_MODES)}, got {options.long_form!r}"
        )
    device = resolve_device(options.device)
    fp16 = device.startswith("cuda") if options.fp16 is None else options.fp16
    return replace(options, device=device, fp16=fp16, language=normalize_language(options.language))


def transcribe_shard(
    sources: list[str],
    options: TranscribeOptions,
    work_dir: str | os.PathLike,
    model: Whisper | None = None,
    on_record: Callable[[TranscriptRecord], None] | None = None,
) -> list[TranscriptRecord]:
    """One record per source, in order. ``model`` (already loaded) saves the load.

    ``on_record`` is called with every record as soon as it is made, e.g. to store it: an
    input that cannot be read or is silent at once, a decoded one as soon as its own decoding
    is finished (with ``batch_size > 1`` in the order the files finish, not input order).

    Raises :class:`ConfigError` for bad options (model, language, batch size) before any
    file is read; per-file problems become ``failed`` records.
    """
    options = resolve_options(options)
    if model is None:
        model = load_model(
            options.model, options.device, options.model_cache_dir, fp16=bool(options.fp16)
        )
    if options.batch_size == 0:
        from components.transcribe.batched import auto_batch_size

        beams = max(options.beam_size or 1, options.best_of or 1)
        chunked = options.long_form == "chunked"
        options = replace(options, batch_size=auto_batch_size(model, beams, chunked))
        log.info(
            "batch_size 0: %d %s decoded together on %s",
            options.batch_size,
            "chunks" if chunked else "files",
            options.device,
        )
    if not model.is_multilingual and options.language not in (None, "en"):
        raise ConfigError(
            f"language={options.language!r}, but whisper_model={options.model!r} "
            "is English-only: use 'en', 'auto' or a multilingual model"
        )
    vad_model = vad.load_vad(model.device) if options.long_form == "chunked" else None
    default_language = options.language or (None if model.is_multilingual else "en")
    records: list[TranscriptRecord | None] = [None] * len(sources)
    made = 0
    audio_s = processing_s = 0.0

    def emit(index: int, record: TranscriptRecord) -> None:
        nonlocal made, audio_s, processing_s
        records[index] = record
        made += 1
        if on_record is not None:
            on_record(record)
        processing_s += record.processing_s or 0.0
        if record.status != FAILED:
            audio_s += record.duration_s or 0.0
        log_record(made, len(sources), record, audio_s, processing_s)

    group = 1 if options.batch_size == 1 else BATCH_GROUP_FACTOR * options.batch_size
    index = 0
    while index < len(sources):
        speech: list[tuple[int, LoadedAudio]] = []
        held_s = 0.0
        while index < len(sources) and len(speech) < group and held_s < MAX_GROUP_AUDIO_S:
            item = open_source(sources[index], work_dir, options)
            if isinstance(item, TranscriptRecord):
                emit(index, item)
            elif options.silence_threshold_db is not None and audio.is_silent(
                item.samples, options.silence_threshold_db
            ):
                emit(index, silent_record(item, options, default_language))
            else:
                speech.append((index, item))
                arrays = [item.samples, *(item.channels or {}).values()]
                held_s += sum(a.size for a in arrays) / audio.SAMPLE_RATE
            index += 1
        if speech:
            decode_records(
                model,
                [item for _, item in speech],
                options,
                lambda i, record, speech=speech: emit(speech[i][0], record),
                vad_model,
            )
    return records  # type: ignore[return-value]


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
        model = load_model(
            options.model, options.device, options.model_cache_dir, fp16=bool(options.fp16)
        )
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
