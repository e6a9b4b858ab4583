"""Tests of the set-up tools in tools/ and of the demo clips in samples/."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from components.common.wer import corpus_wer

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
SAMPLES = ROOT / "samples"
AUDIO_SUFFIXES = {".mp3", ".flac", ".wav"}


def load_tool(name: str):
    """Import tools/<name>.py (tools/ is a folder of scripts, not a package; they import
    each other as ``python tools/<name>.py`` lets them, from their own folder)."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_clips() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if p.suffix in AUDIO_SUFFIXES)


def env_file(var: str, how: str) -> Path:
    value = os.environ.get(var)
    if not value or not Path(value).is_file():
        pytest.skip(f"{var} is not set or not a file: {how}")
    return Path(value)


# ---- samples/ ----


def test_every_sample_clip_has_a_reference_transcript():
    clips = sample_clips()
    assert len(clips) >= 3
    for clip in clips:
        reference = clip.with_suffix(".txt")
        assert reference.is_file(), f"{clip.name} has no {reference.name}"
        assert len(reference.read_text().split()) >= 10
    assert sum(p.stat().st_size for p in SAMPLES.iterdir()) < 1_500_000


def test_sample_clips_are_16khz_mono_and_one_crosses_the_30s_window():
    if not shutil.which("ffprobe"):
        pytest.skip("ffprobe is missing: install ffmpeg")
    durations = []
    for clip in sample_clips():
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-of",
                "json",
                "-show_entries",
                "stream=sample_rate,channels:format=duration",
                str(clip),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        info = json.loads(probe.stdout)
        assert info["streams"][0]["sample_rate"] == "16000", clip.name
        assert info["streams"][0]["channels"] == 1, clip.name
        durations.append(float(info["format"]["duration"]))
    assert max(durations) > 30.0


# ---- tools/get_whisper_tiny_en.py ----


def _ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def test_read_ct2_model_bin_parses_variables_and_aliases(tmp_path):
    converter = load_tool("get_whisper_tiny_en")
    weight = np.arange(6, dtype=np.float16).reshape(2, 3)
    blob = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, 2)
    blob += _ct2_string("a/weight") + struct.pack("<BII", 2, 2, 3)
    blob += struct.pack("<BI", 4, weight.nbytes) + weight.tobytes()  # 4: float16
    blob += _ct2_string("a/num_heads") + struct.pack("<B", 0)
    blob += struct.pack("<BI", 2, 2) + struct.pack("<h", 6)  # 2: int16 scalar
    blob += struct.pack("<I", 1) + _ct2_string("b/weight") + _ct2_string("a/weight")
    (tmp_path / "model.bin").write_bytes(blob)

    spec, variables, aliases = converter.read_ct2_model_bin(tmp_path / "model.bin")

    assert spec == "WhisperSpec"
    np.testing.assert_array_equal(variables["a/weight"], weight)
    assert int(variables["a/num_heads"]) == 6
    assert aliases == {"b/weight": "a/weight"}
    (tmp_path / "model.bin").write_bytes(blob + b"\0")
    with pytest.raises(ValueError, match="trailing"):
        converter.read_ct2_model_bin(tmp_path / "model.bin")


@pytest.mark.slow
def test_converted_tiny_en_transcribes_a_sample_clip():
    """The checkpoint `make assets` converts loads in openai-whisper and transcribes well."""
    whisper = pytest.importorskip("whisper")
    import torch

    ckpt_path = env_file("ASR_TEST_WHISPER_CKPT", "run `make assets` to convert tiny.en")
    ckpt = torch.load(ckpt_path, map_location="cpu")
    model = whisper.load_model(str(ckpt_path), device="cpu")
    model.set_alignment_heads(ckpt["alignment_heads_b85"].encode())
    assert not model.is_multilingual
    pairs = []
    for clip in sample_clips():
        result = model.transcribe(
            str(clip), language="en", beam_size=5, fp16=False, condition_on_previous_text=False
        )
        pairs.append((clip.with_suffix(".txt").read_text(), result["text"]))
    assert corpus_wer(pairs) < 0.15, pairs


# ---- tools/make_tiny_gguf.py ----


def test_make_tiny_gguf_is_deterministic_and_readable(tmp_path):
    gguf = pytest.importorskip("gguf", reason="pip install gguf (make install does)")
    make_tiny_gguf = load_tool("make_tiny_gguf")
    first, second = tmp_path / "a.gguf", tmp_path / "b.gguf"
    assert make_tiny_gguf.main([str(first)]) == 0
    assert make_tiny_gguf.main([str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    reader = gguf.GGUFReader(str(first))
    assert reader.fields["general.architecture"].contents() == "llama"
    assert "<|im_start|>" in reader.fields["tokenizer.chat_template"].contents()
    assert first.stat().st_size < 2_000_000


# ---- tools/llm_server.py ----


def _llm_server(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOLS / "llm_server.py"), *args],
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_llm_server_starts_serves_reuses_and_stops(tmp_path):
    binary = env_file("LLAMA_SERVER_BIN", "run `make assets` to build llama-server")
    model = env_file("ASR_TEST_LLM_GGUF", "run `make assets` to make the tiny GGUF")
    pid_file = tmp_path / "server.pid"
    start = [
        "start",
        "--bin",
        str(binary),
        "--model",
        str(model),
        "--alias",
        "tiny",
        "--pid-file",
        str(pid_file),
        "--parallel",
        "1",
        "--ctx-size",
        "512",
    ]
    started = _llm_server(*start)
    assert started.returncode == 0, started.stderr
    endpoint = started.stdout.strip()
    pid = json.loads(pid_file.read_text())["pid"]
    try:
        # the measured defaults for a busy small machine (bench/RESULTS.md)
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert argv[argv.index("-t") + 1] == "1" and argv[argv.index("--poll") + 1] == "0"
        assert "--no-repack" in argv
        with urllib.request.urlopen(f"{endpoint}/models", timeout=10) as response:
            assert [m["id"] for m in json.load(response)["data"]] == ["tiny"]
        body = {
            "model": "tiny",
            "max_tokens": 8,
            "temperature": 0,
            "messages": [{"role": "user", "content": "Summarize: hello"}],
        }
        request = urllib.request.Request(
            f"{endpoint}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.load(response)["choices"][0]["message"]["content"]
        again = _llm_server(*start)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == endpoint
        assert json.loads(pid_file.read_text())["pid"] == pid
    finally:
        stopped = _llm_server("stop", "--pid-file", str(pid_file))
    assert stopped.returncode == 0, stopped.stderr
    assert not pid_file.exists()
    assert (
        not Path(f"/proc/{pid}").exists()
        or b"llama-server" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    assert _llm_server("stop", "--pid-file", str(pid_file)).returncode == 0


def test_llm_server_reports_a_server_that_cannot_start(tmp_path):
    binary = env_file("LLAMA_SERVER_BIN", "run `make assets` to build llama-server")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    pid_file = tmp_path / "server.pid"
    result = _llm_server(
        "start",
        "--bin",
        str(binary),
        "--model",
        str(broken),
        "--alias",
        "x",
        "--pid-file",
        str(pid_file),
    )
    assert result.returncode == 1
    assert "did not become ready" in result.stderr
    assert result.stdout == ""
    assert not pid_file.exists()
