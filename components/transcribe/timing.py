"""Word timestamps for batched results, computed as openai-whisper computes them.

openai-whisper's ``transcribe(word_timestamps=True)`` aligns each decoded 30-s window on its
own (``whisper.timing.add_word_timestamps``): it runs the model once more over the window's
audio and text, takes the cross-attention weights of the checkpoint's alignment heads,
normalizes and median-filters them, finds the monotonic token-to-frame path by dynamic time
warping, and cuts it at word boundaries. Here the same is done for the windows of many
files at once: the encoder and the teacher-forced decoder run on a batch of windows (text
right-padded; the causal mask keeps pads from touching real tokens, and each window's
weights are cut to its own tokens and frames before they are normalized), then each window's
path and words are found exactly as in ``whisper.timing``, whose median filter, DTW, word
splitting and punctuation merging are used as they are.

The windows come from the results of :func:`components.transcribe.batched.transcribe_batch`:
their segments carry the ``seek`` (frame offset) and ``tokens`` of the window that made them.
The segment-boundary rules of ``add_word_timestamps`` (long first/last words cut to twice
the median word, segment start/end moved to the words) are applied in the same order, with
``last_speech_timestamp`` carried from window to window of a file.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from whisper.audio import (
    HOP_LENGTH,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    TOKENS_PER_SECOND,
    log_mel_spectrogram,
    pad_or_trim,
)
from whisper.model import Whisper, disable_sdpa
from whisper.timing import WordTiming, dtw, median_filter, merge_punctuations
from whisper.tokenizer import Tokenizer, get_tokenizer
from whisper.utils import get_end

#: openai-whisper's defaults for ``transcribe(word_timestamps=True)``.
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
#: Windows aligned in one forward pass (each holds an encoder output and its text).
DEFAULT_BATCH_SIZE = 16
MEDFILT_WIDTH = 7


@dataclass
class _Window:
    row: int
    seek: int
    mel: torch.Tensor  # (n_mels, N_FRAMES)
    num_frames: int
    segments: list[dict[str, Any]]
    text_tokens: list[int]


def _windows(
    model: Whisper, rows: Sequence[np.ndarray], results: Sequence[dict[str, Any]], eot: int
) -> list[_Window]:
    windows = []
    for r, (samples, result) in enumerate(zip(rows, results, strict=True)):
        if not result.get("segments"):
            continue
        mel = log_mel_spectrogram(
            torch.from_numpy(np.asarray(samples, np.float32)), model.dims.n_mels, padding=N_SAMPLES
        )
        content_frames = mel.shape[-1] - N_FRAMES
        for seek, group in itertools.groupby(result["segments"], key=lambda s: s["seek"]):
            segments = list(group)
            size = min(N_FRAMES, content_frames - seek)
            tokens = [t for s in segments for t in s["tokens"] if t < eot]
            window = pad_or_trim(mel[:, seek : seek + size], N_FRAMES)
            windows.append(_Window(r, seek, window, size, segments, tokens))
    return windows


def _forward(
    model: Whisper, tokenizer: Tokenizer, windows: Sequence[_Window]
) -> list[tuple[torch.Tensor, list[float]]]:
    """Alignment-head weights (heads, tokens, frames) and text-token probabilities."""
    prefix = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    sequences = [[*prefix, *w.text_tokens, tokenizer.eot] for w in windows]
    length = max(len(s) for s in sequences)
    tokens = torch.full((len(windows), length), tokenizer.eot, dtype=torch.long)
    for i, seq in enumerate(sequences):
        tokens[i, : len(seq)] = torch.tensor(seq)
    dtype = next(model.parameters()).dtype
    mels = torch.stack([w.mel for w in windows]).to(model.device, dtype)
    qks: list[torch.Tensor | None] = [None] * model.dims.n_text_layer
    hooks = [
        block.cross_attn.register_forward_hook(
            lambda _, ins, outs, index=i: qks.__setitem__(index, outs[-1])
        )
        for i, block in enumerate(model.decoder.blocks)
    ]
    try:
        with torch.no_grad(), disable_sdpa():
            logits = model.decoder(tokens.to(model.device), model.encoder(mels))
    finally:
        for hook in hooks:
            hook.remove()
    heads = model.alignment_heads.indices().T.tolist()
    out = []
    for i, (w, seq) in enumerate(zip(windows, sequences, strict=True)):
        weights = torch.stack([qks[layer][i, head] for layer, head in heads])
        weights = weights[:, : len(seq), : w.num_frames // 2].float()
        text = w.text_tokens
        probs = logits[i, len(tokenizer.sot_sequence) : len(tokenizer.sot_sequence) + len(text)]
        probs = probs[:, : tokenizer.eot].float().softmax(dim=-1)
        out.append((weights, probs[np.arange(len(text)), text].tolist()))
    return out


def _alignment(
    tokenizer: Tokenizer, text_tokens: list[int], weights: torch.Tensor, probs: list[float]
) -> list[WordTiming]:
    """``whisper.timing.find_alignment`` from its attention weights on."""
    weights = weights.softmax(dim=-1)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = median_filter((weights - mean) / std, MEDFILT_WIDTH)
    matrix = weights.mean(axis=0)[len(tokenizer.sot_sequence) : -1]
    text_indices, time_indices = dtw(-matrix)
    words, word_tokens = tokenizer.split_to_word_tokens([*text_tokens, tokenizer.eot])
    if len(word_tokens) <= 1:
        return []
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    starts, ends = jump_times[boundaries[:-1]], jump_times[boundaries[1:]]
    word_probs = [np.mean(probs[i:j]) for i, j in itertools.pairwise(boundaries)]
    return [
        WordTiming(word, toks, start, end, p)
        for word, toks, start, end, p in zip(
            words, word_tokens, starts, ends, word_probs, strict=False
        )
    ]


def _attach(
    segments: list[dict[str, Any]],
    alignment: list[WordTiming],
    eot: int,
    last_speech_timestamp: float,
    prepend: str,
    append: str,
) -> None:
    """``whisper.timing.add_word_timestamps`` after its ``find_alignment`` call."""
    durations = np.array([t.end - t.start for t in alignment])
    durations = durations[durations.nonzero()]
    median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
    longest = median * 2
    if len(durations):
        marks = ".。!！?？"
        for i in range(1, len(alignment)):
            if alignment[i].end - alignment[i].start > longest:
                if alignment[i].word in marks:
                    alignment[i].end = alignment[i].start + longest
                elif alignment[i - 1].word in marks:
                    alignment[i].start = alignment[i].end - longest
    merge_punctuations(alignment, prepend, append)
    offset = segments[0]["seek"] * HOP_LENGTH / SAMPLE_RATE
    index = 0
    for segment in segments:
        text_tokens = [t for t in segment["tokens"] if t < eot]
        saved, words = 0, []
        while index < len(alignment) and saved < len(text_tokens):
            timing = alignment[index]
            if timing.word:
                words.append(
                    {
                        "word": timing.word,
                        "start": round(offset + timing.start, 2),
                        "end": round(offset + timing.end, 2),
                        "probability": timing.probability,
                    }
                )
            saved += len(timing.tokens)
            index += 1
        if words:
            if words[0]["end"] - last_speech_timestamp > median * 4 and (
                words[0]["end"] - words[0]["start"] > longest
                or (len(words) > 1 and words[1]["end"] - words[0]["start"] > longest * 2)
            ):
                if len(words) > 1 and words[1]["end"] - words[1]["start"] > longest:
                    boundary = max(words[1]["end"] / 2, words[1]["end"] - longest)
                    words[0]["end"] = words[1]["start"] = boundary
                words[0]["start"] = max(0, words[0]["end"] - longest)
            if segment["start"] < words[0]["end"] and segment["start"] - 0.5 > words[0]["start"]:
                words[0]["start"] = max(0, min(words[0]["end"] - median, segment["start"]))
            else:
                segment["start"] = words[0]["start"]
            if segment["end"] > words[-1]["start"] and segment["end"] + 0.5 < words[-1]["end"]:
                words[-1]["end"] = max(words[-1]["start"] + median, segment["end"])
            else:
                segment["end"] = words[-1]["end"]
            last_speech_timestamp = segment["end"]
        segment["words"] = words


def add_word_timestamps(
    model: Whisper,
    rows: Sequence[np.ndarray],
    results: Sequence[dict[str, Any]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    prepend_punctuations: str = PREPEND_PUNCTUATIONS,
    append_punctuations: str = APPEND_PUNCTUATIONS,
) -> None:
    """Add ``words`` [{word, start, end, probability}] to every segment of ``results``.

    Segment ``start``/``end`` move to their words as in ``transcribe(word_timestamps=True)``.

    Args:
        model: the Whisper model that decoded the results (its alignment heads are used).
        rows: each result's audio samples (16 kHz mono float32).
        results: ``transcribe()``-shaped results whose segments carry ``seek`` and
            ``tokens``; changed in place.
        batch_size: 30-s windows aligned in one forward pass.
        prepend_punctuations: merged with the next word (openai-whisper's default).
        append_punctuations: merged with the previous word (openai-whisper's default).
    """
    tokenizers = [
        get_tokenizer(
            model.is_multilingual,
            num_languages=model.num_languages,
            language=result.get("language") or "en",
            task="transcribe",
        )
        for result in results
    ]
    eot = tokenizers[0].eot if tokenizers else 0
    windows = _windows(model, rows, results, eot)
    last_speech = [0.0] * len(rows)
    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        aligned = [w for w in chunk if w.text_tokens]
        weights = dict(
            zip(map(id, aligned), _forward_grouped(model, tokenizers, aligned), strict=False)
        )
        for w in chunk:
            tokenizer = tokenizers[w.row]
            alignment = (
                _alignment(tokenizer, w.text_tokens, *weights[id(w)]) if w.text_tokens else []
            )
            _attach(
                w.segments,
                alignment,
                eot,
                last_speech[w.row],
                prepend_punctuations,
                append_punctuations,
            )
            end = get_end(w.segments)
            if end is not None:
                last_speech[w.row] = end


def _forward_grouped(
    model: Whisper, tokenizers: Sequence[Tokenizer], windows: Sequence[_Window]
) -> list[tuple[torch.Tensor, list[float]]]:
    """:func:`_forward` over windows whose files may differ in language."""
    if not windows:
        return []
    out: dict[int, tuple[torch.Tensor, list[float]]] = {}
    by_sot: dict[tuple[int, ...], list[_Window]] = {}
    for w in windows:
        by_sot.setdefault(tuple(tokenizers[w.row].sot_sequence), []).append(w)
    for group in by_sot.values():
        for w, value in zip(group, _forward(model, tokenizers[group[0].row], group), strict=True):
            out[id(w)] = value
    return [out[id(w)] for w in windows]
