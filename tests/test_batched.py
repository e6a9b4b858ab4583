"""Batched decoding (components/transcribe/batched.py) against whisper's own sequential path."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from whisper.decoding import ApplyTimestampRules, BeamSearchDecoder
from whisper.model import ModelDimensions, Whisper
from whisper.tokenizer import get_tokenizer

from components.common.wer import corpus_wer
from components.transcribe import batched, step_rules
from components.transcribe.batched import transcribe_batch

OPTIONS = {"language": "en", "beam_size": 5, "best_of": 5, "fp16": False}
SEGMENT_KEYS = {
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
}


@pytest.fixture(scope="module")
def model(whisper_model: str):
    import whisper

    return whisper.load_model(whisper_model, device="cpu")


@pytest.fixture(scope="module")
def clips(audio_dir, audio_manifest) -> list[tuple[str, np.ndarray, str, float]]:
    """(name, waveform, reference, duration) of each WAV clip: short and long files mixed."""
    import whisper

    names = sorted(n for n in audio_manifest if n.endswith(".wav"))
    # put a long file among the first four, so that the first batch mixes lengths
    names.sort(key=lambda n: (not n.startswith("long01"), n))
    return [
        (
            n,
            whisper.load_audio(str(audio_dir / n)),
            audio_manifest[n]["text"],
            audio_manifest[n]["duration_s"],
        )
        for n in names
    ]


@pytest.fixture(scope="module")
def sequential(model, clips) -> list[dict]:
    return [model.transcribe(audio, **OPTIONS) for _, audio, _, _ in clips]


@pytest.fixture(scope="module")
def batch4(model, clips) -> list[dict]:
    return transcribe_batch(model, [audio for _, audio, _, _ in clips], batch_size=4, **OPTIONS)


@pytest.mark.slow
def test_corpus_wer_within_half_a_point_of_sequential(clips, sequential, batch4):
    assert len(batch4) == len(sequential) == len(clips)
    seq_wer = corpus_wer(
        (ref, r["text"]) for (_, _, ref, _), r in zip(clips, sequential, strict=True)
    )
    bat_wer = corpus_wer((ref, r["text"]) for (_, _, ref, _), r in zip(clips, batch4, strict=True))
    assert bat_wer <= seq_wer + 0.005, (seq_wer, bat_wer)


@pytest.mark.slow
def test_results_have_transcribe_form(sequential, batch4):
    for seq, bat in zip(sequential, batch4, strict=True):
        assert set(bat) == set(seq) == {"text", "segments", "language"}
        assert bat["language"] == "en"
        for segment in bat["segments"]:
            assert set(segment) == SEGMENT_KEYS


@pytest.mark.slow
def test_segments_monotonic_and_within_duration(clips, batch4):
    for (name, _, _, duration), result in zip(clips, batch4, strict=True):
        segments = result["segments"]
        assert segments, name
        assert [s["id"] for s in segments] == list(range(len(segments)))
        for s in segments:
            assert 0 <= s["start"] <= s["end"] <= duration + 0.5, (name, s)
        starts = [s["start"] for s in segments]
        assert starts == sorted(starts), name
        assert result["text"].strip()


@pytest.mark.slow
def test_long_file_is_decoded_across_windows(clips, sequential, batch4):
    i = next(i for i, c in enumerate(clips) if c[0].startswith("long01"))
    segments = batch4[i]["segments"]
    assert len({s["seek"] for s in segments}) >= 3  # 73 s: at least three windows
    assert segments[-1]["end"] > 60
    assert len(batch4[i]["text"].split()) >= 0.9 * len(sequential[i]["text"].split())


@pytest.mark.slow
def test_batch_size_one_gives_the_same_text_as_four(model, clips, batch4):
    # the first three clips: long01 and two utterances, decoded together in batch4
    audios = [audio for _, audio, _, _ in clips[:3]]
    single = transcribe_batch(model, audios, batch_size=1, **OPTIONS)
    assert [r["text"] for r in single] == [r["text"] for r in batch4[:3]]


@pytest.mark.slow
def test_temperature_fallback_is_applied_per_window(model, clips):
    # logprob_threshold 0 fails every window with speech: each goes through the whole ladder
    audios = [clips[1][1], clips[2][1]]
    results = transcribe_batch(model, audios, batch_size=2, **{**OPTIONS, "logprob_threshold": 0.0})
    for result in results:
        assert {s["temperature"] for s in result["segments"]} == {1.0}


@pytest.mark.slow
def test_static_steps_decode_as_eager_steps(model, clips):
    # the step a CUDA graph captures (whole cache, position from a device tensor) decodes as
    # the reference step: long01 (several windows, beams reordered) and one utterance
    audios = [audio for _, audio, _, _ in clips[:2]]
    eager = transcribe_batch(model, audios, batch_size=2, step_mode="eager", **OPTIONS)
    static = transcribe_batch(model, audios, batch_size=2, step_mode="static", **OPTIONS)
    for e, s in zip(eager, static, strict=True):
        assert s["text"] == e["text"]
        assert [x["tokens"] for x in s["segments"]] == [x["tokens"] for x in e["segments"]]
        assert [x["avg_logprob"] for x in s["segments"]] == pytest.approx(
            [x["avg_logprob"] for x in e["segments"]], abs=1e-5
        )


def test_bad_batch_size_step_mode_and_unknown_option_are_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        transcribe_batch(None, [], batch_size=0)
    with pytest.raises(TypeError, match="word_timestamps"):
        transcribe_batch(None, [], batch_size=2, word_timestamps=True)
    with pytest.raises(ValueError, match="step_mode must be one of"):
        transcribe_batch(None, [], batch_size=2, step_mode="fast")
    on_cpu = SimpleNamespace(device=torch.device("cpu"))
    with pytest.raises(ValueError, match="needs a CUDA device"):
        transcribe_batch(on_cpu, [], batch_size=2, step_mode="graph")
    assert batched.default_step_mode("cpu") == "eager"
    assert batched.default_step_mode("cuda:0") == "graph"


def test_default_batch_size_per_device():
    assert batched.default_batch_size("cpu") == batched.DEFAULT_BATCH_SIZE["cpu"]
    assert batched.default_batch_size("cuda:1") == batched.DEFAULT_BATCH_SIZE["cuda"]
    chunk_rows = batched.DEFAULT_CHUNK_BATCH_SIZE["cuda"]
    assert batched.default_batch_size("cuda:1", chunked=True) == chunk_rows


# Peak GPU memory measured on an H200 (bench/RESULTS.md): (dims, rows, beams, peak GiB).
_MEASURED_PEAKS = [
    (ModelDimensions(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4), 64, 5, 1.53),  # tiny.en
    # tiny.en, H100, preallocated key/value cache (CUDA-graph steps)
    (ModelDimensions(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4), 64, 5, 1.68),
    (ModelDimensions(128, 1500, 1280, 20, 32, 51866, 448, 1280, 20, 32), 16, 5, 10.63),  # large-v3
]


@pytest.mark.parametrize(("dims", "rows", "beams", "peak_gib"), _MEASURED_PEAKS)
def test_row_memory_estimate_covers_the_measured_peaks(dims, rows, beams, peak_gib):
    weights = 2 * sum(p.numel() for p in Whisper(dims).parameters())  # fp16
    assert weights + rows * batched.row_bytes(dims, beams) >= peak_gib * 2**30


def test_auto_batch_size_on_cpu_is_the_cpu_default():
    dims = _MEASURED_PEAKS[0][0]
    assert batched.auto_batch_size(Whisper(dims), beams=5) == batched.DEFAULT_BATCH_SIZE["cpu"]
    chunk_rows = batched.auto_batch_size(Whisper(dims), beams=5, chunked=True)
    assert chunk_rows == batched.DEFAULT_CHUNK_BATCH_SIZE["cpu"]


@pytest.mark.parametrize("free_gib", [80, 2])
def test_auto_batch_size_on_a_gpu_takes_the_chunked_default_under_the_memory_cap(
    monkeypatch, free_gib
):
    """Chunked rows are chunks, many per file: their default is larger, the same memory
    rule caps both (2 GiB holds about 50 rows of tiny.en)."""
    dims = _MEASURED_PEAKS[0][0]
    on_gpu = SimpleNamespace(device=torch.device("cuda:0"), dims=dims)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free_gib * 2**30, 0))
    cap = int(batched.MEMORY_SHARE * free_gib * 2**30 // batched.row_bytes(dims, 5))
    files = batched.auto_batch_size(on_gpu, beams=5)
    chunks = batched.auto_batch_size(on_gpu, beams=5, chunked=True)
    assert files == min(cap, batched.DEFAULT_BATCH_SIZE["cuda"])
    assert chunks == min(cap, batched.DEFAULT_CHUNK_BATCH_SIZE["cuda"])
    assert (chunks > files) == (cap > files)


def _random_rows(tokenizer, n_rows: int, sample_begin: int, length: int, seed: int):
    """Token rows whose sampled part mixes text and timestamp tokens."""
    g = torch.Generator().manual_seed(seed)
    head = torch.full((n_rows, sample_begin), tokenizer.sot)
    text = torch.randint(0, tokenizer.eot, (n_rows, length), generator=g)
    stamps = torch.randint(
        tokenizer.timestamp_begin, tokenizer.timestamp_begin + 1500, (n_rows, length), generator=g
    )
    pick = torch.rand(n_rows, length, generator=g) < 0.4
    return torch.cat([head, torch.where(pick, stamps, text)], dim=1)


@pytest.mark.parametrize("length", [0, 1, 2, 7])
def test_vectorized_timestamp_rules_equal_whispers(length):
    tokenizer = get_tokenizer(multilingual=False)
    n_vocab = tokenizer.timestamp_begin + 1501
    tokens = _random_rows(tokenizer, 12, 3, length, seed=length)
    logits = torch.randn(12, n_vocab, generator=torch.Generator().manual_seed(7)) * 4
    expected, actual = logits.clone(), logits.clone()
    ApplyTimestampRules(tokenizer, 3, 50).apply(expected, tokens)
    step_rules.BatchTimestampRules(tokenizer, 3, 50).apply(actual, tokens)
    assert torch.equal(expected, actual)


class _Cache:
    """Records the beam rows that beam search keeps."""

    def __init__(self):
        self.calls = []

    def rearrange_kv_cache(self, source_indices, index=None):
        self.calls.append(list(source_indices))
        assert index is None or index.tolist() == list(source_indices)


@pytest.mark.parametrize("ties", [False, True])
def test_batched_beam_search_equals_whispers_over_several_steps(ties):
    """Random logits, and logits of a few levels only, so that many candidates tie and the
    order among equal scores (the stock decoder's stable sort) decides."""
    beam, n_audio, n_vocab, eot = 3, 4, 40, 39
    g = torch.Generator().manual_seed(3)
    stock_cache, fast_cache = _Cache(), _Cache()
    stock = BeamSearchDecoder(beam, eot, stock_cache, patience=1.5)
    fast = step_rules.BatchBeamSearchDecoder(beam, eot, fast_cache, patience=1.5)
    tokens_a = tokens_b = torch.full((n_audio * beam, 2), 1)
    lp_a, lp_b = torch.zeros(n_audio * beam), torch.zeros(n_audio * beam)
    for _ in range(6):
        logits = torch.randn(n_audio * beam, n_vocab, generator=g) * 3
        if ties:
            logits = logits.round().clamp(-2, 2)
        tokens_a, done_a = stock.update(tokens_a, logits.clone(), lp_a)
        tokens_b, done_b = fast.update(tokens_b, logits.clone(), lp_b)
        assert torch.equal(tokens_a, tokens_b)
        assert torch.equal(lp_a, lp_b)
        assert done_a == done_b
    assert stock_cache.calls == fast_cache.calls
    assert stock.finished_sequences == fast.finished_sequences
    assert any(stock.finished_sequences)  # end-of-text was reached on the way


def test_empty_audio_gives_an_empty_result(model):
    results = transcribe_batch(model, [np.zeros(0, dtype=np.float32)], batch_size=2, **OPTIONS)
    assert results == [{"text": "", "segments": [], "language": "en"}]


class _FailingGraph:
    """Stands in for ``torch.cuda.CUDAGraph`` where a capture fails (no GPU here)."""

    def capture_begin(self) -> None:
        raise RuntimeError("operation not permitted when stream is capturing")

    def capture_end(self) -> None:
        pass


def test_failed_graph_capture_falls_back_to_the_same_step(model, monkeypatch, caplog):
    # torch.cuda parts replaced: this machine has no GPU, and a real capture failure cannot
    # be provoked on demand; the fallback must log, remember the device and decode on
    monkeypatch.setattr(batched, "_GRAPH_FAILED", set())
    monkeypatch.setattr(batched, "_CAPTURE_STREAMS", {})
    stream = SimpleNamespace(wait_stream=lambda other: None)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FailingGraph)

    features = model.encoder(torch.zeros(2, model.dims.n_mels, 3000))
    pad = torch.tensor([0, 0, 1, 1])
    tokens = torch.tensor([[50257, 50362, 50363]] * 2 + [[0, 50257, 50363]] * 2)
    out = {}
    for mode in ("static", "graph"):
        inference = batched._PaddedInference(model, features, 2, pad, 8, mode)
        with torch.no_grad():
            inference.logits(tokens, 1)
            steps = [inference.logits(torch.cat([tokens, tokens[:, -1:]], 1), 1)[0]]
            steps.append(inference.logits(torch.cat([tokens, tokens[:, -2:]], 1), 1)[0])
        out[mode] = steps
    failed_devices = batched._GRAPH_FAILED
    assert failed_devices == {"cpu"}
    assert "CUDA graph capture failed on cpu" in caplog.text
    assert torch.equal(out["graph"][0], out["static"][0])
    assert torch.equal(out["graph"][1], out["static"][1])
