"""Batched Whisper decoding across files, inside openai-whisper's own decoding API.

``whisper.transcribe()`` decodes one 30-s window of one file at a time. Here the current
window of up to ``batch_size`` files is decoded in one ``DecodingTask`` run; each file then
advances by its own timestamps exactly as ``transcribe()`` does, and a finished file's place
is refilled from the queue, so short and long files mix without idling.

Three things make a batch of different files decode like the sequential path:

- Per-row prompts. With ``condition_on_previous_text`` every file has its own prompt, so the
  rows' initial tokens differ in length. They are left-padded; a key mask hides the pads and
  each row's positions start at its own first real token (``_PaddedInference``).
- Beam search over several files. openai-whisper 20250625's ``DecodingTask.run`` repeats the
  tokens by the beam size but not the audio features ("The size of tensor a (80) must match
  the size of tensor b (16)"). Here the beams of one file share its audio features: the
  cross-attention folds the beams into the query length, which is exact and keeps one copy
  of each file's cross-attention keys and values instead of one per beam.
- No host round-trip per beam. The stock ``BeamSearchDecoder.update`` and
  ``ApplyTimestampRules.apply`` call ``.item()``/``.tolist()`` per row and candidate: one GPU
  sync each, thousands per step at batch 64 x beam 5. :mod:`step_rules` does the same
  arithmetic with one transfer per step.

One more makes it fast on a GPU: a small model's decoder step is about a hundred tiny kernel
launches, so the step runs on a preallocated key/value cache with fixed shapes and is
captured once per round as a CUDA graph (``step_mode="graph"``, the CUDA default): tiny.en
went from 95x to 403x real time on an H100 with the same text (bench/RESULTS.md).

Temperature fallback is per window: the windows that fail the thresholds are decoded again,
together, at the next temperature. The per-file result has the form of ``transcribe()``'s.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from whisper.audio import (
    HOP_LENGTH,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    log_mel_spectrogram,
    pad_or_trim,
)
from whisper.decoding import (
    ApplyTimestampRules,
    BeamSearchDecoder,
    DecodingOptions,
    DecodingResult,
    DecodingTask,
)
from whisper.model import ModelDimensions, Whisper
from whisper.tokenizer import Tokenizer, get_tokenizer
from whisper.utils import compression_ratio

from components.transcribe.step_rules import BatchBeamSearchDecoder, BatchTimestampRules

log = logging.getLogger(__name__)

# Default batch size per device kind; figures in bench/RESULTS.md, "Transcription
# throughput". cpu 4: measured on a 2-core machine (batched 1.2-1.4x the transcribe() loop at
# equal WER). cuda 64: on an H200 with tiny.en, beam 5, 64 files, batch 16/32/64 ran at
# 36x/62x/183x real time: a small model's decoder step costs about the same at any batch
# size (launch-bound), so fewer, fuller rounds win. :func:`auto_batch_size` caps it by memory.
DEFAULT_BATCH_SIZE: dict[str, int] = {"cpu": 4, "cuda": 64}
#: The same for chunked long-form decoding, whose rows are <= 30-s chunks, many per file. cuda
#: 256: on an H200 with tiny.en, 4 files x 15 min (168 chunks) and 8 x 5 min, chunked at 256
#: ran 2.0x and 2.5x as fast as at 64 with the same WER, peaking at 4.0 GiB (bench/RESULTS.md,
#: "Long recordings"); the memory cap of :func:`auto_batch_size` still applies.
DEFAULT_CHUNK_BATCH_SIZE: dict[str, int] = {"cpu": 4, "cuda": 256}
#: Bytes of GPU memory per batch row and per element of the model's per-row state (encoder
#: output plus one self-attention key/value cache per beam, n_text_ctx long). Calibrated on
#: the GPU runs: tiny.en at 64 rows peaked at 1.53 GiB with a growing cache and 1.68 GiB with
#: the preallocated one (2.7 and 2.8 B/element), large-v3 at 16 rows at 10.6 GiB (2.1
#: B/element, growing cache); 3 keeps a margin.
BYTES_PER_STATE_ELEMENT = 3
#: Share of the free GPU memory the batch may fill (the rest: allocator slack, other work).
MEMORY_SHARE = 0.7

_PAD_TOKEN = 0  # any text token other than end-of-text; pads are masked out
#: How the decoder's one-token steps run; see ``_PaddedInference``.
STEP_MODES = ("eager", "static", "graph")
#: Devices on which a CUDA-graph capture failed in this process: they use static steps.
_GRAPH_FAILED: set[str] = set()
#: One capture stream per device: the allocator caches blocks per stream, so a new stream
#: per round would strand memory.
_CAPTURE_STREAMS: dict[str, torch.cuda.Stream] = {}


def default_batch_size(device: torch.device | str, chunked: bool = False) -> int:
    """The measured default batch size for a device (``"cpu"``, ``"cuda"``, ``"cuda:1"``...);
    with ``chunked``, that of chunked decoding (:data:`DEFAULT_CHUNK_BATCH_SIZE`)."""
    table = DEFAULT_CHUNK_BATCH_SIZE if chunked else DEFAULT_BATCH_SIZE
    return table.get(torch.device(device).type, 1)


def default_step_mode(device: torch.device | str) -> str:
    """``"graph"`` on a CUDA device (CUDA-graph decoder steps), else ``"eager"``."""
    return "graph" if torch.device(device).type == "cuda" else "eager"


def row_bytes(dims: ModelDimensions, beams: int) -> int:
    """Estimated GPU memory one batch row needs for a model of ``dims`` with ``beams`` beams."""
    encoder = dims.n_audio_ctx * dims.n_audio_state * dims.n_audio_layer
    decoder = 2 * beams * dims.n_text_ctx * dims.n_text_state * dims.n_text_layer
    return BYTES_PER_STATE_ELEMENT * (encoder + decoder)


def batch_size_for(
    dims: ModelDimensions,
    beams: int,
    free_bytes: float,
    device: str = "cuda",
    limit: int | None = None,
) -> int:
    """The batch for a model of ``dims`` with ``free_bytes`` of free GPU memory: ``limit``
    (default: the device default), capped at :data:`MEMORY_SHARE` of the free memory over
    :func:`row_bytes`."""
    limit = limit or default_batch_size(device)
    return max(1, min(limit, int(MEMORY_SHARE * free_bytes // row_bytes(dims, beams))))


def auto_batch_size(model: Whisper, beams: int = 5, chunked: bool = False) -> int:
    """The batch size for ``model`` on its device: the device default (of chunked decoding,
    :data:`DEFAULT_CHUNK_BATCH_SIZE`, with ``chunked``), capped by memory.

    On a GPU the cap is the free memory (a MIG slice reports only its own) times
    :data:`MEMORY_SHARE` over :func:`row_bytes`; a 1g.5gb slice with ``medium`` gets about 5
    rows, a 1g.10gb slice with ``tiny.en`` the full default.
    """
    device = model.device
    limit = default_batch_size(device, chunked)
    if device.type != "cuda":
        return max(1, limit)
    free, _ = torch.cuda.mem_get_info(device)
    return batch_size_for(model.dims, max(beams, 1), free, str(device), limit=limit)


@dataclass(frozen=True)
class BatchOptions:
    """The ``whisper.transcribe()`` keyword arguments that ``transcribe_batch`` honours.

    Same names and defaults as ``transcribe()`` and ``DecodingOptions``. Not supported:
    word timestamps, clip timestamps, ``carry_initial_prompt``, ``prefix``.
    """

    language: str | None = None
    task: str = "transcribe"
    temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    condition_on_previous_text: bool = True
    initial_prompt: str | None = None
    beam_size: int | None = None
    best_of: int | None = None
    patience: float | None = None
    length_penalty: float | None = None
    sample_len: int | None = None
    suppress_tokens: str | Iterable[int] | None = "-1"
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: float | None = 1.0
    fp16: bool = True

    def temperatures(self) -> tuple[float, ...]:
        """The fallback ladder: ``temperature`` as a tuple."""
        t = self.temperature
        return (float(t),) if isinstance(t, int | float) else tuple(t)

    def decoding_options(self, temperature: float, language: str) -> DecodingOptions:
        """``DecodingOptions`` for one pass, as ``transcribe()``'s ``decode_with_fallback``."""
        return DecodingOptions(
            task=self.task,
            language=language,
            temperature=temperature,
            sample_len=self.sample_len,
            best_of=self.best_of if temperature > 0 else None,
            beam_size=None if temperature > 0 else self.beam_size,
            patience=None if temperature > 0 else self.patience,
            length_penalty=self.length_penalty,
            suppress_tokens=self.suppress_tokens,
            suppress_blank=self.suppress_blank,
            without_timestamps=self.without_timestamps,
            max_initial_timestamp=self.max_initial_timestamp,
            fp16=self.fp16,
        )

    def needs_fallback(self, result: DecodingResult) -> bool:
        """``transcribe()``'s rule: too repetitive or too improbable, unless it is silence."""
        failed = (
            self.compression_ratio_threshold is not None
            and result.compression_ratio > self.compression_ratio_threshold
        ) or (self.logprob_threshold is not None and result.avg_logprob < self.logprob_threshold)
        silent = (
            self.no_speech_threshold is not None
            and result.no_speech_prob > self.no_speech_threshold
            and self.logprob_threshold is not None
            and result.avg_logprob < self.logprob_threshold
        )
        return failed and not silent


class _PaddedInference:
    """The text decoder over left-padded rows, with a preallocated key/value cache.

    Rows are ``n_audio * n_group`` (beams or best-of samples of one file are adjacent).
    Row ``r`` starts with ``pad[r]`` padding tokens: its keys there are masked and its
    positions count from its first real token, so each row sees what it would see alone.

    ``step_mode`` says how the one-token steps after the prompt run:

    - ``"eager"``: attention over the keys written so far (the reference; CPU default).
    - ``"static"``: attention over the whole cache with the unwritten keys masked, so every
      step has the same shapes and reads its position from a device tensor.
    - ``"graph"``: the static step captured once per round as a CUDA graph and replayed: one
      launch per token instead of about a hundred, which is what a small model's decoder
      step costs on a GPU (bench/RESULTS.md, "Transcription throughput").
    """

    def __init__(
        self,
        model: Whisper,
        audio_features: Tensor,
        n_group: int,
        pad: Tensor,
        max_len: int,
        step_mode: str = "eager",
    ):
        if step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
        self.decoder = model.decoder
        self.n_group = n_group
        self.pad = pad
        self.step_mode = step_mode
        self.dtype = audio_features.dtype
        device, rows, width = pad.device, pad.shape[0], model.dims.n_text_state
        self.cache = [
            torch.zeros(2, rows, max_len, width, dtype=self.dtype, device=device)
            for _ in self.decoder.blocks
        ]
        self.length = 0  # cached positions
        self.cross_kv = [
            (block.cross_attn.key(audio_features), block.cross_attn.value(audio_features))
            for block in self.decoder.blocks
        ]
        self.keys = torch.arange(max_len, device=device)
        self.real = self.keys[None, :] >= pad[:, None]  # (rows, keys): not a pad
        self._token = torch.zeros(rows, 1, dtype=torch.long, device=device)
        self._pos = torch.zeros(1, dtype=torch.long, device=device)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_logits: Tensor | None = None

    def logits(self, tokens: Tensor, sot_index: int) -> tuple[Tensor, Tensor | None]:
        """Next-token logits at the last position, and at ``sot_index`` on the first call."""
        if self.length == 0:
            n = tokens.shape[1]
            x = self._forward(tokens, torch.arange(n, device=tokens.device), n)
            self.length = n
            return self._project(x[:, -1]), self._project(x[:, sot_index])
        self._token.copy_(tokens[:, -1:])
        self._pos.fill_(self.length)
        if self.step_mode == "eager":
            logits = self._step(self.length + 1)
        elif self.step_mode == "static":
            logits = self._step(None)
        elif self._graph is not None or self._capture():
            self._graph.replay()
            logits = self._graph_logits
        else:
            logits = self._step(None)
        self.length += 1
        return logits, None

    def rearrange_kv_cache(self, source_indices: list[int], index: Tensor | None = None) -> None:
        """Keep the cache rows of the beams that survived (called by beam search);
        ``index``: the same rows on the device, where the caller has them."""
        if source_indices != list(range(len(source_indices))):
            if index is None:
                index = torch.tensor(source_indices, device=self.pad.device)
            n = self.length
            for kv in self.cache:  # in place: a captured graph holds these buffers
                kv[:, :, :n] = kv[:, index, :n]

    def _step(self, n_keys: int | None) -> Tensor:
        """One token per row at position ``_pos``; attention over ``n_keys`` keys or all."""
        return self._project(self._forward(self._token, self._pos, n_keys)[:, -1])

    def _capture(self) -> bool:
        """Record the static step as a CUDA graph, after one warm-up run on the same stream.

        ``capture_begin``/``capture_end`` rather than ``torch.cuda.graph``, whose entry
        synchronizes, runs the garbage collector and empties the allocator's cache: once per
        round that costs more than the capture itself. Returns False, having logged why,
        where the capture fails; the caller then runs the same step without a graph.
        """
        device = self.pad.device
        if str(device) in _GRAPH_FAILED:  # failed in an earlier round: not again, not logged
            self.step_mode = "static"
            return False
        if str(device) not in _CAPTURE_STREAMS:
            _CAPTURE_STREAMS[str(device)] = torch.cuda.Stream(device)
        stream = _CAPTURE_STREAMS[str(device)]
        stream.wait_stream(torch.cuda.current_stream(device))
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.stream(stream):
                self._step(None)  # writes this step's keys; the replay writes the same again
                graph.capture_begin()
                try:
                    self._graph_logits = self._step(None)
                finally:
                    graph.capture_end()
        except RuntimeError as exc:
            log.warning("CUDA graph capture failed on %s, decoding without: %s", device, exc)
            _GRAPH_FAILED.add(str(device))
            self.step_mode = "static"
            return False
        finally:
            torch.cuda.current_stream(device).wait_stream(stream)
        self._graph = graph
        return True

    def _forward(self, tokens: Tensor, pos: Tensor, n_keys: int | None) -> Tensor:
        """Decoder blocks over ``tokens`` at positions ``pos``; writes their keys/values."""
        positions = (pos[None, :] - self.pad[:, None]).clamp(min=0)
        x = self.decoder.token_embedding(tokens) + self.decoder.positional_embedding[positions]
        x = x.to(self.dtype)
        keys = self.keys[:n_keys]
        # causal, real keys only; a pad query sees itself so that no softmax row is empty
        allowed = (keys[None, :] <= pos[:, None])[None] & (
            self.real[:, None, :n_keys] | (keys[None, :] == pos[:, None])[None]
        )
        mask = allowed[:, None]  # (rows, 1 head, queries, keys)
        for block, kv, (ck, cv) in zip(self.decoder.blocks, self.cache, self.cross_kv, strict=True):
            h = block.attn_ln(x)
            kv[0].index_copy_(1, pos, block.attn.key(h))
            kv[1].index_copy_(1, pos, block.attn.value(h))
            k, v = kv[0][:, :n_keys], kv[1][:, :n_keys]
            x = x + block.attn.out(_attention(block.attn.query(h), k, v, block.attn.n_head, mask))
            h = block.cross_attn_ln(x)
            q = block.cross_attn.query(h)
            rows, n_q, width = q.shape
            q = q.reshape(rows // self.n_group, self.n_group * n_q, width)  # fold beams
            a = _attention(q, ck, cv, block.cross_attn.n_head, None)
            x = x + block.cross_attn.out(a.reshape(rows, n_q, width))
            x = x + block.mlp(block.mlp_ln(x))
        return self.decoder.ln(x)

    def _project(self, x: Tensor) -> Tensor:
        """Logits (float32) of hidden states ``x``: the tied token-embedding projection."""
        return (x @ self.decoder.token_embedding.weight.to(x.dtype).T).float()


def _attention(q: Tensor, k: Tensor, v: Tensor, n_head: int, mask: Tensor | None) -> Tensor:
    """Multi-head scaled dot-product attention, as whisper's ``qkv_attention`` (SDPA path)."""
    b, n, width = q.shape
    q = q.view(b, n, n_head, -1).transpose(1, 2)
    k = k.view(b, k.shape[1], n_head, -1).transpose(1, 2)
    v = v.view(b, v.shape[1], n_head, -1).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(b, n, width)


class _BatchDecodingTask(DecodingTask):
    """A ``DecodingTask`` whose rows are different files, each with its own initial tokens.

    ``prompt_length`` is the longest row's prompt part (``sot_prev`` and prompt tokens);
    every row is left-padded to it, so the start-of-transcript token and the first sampled
    token sit at the same column in all rows.
    """

    def __init__(
        self, model: Whisper, options: DecodingOptions, prompt_length: int, step_mode: str
    ):
        self.prompt_length = prompt_length
        self.step_mode = step_mode
        super().__init__(model, options)
        if isinstance(self.decoder, BeamSearchDecoder):
            self.decoder = BatchBeamSearchDecoder(
                options.beam_size, self.tokenizer.eot, self.inference, options.patience
            )
        self.logit_filters = [
            BatchTimestampRules(f.tokenizer, f.sample_begin, f.max_initial_timestamp_index)
            if isinstance(f, ApplyTimestampRules)
            else f
            for f in self.logit_filters
        ]

    def _get_initial_tokens(self) -> tuple[int, ...]:
        return (_PAD_TOKEN,) * self.prompt_length + tuple(self.sot_sequence)

    def _main_loop(self, audio_features: Tensor, tokens: Tensor):
        n_rows = tokens.shape[0]
        sum_logprobs = torch.zeros(n_rows, device=audio_features.device)
        no_speech_probs = [np.nan] * n_rows
        for _ in range(self.sample_len):
            logits, at_sot = self.inference.logits(tokens, self.sot_index)
            if at_sot is not None and self.tokenizer.no_speech is not None:
                no_speech_probs = at_sot.softmax(dim=-1)[:, self.tokenizer.no_speech].tolist()
            for logit_filter in self.logit_filters:
                logit_filter.apply(logits, tokens)
            tokens, completed = self.decoder.update(tokens, logits, sum_logprobs)
            if completed or tokens.shape[-1] > self.n_ctx:
                break
        return tokens, sum_logprobs, no_speech_probs

    @torch.no_grad()
    def run_rows(
        self, audio_features: Tensor, rows: Sequence[Sequence[int]]
    ) -> list[DecodingResult]:
        """Decode one window per file: ``audio_features[i]`` with initial tokens ``rows[i]``."""
        self.decoder.reset()
        tokenizer = self.tokenizer
        n_audio, length = len(rows), len(self.initial_tokens)
        pads = [length - len(r) for r in rows]
        device = audio_features.device
        tokens = torch.tensor([[_PAD_TOKEN] * p + list(r) for p, r in zip(pads, rows, strict=True)])
        tokens = tokens.repeat_interleave(self.n_group, dim=0).to(device)
        pad = torch.tensor(pads, device=device).repeat_interleave(self.n_group)
        max_len = min(length + self.sample_len, self.n_ctx)
        self.inference = _PaddedInference(
            self.model, audio_features, self.n_group, pad, max_len, self.step_mode
        )
        if isinstance(self.decoder, BeamSearchDecoder):
            self.decoder.inference = self.inference

        tokens, sum_logprobs, no_speech_probs = self._main_loop(audio_features, tokens)
        no_speech_probs = no_speech_probs[:: self.n_group]
        tokens = tokens.reshape(n_audio, self.n_group, -1)
        sum_logprobs = sum_logprobs.reshape(n_audio, self.n_group)
        candidates, sum_lps = self.decoder.finalize(tokens, sum_logprobs)
        candidates = [
            [t[self.sample_begin : (t == tokenizer.eot).nonzero()[0, 0]] for t in s]
            for s in candidates
        ]
        selected = self.sequence_ranker.rank(candidates, sum_lps)
        results = []
        for i in range(n_audio):
            best = candidates[i][selected[i]].tolist()
            text = tokenizer.decode(best).strip()
            results.append(
                DecodingResult(
                    audio_features=audio_features[i],
                    language=self.options.language,
                    tokens=best,
                    text=text,
                    avg_logprob=sum_lps[i][selected[i]] / (len(best) + 1),
                    no_speech_prob=no_speech_probs[i],
                    temperature=self.options.temperature,
                    compression_ratio=compression_ratio(text),
                )
            )
        return results


@dataclass
class _File:
    """One file's progress through ``transcribe()``'s window loop."""

    index: int
    mel: Tensor  # (n_mels, frames + N_FRAMES of padding), on the model's device
    content_frames: int
    tokenizer: Tokenizer
    initial_prompt_tokens: list[int]
    seek: int = 0
    all_tokens: list[int] = field(default_factory=list)
    segments: list[dict] = field(default_factory=list)
    prompt_reset_since: int = 0

    def window(self) -> tuple[Tensor, int]:
        """The current 30-s mel window (padded) and its number of content frames."""
        size = min(N_FRAMES, self.content_frames - self.seek)
        return pad_or_trim(self.mel[:, self.seek : self.seek + size], N_FRAMES), size

    def initial_tokens(self, max_prompt: int, sot_sequence: Sequence[int]) -> list[int]:
        """``sot_prev`` + prompt + ``sot_sequence``, as ``DecodingTask`` makes them."""
        prompt = self.all_tokens[self.prompt_reset_since :]
        head = [self.tokenizer.sot_prev, *prompt[-max_prompt:]] if prompt else []
        return head + list(sot_sequence)

    def result(self) -> dict:
        """The ``transcribe()``-shaped result."""
        return {
            "text": self.tokenizer.decode(self.all_tokens[len(self.initial_prompt_tokens) :]),
            "segments": self.segments,
            "language": self.tokenizer.language or "en",
        }


def _advance(f: _File, result: DecodingResult, size: int, opts: BatchOptions) -> None:
    """Add one decoded window's segments to ``f`` and move its seek, as ``transcribe()``."""
    tk = f.tokenizer
    if opts.no_speech_threshold is not None:
        skip = result.no_speech_prob > opts.no_speech_threshold
        if opts.logprob_threshold is not None and result.avg_logprob > opts.logprob_threshold:
            skip = False
        if skip:
            f.seek += size
            return

    input_stride = N_FRAMES // 1500  # mel frames per output token: 2
    time_precision = input_stride * HOP_LENGTH / SAMPLE_RATE  # 0.02 s
    time_offset = float(f.seek * HOP_LENGTH / SAMPLE_RATE)
    tokens = torch.tensor(result.tokens)

    def segment(start: float, end: float, toks: Tensor) -> dict:
        toks_list = toks.tolist()
        return {
            "seek": f.seek,
            "start": start,
            "end": end,
            "text": tk.decode([t for t in toks_list if t < tk.eot]),
            "tokens": toks_list,
            "temperature": result.temperature,
            "avg_logprob": result.avg_logprob,
            "compression_ratio": result.compression_ratio,
            "no_speech_prob": result.no_speech_prob,
        }

    current = []
    is_ts = tokens.ge(tk.timestamp_begin)
    single_timestamp_ending = is_ts[-2:].tolist() == [False, True]
    consecutive = (torch.where(is_ts[:-1] & is_ts[1:])[0] + 1).tolist()
    if consecutive:
        slices = consecutive + ([len(tokens)] if single_timestamp_ending else [])
        last = 0
        for cut in slices:
            part = tokens[last:cut]
            start = time_offset + (part[0].item() - tk.timestamp_begin) * time_precision
            end = time_offset + (part[-1].item() - tk.timestamp_begin) * time_precision
            current.append(segment(start, end, part))
            last = cut
        if single_timestamp_ending:
            f.seek += size
        else:
            f.seek += (tokens[last - 1].item() - tk.timestamp_begin) * input_stride
    else:
        duration = size * HOP_LENGTH / SAMPLE_RATE
        stamps = tokens[is_ts.nonzero().flatten()]
        if len(stamps) > 0 and stamps[-1].item() != tk.timestamp_begin:
            duration = (stamps[-1].item() - tk.timestamp_begin) * time_precision
        current.append(segment(time_offset, time_offset + duration, tokens))
        f.seek += size

    for seg in current:  # an instantaneous or empty segment is cleared
        if seg["start"] == seg["end"] or seg["text"].strip() == "":
            seg["text"], seg["tokens"] = "", []
    start_id = len(f.segments)
    f.segments.extend({"id": start_id + i, **seg} for i, seg in enumerate(current))
    f.all_tokens.extend(t for seg in current for t in seg["tokens"])
    if not opts.condition_on_previous_text or result.temperature > 0.5:
        f.prompt_reset_since = len(f.all_tokens)


def _decode_with_fallback(
    model: Whisper,
    features: Tensor,
    rows: list[list[int]],
    sot_len: int,
    opts: BatchOptions,
    step_mode: str,
) -> list[DecodingResult]:
    """Decode windows at the first temperature; redo those that fail, together, hotter.

    Each row already holds its file's language token; the task's own tokenizer only gives
    special-token ids, which are the same for every language.
    """
    results: list[DecodingResult | None] = [None] * len(rows)
    pending = list(range(len(rows)))
    for temperature in opts.temperatures():
        options = opts.decoding_options(temperature, opts.language or "en")
        prompt_length = max(len(rows[i]) for i in pending) - sot_len
        task = _BatchDecodingTask(model, options, prompt_length, step_mode)
        index = torch.tensor(pending, device=features.device)
        out = task.run_rows(features[index], [rows[i] for i in pending])
        still = []
        for i, result in zip(pending, out, strict=True):
            results[i] = result
            if opts.needs_fallback(result):
                still.append(i)
        pending = still
        if not pending:
            break
    return results  # type: ignore[return-value]


def _sot_sequence(tokenizer: Tokenizer, opts: BatchOptions) -> tuple[int, ...]:
    """The start-of-transcript tokens ``DecodingTask`` uses for these options."""
    if opts.without_timestamps:
        return tokenizer.sot_sequence_including_notimestamps
    return tokenizer.sot_sequence


def _start_files(
    model: Whisper,
    admitted: list[tuple[int, Tensor, str | None]],
    opts: BatchOptions,
    dtype: torch.dtype,
) -> list[_File]:
    """Make the state of newly admitted ``(index, mel, initial prompt)`` files; detect their
    language in one batch if needed."""
    if not admitted:
        return []
    if opts.language is not None or not model.is_multilingual:
        languages = [opts.language or "en"] * len(admitted)
    else:
        first = torch.stack([pad_or_trim(mel, N_FRAMES) for _, mel, _ in admitted]).to(dtype)
        _, probs = model.detect_language(first)
        languages = [max(p, key=p.get) for p in probs]
    files = []
    for (index, mel, initial_prompt), language in zip(admitted, languages, strict=True):
        tokenizer = get_tokenizer(
            model.is_multilingual,
            num_languages=model.num_languages,
            language=language,
            task=opts.task,
        )
        prompt = tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else []
        files.append(
            _File(
                index=index,
                mel=mel,
                content_frames=mel.shape[-1] - N_FRAMES,
                tokenizer=tokenizer,
                initial_prompt_tokens=prompt,
                all_tokens=list(prompt),
            )
        )
    return files


@torch.no_grad()
def transcribe_batch(
    model: Whisper,
    audios: Sequence[np.ndarray],
    *,
    batch_size: int,
    step_mode: str | None = None,
    initial_prompts: Sequence[str | None] | None = None,
    on_done: Callable[[int, dict], None] | None = None,
    on_round: Callable[[int, float], None] | None = None,
    **decode_options,
) -> list[dict]:
    """Transcribe many 16 kHz mono float32 waveforms, decoding one window of up to
    ``batch_size`` files at a time.

    ``decode_options`` are ``BatchOptions`` fields (``whisper.transcribe()``'s names).
    ``step_mode`` is one of :data:`STEP_MODES` (default: :func:`default_step_mode`).
    ``initial_prompts`` gives each audio its own ``initial_prompt`` (default: the option's).
    ``on_done(index, result)`` is called as soon as an audio is finished (in the order they
    finish), ``on_round(windows, seconds)`` after each round with the windows it decoded and
    the audio seconds the files advanced by. Returns, per audio in input order,
    ``{"text", "segments", "language"}`` as ``transcribe()`` does.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    opts = BatchOptions(**decode_options)
    if step_mode is not None and step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
    step_mode = step_mode or default_step_mode(model.device)
    if step_mode == "graph" and model.device.type != "cuda":
        raise ValueError(f"step_mode 'graph' needs a CUDA device, the model is on {model.device}")
    if step_mode == "graph" and str(model.device) in _GRAPH_FAILED:
        step_mode = "static"
    if model.device.type == "cpu" and opts.fp16:
        opts = replace(opts, fp16=False)
    dtype = torch.float16 if opts.fp16 else torch.float32
    max_prompt = model.dims.n_text_ctx // 2 - 1

    prompts = list(initial_prompts) if initial_prompts is not None else None
    if prompts is not None and len(prompts) != len(audios):
        raise ValueError(f"{len(prompts)} initial_prompts for {len(audios)} audios")
    queue = deque(enumerate(audios))
    active: list[_File] = []
    done: dict[int, dict] = {}
    while queue or active:
        admitted = []
        while queue and len(active) + len(admitted) < batch_size:
            index, audio = queue.popleft()
            mel = log_mel_spectrogram(audio, model.dims.n_mels, N_SAMPLES, device=model.device)
            admitted.append((index, mel, prompts[index] if prompts else opts.initial_prompt))
        active.extend(_start_files(model, admitted, opts, dtype))
        for f in [f for f in active if f.seek >= f.content_frames]:  # finished, or empty
            done[f.index] = f.result()
            active.remove(f)
            if on_done is not None:
                on_done(f.index, done[f.index])
        if not active:
            continue

        windows, sizes = zip(*(f.window() for f in active), strict=True)
        features = model.encoder(torch.stack(windows).to(dtype))
        sots = [_sot_sequence(f.tokenizer, opts) for f in active]
        rows = [f.initial_tokens(max_prompt, sot) for f, sot in zip(active, sots, strict=True)]
        results = _decode_with_fallback(model, features, rows, len(sots[0]), opts, step_mode)
        seeks = [f.seek for f in active]
        for f, result, size in zip(active, results, sizes, strict=True):
            _advance(f, result, size, opts)
        if on_round is not None:
            moved = zip(active, seeks, strict=True)
            advanced = sum(min(f.seek, f.content_frames) - s for f, s in moved)
            on_round(len(active), advanced * HOP_LENGTH / SAMPLE_RATE)
    return [done[i] for i in range(len(audios))]
