"""Whisper weights resolution: present weights are used, in order, and never downloaded again.

The download is the one part that needs the internet; tests that must not reach it replace
openai-whisper's downloader and ``urllib``'s ``urlopen`` with functions that fail loudly, so a
call to either fails the test (fault injection, not a stand-in for a result).
"""

from __future__ import annotations

import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import whisper

from components.common.errors import ConfigError
from components.common.records import OK, read_jsonl
from components.transcribe import weights
from components.transcribe.engine import TranscribeOptions, run_transcribe_step

CLIP = "utt06_en-gb+m3_s140.wav"


class DownloadAttempted(AssertionError):
    """Raised by the guards: some code tried to download weights."""


@pytest.fixture
def checkpoint(whisper_model: str) -> Path:
    if not Path(whisper_model).is_file():
        pytest.skip("needs a checkpoint file (ASR_TEST_WHISPER_CKPT)")
    return Path(whisper_model)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way to the model download fails loudly: the downloader, urlopen, sockets."""

    def refuse(*args, **kwargs):
        raise DownloadAttempted(f"download code was called: {args!r}")

    monkeypatch.setattr(whisper, "_download", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(weights, "download_weights", refuse)


def _folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    image, cache = tmp_path / "image", tmp_path / "cache"
    image.mkdir()
    cache.mkdir()
    monkeypatch.setenv(weights.IMAGE_WEIGHTS_ENV, str(image))
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(cache))
    return image, cache


def test_a_run_with_weights_in_the_image_touches_no_download_code(
    checkpoint: Path,
    audio_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_network: None,
) -> None:
    image, cache = _folders(tmp_path, monkeypatch)
    shutil.copyfile(checkpoint, image / "tiny.en.pt")
    from components.common.ledger import Item

    clip = str(audio_dir / CLIP)
    out = tmp_path / "transcripts.jsonl"
    metrics = run_transcribe_step(
        [Item(clip, CLIP, "e", 1)],
        out,
        TranscribeOptions(model="tiny.en", language="en", device="cpu"),
    )
    [record] = read_jsonl(out)
    assert record["status"] == OK and "agenda" in record["text"].lower()
    assert metrics["files_failed"] == 0
    assert list(cache.iterdir()) == [], "nothing is fetched into the cache"


def test_resolution_order_image_then_cache_then_download(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    image, cache = _folders(tmp_path, monkeypatch)
    (cache / "tiny.en.pt").write_bytes(b"a stale cache entry that must not be read")
    shutil.copyfile(checkpoint, image / "tiny.en.pt")
    resolved = weights.resolve_weights("tiny.en", cache, image)
    assert (resolved.origin, resolved.path) == ("image", image / "tiny.en.pt")
    weights.load_model("tiny.en", "cpu")  # from the image: the cache's junk is never read

    (image / "tiny.en.pt").unlink()
    shutil.copyfile(checkpoint, cache / "tiny.en.pt")
    resolved = weights.resolve_weights("tiny.en", cache, image)
    assert (resolved.origin, resolved.path) == ("cache", cache / "tiny.en.pt")
    assert weights.resolve_weights("tiny.en", cache, None).origin == "cache"

    explicit = weights.resolve_weights(str(checkpoint), cache, image)
    assert (explicit.origin, explicit.path) == ("path", checkpoint)


def test_openai_file_names_are_used(tmp_path: Path, no_network: None) -> None:
    (tmp_path / "large-v3-turbo.pt").write_bytes(b"x")
    assert weights.weights_file("turbo") == "large-v3-turbo.pt"
    assert weights.resolve_weights("turbo", tmp_path / "none", tmp_path).origin == "image"


def test_a_present_file_that_does_not_load_is_an_error_not_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    image, _ = _folders(tmp_path, monkeypatch)
    (image / "tiny.en.pt").write_bytes(b"truncated")
    with pytest.raises(ConfigError, match=r"image/tiny\.en\.pt is not an openai-whisper"):
        weights.load_model("tiny.en", "cpu")


def test_nothing_present_and_no_network_names_every_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, cache = _folders(tmp_path, monkeypatch)

    def unreachable(url: str, root: str, in_memory: bool):
        Path(root, "medium.pt").write_bytes(b"half a download")
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(whisper, "_download", unreachable)
    with pytest.raises(ConfigError) as info:
        weights.load_model("medium", "cpu")
    message = str(info.value)
    assert str(image / "medium.pt") in message and str(cache / "medium.pt") in message
    assert "no route to host" in message and "WHISPER_MODEL" in message
    assert list(cache.iterdir()) == [], "a failed download leaves no partial file"


def test_a_download_lands_in_the_cache_once(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cache = _folders(tmp_path, monkeypatch)
    calls = []

    def download(url: str, root: str, in_memory: bool) -> str:
        calls.append(url)
        target = Path(root) / Path(url).name
        shutil.copyfile(checkpoint, target)
        return str(target)

    monkeypatch.setattr(whisper, "_download", download)
    first = weights.resolve_weights("tiny.en", cache, None)
    assert (first.origin, first.path) == ("download", cache / "tiny.en.pt")
    assert calls == [whisper._MODELS["tiny.en"]]
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.en.pt"]
    assert weights.resolve_weights("tiny.en", cache, None).origin == "cache"
    assert len(calls) == 1, "present weights are never downloaded again"


def test_half_weights_give_the_same_products_in_half_the_memory(checkpoint: Path) -> None:
    """On a GPU the transcribe step keeps float16 weights: openai-whisper casts each float32
    weight to the input's dtype at every call, so a stored float16 weight gives the same
    fp16 products. LayerNorms stay float32 (whisper computes them in float32)."""
    import torch

    full = weights.load_model(str(checkpoint), "cpu")
    half = weights.half_weights(weights.load_model(str(checkpoint), "cpu"))
    assert weights.load_model(str(checkpoint), "cpu", fp16=True).dims == full.dims
    assert {
        p.dtype for p in weights.load_model(str(checkpoint), "cpu", fp16=True).parameters()
    } == {torch.float32}, "a CPU decodes in float32: fp16 is ignored there"

    def size(model) -> int:
        return sum(p.numel() * p.element_size() for p in model.parameters())

    norms = [m for m in half.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(p.dtype == torch.float32 for m in norms for p in m.parameters())
    others = {id(p) for m in norms for p in m.parameters()}
    assert all(p.dtype == torch.float16 for p in half.parameters() if id(p) not in others)
    assert size(half) < 0.51 * size(full)

    torch.manual_seed(0)
    x = torch.randn(2, 7, full.dims.n_text_state).half()
    for name in ("decoder.blocks.0.attn.query", "decoder.blocks.0.mlp.0"):
        a, b = full.get_submodule(name), half.get_submodule(name)
        assert torch.equal(a(x), b(x)), name
    mel = torch.randn(1, full.dims.n_mels, 200).half()
    assert torch.equal(full.encoder.conv1(mel), half.encoder.conv1(mel))
