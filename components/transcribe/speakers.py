"""Who said what: speaker labels on transcript segments.

Two sources of speakers, chosen per file:

- **Channels** (:mod:`components.transcribe.channels`, on by default): a file whose channels
  carry different speakers (a contact-centre call with the agent on one channel and the
  customer on the other) is transcribed per channel; the channels' segments are merged by
  time and each gets its channel's ``speaker`` (``channel_0``, ``channel_1``, or the names of
  ``channel_speakers``). Identical channels are transcribed once, as the mono mix.
- **Diarization** (:mod:`components.transcribe.diarize`, off by default: it costs time):
  the other files get word timestamps, speaker turns from a speaker-embedding model and
  clustering, each word the speaker of its turn, and segments split where the speaker
  changes (``speaker_0``, ``speaker_1``, ... in order of first appearance).

The per-channel rows of all files are decoded together, so the batched decoder fills its
batch with channels as it does with files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from whisper.model import Whisper

from components.transcribe import channels

if TYPE_CHECKING:
    from components.transcribe.engine import LoadedAudio, TranscribeOptions


@dataclass
class SpeakerOptions:
    """How speakers are labelled.

    Attributes:
        split_channels: transcribe a channel-separated file (one speaker per channel) per
            channel and label each segment with its channel's speaker.
        channel_speakers: names of the channels' speakers in channel order (``agent``,
            ``customer``); a channel without a name is ``channel_<index>``.
        diarize: label the speakers of the other (mono) files with a speaker-embedding model.
        num_speakers: speakers in each diarized file; 0 estimates the number per file.
    """

    split_channels: bool = True
    channel_speakers: tuple[str, ...] = ()
    diarize: bool = False
    num_speakers: int = 0


def decode_attributed(
    model: Whisper, items: Sequence[LoadedAudio], options: TranscribeOptions
) -> list[dict[str, Any]]:
    """``transcribe()``-shaped results for ``items``, segments labelled with ``speaker``.

    A file with :attr:`LoadedAudio.channels` is decoded per channel and merged by time;
    with ``options.speakers.diarize`` the other files are diarized. Word timestamps are
    computed when ``options.word_timestamps`` asks for them or diarization needs them.
    """
    from components.transcribe import engine

    speakers = options.speakers
    rows: list[np.ndarray] = []
    owners: list[tuple[int, int | None]] = []
    for i, item in enumerate(items):
        for channel, samples in (item.channels or {None: item.samples}).items():
            rows.append(samples)
            owners.append((i, channel))
    words = options.word_timestamps or speakers.diarize
    results = engine.decode_many(model, rows, replace(options, word_timestamps=words))
    unaligned = [k for k, r in enumerate(results) if any("words" not in s for s in r["segments"])]
    if words and unaligned:
        from components.transcribe.timing import add_word_timestamps

        add_word_timestamps(model, [rows[k] for k in unaligned], [results[k] for k in unaligned])
    names = channels.speaker_names(speakers.channel_speakers)
    merged: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        mine = [k for k, (owner, _) in enumerate(owners) if owner == i]
        if item.channels:
            per_channel = [
                (
                    channels.channel_speaker(owners[k][1], names),
                    channels.fit_to_speech(
                        engine.speech_segments(results[k], rows[k], options), rows[k]
                    ),
                )
                for k in mine
            ]
            merged.append(channels.merge_by_time(per_channel, results[mine[0]].get("language")))
        elif speakers.diarize:
            from components.transcribe.diarize import diarize_result

            merged.append(diarize_result(results[mine[0]], item.samples, speakers.num_speakers))
        else:
            merged.append(results[mine[0]])
    return merged
