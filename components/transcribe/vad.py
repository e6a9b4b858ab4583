"""Voice activity detection with Silero VAD, whose model ships inside the ``silero-vad`` wheel.

No download at run time: :func:`load_vad` loads the TorchScript model from the installed
package. :func:`speech_regions` runs it over many files at once: each file is cut into
:data:`PIECE_S`-second pieces and the pieces of all files are the rows of one batch (the model
is a small recurrent network stepped every 32 ms, so on a GPU the rows are nearly free and
the number of sequential steps, set by the piece length, sets the time). Each piece is run
with the :data:`LEAD_S` seconds before it as a lead-in whose outputs are dropped, so the
recurrent state has settled when the piece begins and the pieces join as one pass would.
Silero's own hysteresis (``get_speech_timestamps_from_probs``) turns each file's
probabilities into speech regions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from components.common.audio import SAMPLE_RATE

#: Samples per VAD step at 16 kHz (Silero's fixed window).
FRAME = 512
#: Seconds of a file per batch row, by device type. On a GPU the steps are launch-bound: a
#: 30-s piece took 938 steps of about 20 kernel launches each (0.65 s for 4 x 15 min on an
#: H200, bench/RESULTS.md), a 10-s piece with its lead-in takes 438. On a CPU every row costs
#: its own arithmetic, so long pieces waste the least on lead-ins.
PIECE_S = {"cpu": 30, "cuda": 10}
#: Seconds of audio before a piece that the model runs over first, outputs dropped: the
#: recurrent state starts fresh at each row and takes seconds to settle (on a 141-s file of
#: the test clips, 30-s pieces without a lead-in differed from one pass by up to 0.87, with
#: 4 s of lead-in by up to 0.375: bench/vad_pieces.py). The first piece of a file gets
#: silence as its lead-in.
LEAD_S = 4
#: Rows (pieces) per model call; bounds the memory of a call on a CPU.
MAX_ROWS = 512


@dataclass(frozen=True)
class VadOptions:
    """How speech regions are found (Silero's names).

    The defaults are faster-whisper's batched mode's except ``threshold`` and
    ``speech_pad_ms``, chosen by ``bench/chunk_settings.py`` on the long-form corpora
    (bench/RESULTS.md, "Long recordings"): a lower threshold and wider pads keep the soft
    onset of a chunk's first word, which Whisper otherwise mishears without context.

    Attributes:
        threshold: a 32-ms frame with a speech probability at or above this is speech.
        min_speech_ms: shorter speech regions are dropped.
        min_silence_ms: a pause shorter than this does not end a region.
        speech_pad_ms: each region is widened by this much on both sides.
        max_speech_s: a longer region is cut at its longest internal pause.
    """

    threshold: float = 0.35
    min_speech_ms: int = 250
    min_silence_ms: int = 160
    speech_pad_ms: int = 400
    max_speech_s: float = 29.0


def load_vad(device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """Silero VAD's TorchScript model from the installed ``silero-vad`` package, on ``device``.

    Importing ``silero_vad`` sets torch's thread count to 1; the count is restored, so that
    Whisper on a CPU keeps its threads.
    """
    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad

    model = load_silero_vad()
    torch.set_num_threads(threads)
    return model.to(torch.device(device))


@contextmanager
def _single_thread(device: torch.device) -> Iterator[None]:
    """One torch thread while the VAD runs on a CPU (as Silero sets it), then as before.

    The model's steps are tiny; with several threads on a busy machine every step waits for
    a descheduled thread, which made one 5-min file take minutes instead of seconds.
    """
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def speech_probabilities(model: torch.jit.ScriptModule, audios: list[np.ndarray]) -> list[Tensor]:
    """Per-frame speech probabilities of each 16 kHz waveform, one per :data:`FRAME` samples."""
    device = next(model.parameters()).device
    piece = PIECE_S.get(device.type, PIECE_S["cuda"]) * SAMPLE_RATE // FRAME * FRAME
    lead = LEAD_S * SAMPLE_RATE // FRAME * FRAME
    rows, owners = [], []  # (samples, offset in the row, frames of the piece), owner
    for i, samples in enumerate(audios):
        for start in range(0, len(samples), piece):
            begin = max(0, start - lead)  # the lead-in, silence before the file's start
            frames = -(-min(len(samples) - start, piece) // FRAME)
            rows.append((samples[begin : start + piece], lead - (start - begin), frames))
            owners.append(i)
    probs: list[list[Tensor]] = [[] for _ in audios]
    for first in range(0, len(rows), MAX_ROWS):
        batch = rows[first : first + MAX_ROWS]
        x = torch.zeros(len(batch), lead + piece)
        for r, (row, offset, _) in enumerate(batch):
            x[r, offset : offset + len(row)] = torch.from_numpy(np.ascontiguousarray(row))
        with torch.no_grad(), _single_thread(device):
            out = model.audio_forward(x.to(device), SAMPLE_RATE)[:, lead // FRAME :]
        for r, (_, _, frames) in enumerate(batch):
            probs[owners[first + r]].append(out[r, :frames].float().cpu())
    return [torch.cat(p) if p else torch.zeros(0) for p in probs]


def speech_regions(
    model: torch.jit.ScriptModule, audios: list[np.ndarray], options: VadOptions | None = None
) -> list[list[tuple[float, float]]]:
    """Speech regions ``(start_s, end_s)`` of each waveform, in order, not overlapping."""
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    options = options or VadOptions()
    regions = []
    for samples, probs in zip(audios, speech_probabilities(model, audios), strict=True):
        stamps = get_speech_timestamps_from_probs(
            probs.tolist(),
            sampling_rate=SAMPLE_RATE,
            threshold=options.threshold,
            min_speech_duration_ms=options.min_speech_ms,
            max_speech_duration_s=options.max_speech_s,
            min_silence_duration_ms=options.min_silence_ms,
            speech_pad_ms=options.speech_pad_ms,
            audio_length_samples=len(samples),
        )
        regions.append([(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps])
    return regions
