"""From samples to ``whisper.transcribe()``-shaped results: the sequential, batched and
chunked ways, and records built as each file finishes.

- ``batch_size == 1``, ``long_form="sequential"``: ``model.transcribe()`` per file (the
  reference path: beam 5 and the CLI's temperature fallback by default).
- ``batch_size > 1``: :func:`batched.transcribe_batch`, the current window of many files per
  decoder round.
- ``long_form="chunked"``: the speech that :mod:`vad` finds, cut into <= 30-s chunks that are
  decoded as independent rows (:mod:`chunking`), with either of the two decoders above.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from whisper.model import Whisper

from components.common import audio
from components.common.records import TranscriptRecord
from components.transcribe import chunking, vad
from components.transcribe.inputs import LoadedAudio
from components.transcribe.progress import DecodeProgress
from components.transcribe.results import build_record

if TYPE_CHECKING:
    from components.transcribe.engine import TranscribeOptions

log = logging.getLogger(__name__)

#: ``on_done(index, result)``: called as soon as one input's result is complete.
OnDone = Callable[[int, dict[str, Any]], None]


class _RecordError(Exception):
    """An exception of the caller's ``on_record`` (e.g. storing failed): not a decoding error."""


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


@contextmanager
def _windows_counted(model: Whisper, progress: DecodeProgress | None) -> Iterator[None]:
    """Count the windows ``model.transcribe()`` decodes (it calls ``model.decode`` per try)."""
    if progress is None:
        yield
        return
    original = model.decode

    def decode(mel: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        result = original(mel, *args, **kwargs)
        progress.update(1 if mel.ndim == 2 else mel.shape[0], None)
        return result

    model.decode = decode  # type: ignore[method-assign]
    try:
        yield
    finally:
        del model.decode


def _sequential(
    model: Whisper,
    batch: list[np.ndarray],
    options: TranscribeOptions,
    prompts: list[str | None] | None,
    on_done: OnDone | None,
    progress: DecodeProgress | None,
) -> list[dict[str, Any]]:
    """``model.transcribe()`` per waveform (each with its prompt, if given)."""
    results = []
    with _windows_counted(model, progress):
        for i, samples in enumerate(batch):
            kwargs = decode_kwargs(options)
            if prompts is not None:
                kwargs["initial_prompt"] = prompts[i]
            results.append(model.transcribe(samples, **kwargs))
            if on_done is not None:
                on_done(i, results[-1])
    return results


def _batched(
    model: Whisper,
    batch: list[np.ndarray],
    options: TranscribeOptions,
    prompts: list[str | None] | None,
    on_done: OnDone | None,
    progress: DecodeProgress | None,
) -> list[dict[str, Any]]:
    """:func:`batched.transcribe_batch` over ``batch``, ``options.batch_size`` rows a round."""
    from components.transcribe.batched import transcribe_batch

    kwargs = decode_kwargs(options)
    del kwargs["verbose"], kwargs["word_timestamps"]
    return transcribe_batch(
        model,
        batch,
        batch_size=options.batch_size,
        initial_prompts=prompts,
        on_done=on_done,
        on_round=progress.update if progress is not None else None,
        **kwargs,
    )


def decode_many(
    model: Whisper,
    batch: list[np.ndarray],
    options: TranscribeOptions,
    vad_model: torch.jit.ScriptModule | None = None,
    on_done: OnDone | None = None,
    progress: DecodeProgress | None = None,
) -> list[dict[str, Any]]:
    """``whisper.transcribe()``-shaped results for ``batch``, in order.

    ``vad_model`` (:func:`vad.load_vad`, loaded here when not given) serves
    ``long_form="chunked"``; ``on_done``
    is called as each waveform's result is complete, ``progress`` after each decoder round.
    """
    decoder = _sequential if options.batch_size == 1 else _batched
    if options.long_form != "chunked":
        return decoder(model, batch, options, None, on_done, progress)
    regions = vad.speech_regions(vad_model or vad.load_vad(model.device), batch)

    def decode_chunks(
        chunks: list[np.ndarray], prompts: list[str | None], chunk_done: OnDone | None
    ) -> list[dict[str, Any]]:
        return decoder(model, chunks, options, prompts, chunk_done, progress)

    return chunking.transcribe_chunked(
        batch,
        regions,
        decode_chunks,
        language=options.language or "en",
        initial_prompt=options.initial_prompt,
        prompt_previous=options.prompt_previous_chunk,
        on_done=on_done,
    )


def decode_records(
    model: Whisper,
    items: list[LoadedAudio],
    options: TranscribeOptions,
    on_record: Callable[[int, TranscriptRecord], None],
    vad_model: torch.jit.ScriptModule | None = None,
) -> None:
    """Make the record of every decoded input and hand it to ``on_record(index, record)`` as
    soon as that input is finished (so a batch stores each file when it is done, not when the
    whole batch is). A batch that raises is retried one unfinished file at a time; a file that
    fails alone gets a ``failed`` record.

    A record's ``processing_s`` is its load time plus the decoding time since the previous
    record of the batch was made, so the records of a batch add up to its wall time.
    """
    started = last = time.monotonic()
    finished: set[int] = set()
    total_s = sum(it.samples.size for it in items) / audio.SAMPLE_RATE
    label = items[0].source.rsplit("/", 1)[-1] if len(items) == 1 else f"{len(items)} files"
    progress = DecodeProgress(label, total_s, options.progress_interval_s)

    def done(i: int, result: dict[str, Any]) -> None:
        nonlocal last
        now = time.monotonic()
        item = items[i]
        finished.add(i)
        record = build_record(item.source, result, item.samples, options, item.load_s + now - last)
        last = now
        try:
            on_record(i, record)
        except Exception as e:
            raise _RecordError() from e

    attributed = (
        options.word_timestamps or options.speakers.diarize or any(it.channels for it in items)
    )
    try:
        if attributed:  # speaker labels and word timing need all rows of the batch first
            from components.transcribe import speakers

            for i, result in enumerate(speakers.decode_attributed(model, items, options)):
                done(i, result)
        else:
            decode_many(model, [it.samples for it in items], options, vad_model, done, progress)
    except _RecordError as e:
        raise e.__cause__ from None
    except Exception as e:  # one file's decoding failure must not end the shard
        left = [i for i in range(len(items)) if i not in finished]
        if len(items) > 1:
            log.warning(
                "batch of %d files failed (%s: %s); decoding the %d unfinished one by one",
                len(items),
                type(e).__name__,
                e,
                len(left),
            )
            for i in left:
                decode_records(
                    model, [items[i]], options, lambda _, rec, i=i: on_record(i, rec), vad_model
                )
            return
        log.exception("transcribing %s failed", items[0].source)
        item = items[0]
        on_record(
            0,
            TranscriptRecord.failed(
                item.source,
                f"transcription failed: {type(e).__name__}: {e}",
                duration_s=round(item.samples.size / audio.SAMPLE_RATE, 3),
                model=options.model,
                processing_s=round(item.load_s + time.monotonic() - started, 3),
            ),
        )
