"""Speaker diarization of mono recordings: who speaks when, then who said which word.

1. **Embeddings.** Resemblyzer's d-vector voice encoder (a 3-layer LSTM trained for speaker
   verification; the ``resemblyzer`` wheel ships its 17 MB weights, so nothing is downloaded
   at run time) embeds 1.6-s windows every :data:`HOP_S` seconds of the file's 40-band mel
   spectrogram. Windows that hold too little speech (:data:`MIN_SPEECH_SHARE`, by the speech-
   band level of :mod:`components.common.audio`) are left out.
2. **Clustering.** k-means of the unit-length embeddings into ``num_speakers`` clusters
   (scikit-learn). With ``num_speakers`` 0 the number is estimated first: average-linkage
   agglomerative clustering by cosine distance, cut at :data:`DISTANCE_THRESHOLD`, and the
   clusters holding at least :data:`MIN_CLUSTER_SHARE` of the windows counted.
3. **Words.** Every word (Whisper word timestamps) gets the speaker of the window centre
   nearest to its middle; a run of words shorter than :data:`MIN_TURN_S` between two turns
   of one speaker joins them. Segments are split where the speaker changes, and each piece
   gets ``speaker`` (``speaker_0``, ``speaker_1``, ... in order of first appearance).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from components.common import audio

#: Seconds between the starts of two embedding windows (each is 1.6 s long).
HOP_S = 0.4
#: Share of a window's 30-ms frames that must hold speech for it to be embedded.
MIN_SPEECH_SHARE = 0.5
#: Frames at or above this level (dBFS, speech band) hold speech.
SPEECH_LEVEL_DB = -45.0
#: Most speakers the estimate gives.
MAX_SPEAKERS = 8
#: Cosine distance at which the estimate's clustering stops merging.
DISTANCE_THRESHOLD = 0.3
#: Share of the windows a cluster needs to count as a speaker in the estimate.
MIN_CLUSTER_SHARE = 0.1
#: A shorter run of words between two turns of one speaker is given to that speaker.
MIN_TURN_S = 0.6
#: Level resemblyzer normalizes its input to.
TARGET_DBFS = -30


@functools.cache
def _encoder() -> Any:
    """The voice encoder, loaded once (CPU; it is small)."""
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def embed_windows(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (seconds) and d-vectors ``(windows, 256)`` of the speech windows of a file."""
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram
    from resemblyzer.hparams import partials_n_frames

    encoder = _encoder()
    mel = wav_to_mel_spectrogram(normalize_volume(samples, TARGET_DBFS, increase_only=True))
    hop = round(HOP_S * 100)  # mel frames are 10 ms
    starts = np.arange(0, max(1, len(mel) - partials_n_frames + 1), hop)
    speech = audio.frame_levels_db(samples) >= SPEECH_LEVEL_DB
    frame_s = audio.ENERGY_FRAME / audio.SAMPLE_RATE
    keep = []
    for start in starts:
        lo, hi = int(start / 100 / frame_s), int((start + partials_n_frames) / 100 / frame_s)
        if speech[lo:hi].size and speech[lo:hi].mean() >= MIN_SPEECH_SHARE:
            keep.append(start)
    if not keep:
        return np.zeros(0), np.zeros((0, 256), np.float32)
    windows = np.stack([_padded(mel, s, partials_n_frames) for s in keep])
    with torch.no_grad():
        vectors = np.concatenate(
            [
                encoder(torch.from_numpy(windows[i : i + 256])).numpy()
                for i in range(0, len(windows), 256)
            ]
        )
    centres = (np.array(keep) + partials_n_frames / 2) / 100
    return centres, vectors


def _padded(mel: np.ndarray, start: int, length: int) -> np.ndarray:
    window = mel[start : start + length]
    return np.pad(window, ((0, length - len(window)), (0, 0)))


def estimate_speakers(vectors: np.ndarray) -> int:
    """Speakers among the embeddings: the clusters of average-linkage clustering cut at
    cosine distance :data:`DISTANCE_THRESHOLD` that hold at least :data:`MIN_CLUSTER_SHARE`
    of the windows (windows over two voices or a turn change form small clusters)."""
    from sklearn.cluster import AgglomerativeClustering

    if len(vectors) < 2:
        return 1
    labels = AgglomerativeClustering(
        n_clusters=None, distance_threshold=DISTANCE_THRESHOLD, metric="cosine", linkage="average"
    ).fit_predict(vectors)
    sizes = np.bincount(labels)
    big = int((sizes >= max(2, MIN_CLUSTER_SHARE * len(vectors))).sum())
    return min(MAX_SPEAKERS, max(1, big))


def cluster(vectors: np.ndarray, num_speakers: int = 0) -> np.ndarray:
    """A speaker index per embedding: k-means of the unit vectors into ``num_speakers``
    clusters (0: :func:`estimate_speakers`)."""
    from sklearn.cluster import KMeans

    k = min(num_speakers or estimate_speakers(vectors), len(vectors))
    if k <= 1:
        return np.zeros(len(vectors), int)
    return KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(vectors)


def _smooth(labels: list[int], words: list[dict[str, Any]]) -> list[int]:
    """Runs shorter than :data:`MIN_TURN_S` between two runs of one speaker join them."""
    labels = list(labels)
    runs: list[list[int]] = []
    for i, label in enumerate(labels):
        if runs and labels[runs[-1][0]] == label:
            runs[-1].append(i)
        else:
            runs.append([i])
    for before, run, after in zip(runs, runs[1:], runs[2:], strict=False):
        length = words[run[-1]]["end"] - words[run[0]]["start"]
        if labels[before[0]] == labels[after[0]] and length < MIN_TURN_S:
            for i in run:
                labels[i] = labels[before[0]]
    return labels


def _split(segment: dict[str, Any], speakers: list[str]) -> list[dict[str, Any]]:
    """``segment`` cut where the speaker of its words changes."""
    words = segment["words"]
    pieces, first = [], 0
    for i in range(1, len(words) + 1):
        if i == len(words) or speakers[i] != speakers[first]:
            part = words[first:i]
            pieces.append(
                {
                    **segment,
                    "start": part[0]["start"],
                    "end": part[-1]["end"],
                    "text": "".join(w["word"] for w in part),
                    "words": part,
                    "speaker": speakers[first],
                }
            )
            first = i
    return pieces


def diarize_result(
    result: dict[str, Any], samples: np.ndarray, num_speakers: int = 0
) -> dict[str, Any]:
    """``result`` (with word timestamps) with segments split at speaker changes, labelled.

    Args:
        result: a ``transcribe()``-shaped result whose segments carry ``words``.
        samples: the file's 16 kHz mono samples.
        num_speakers: speakers in the file; 0 estimates the number.

    Returns:
        A new result: the same words, segments cut at speaker changes, each with ``speaker``.
    """
    segments = result.get("segments") or []
    words = [w for s in segments for w in s.get("words") or []]
    if not words:
        return result
    centres, vectors = embed_windows(samples)
    if not len(centres):
        labels = [0] * len(words)
    else:
        clusters = cluster(vectors, num_speakers)
        middles = np.array([(w["start"] + w["end"]) / 2 for w in words])
        nearest = np.abs(middles[:, None] - centres[None, :]).argmin(axis=1)
        labels = _smooth([int(clusters[j]) for j in nearest], words)
    order = list(dict.fromkeys(labels))
    names = [f"speaker_{order.index(label)}" for label in labels]
    out, index = [], 0
    for segment in segments:
        n = len(segment.get("words") or [])
        if n:
            out.extend(_split(segment, names[index : index + n]))
        index += n
    for i, segment in enumerate(out):
        segment["id"] = i
    return {**result, "segments": out}
