"""The material the suite brings itself: the cached speech corpus and the vendored CRDs."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import corpus

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "tests" / "data" / "crds"

# a stand-in recipe: counts its runs, writes a one-clip manifest
FAKE_RECIPE = """#!/usr/bin/env bash
set -euo pipefail
echo run >> "$(dirname "$0")/runs"
mkdir -p "$1"
echo '{"file": "a.wav", "text": "a", "duration_s": 1.0}' > "$1/manifest.jsonl"
"""


def _runs(recipe: Path) -> int:
    runs = recipe.parent / "runs"
    return len(runs.read_text().splitlines()) if runs.exists() else 0


def test_corpus_is_made_once_per_recipe_and_remade_when_the_recipe_changes(tmp_path: Path):
    recipe = tmp_path / "recipe.sh"
    recipe.write_text(FAKE_RECIPE)
    cache = tmp_path / "cache"

    first = corpus.cached_corpus(cache, recipe)
    assert (first / "manifest.jsonl").is_file()
    assert corpus.cached_corpus(cache, recipe) == first
    assert _runs(recipe) == 1

    recipe.write_text(FAKE_RECIPE + "# changed\n")
    second = corpus.cached_corpus(cache, recipe)
    assert second != first and (second / "manifest.jsonl").is_file()
    assert _runs(recipe) == 2
    # nothing half-made is left behind
    assert sorted(p.name for p in (cache / "test-corpus").iterdir()) == sorted(
        [first.name, second.name]
    )


def test_a_failing_recipe_leaves_no_corpus(tmp_path: Path):
    recipe = tmp_path / "recipe.sh"
    recipe.write_text('mkdir -p "$1"; echo "espeak-ng: no voice" >&2; exit 3\n')
    with pytest.raises(subprocess.CalledProcessError) as failed:
        corpus.cached_corpus(tmp_path / "cache", recipe)
    assert "no voice" in failed.value.stderr
    assert list((tmp_path / "cache" / "test-corpus").iterdir()) == []


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng, sox or ffmpeg there
    with pytest.raises(corpus.CorpusToolMissing, match=r"espeak-ng, sox, ffmpeg, ffprobe"):
        corpus.recipe_key()


def test_vendored_crds_are_the_files_their_sources_list():
    sources = (CRDS / "SOURCES.md").read_text()
    listed = dict(
        (name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", sources, re.M)
    )
    present = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in CRDS.glob("*.yaml")}
    assert present == listed
    assert "Apache License" in (CRDS / "LICENSE").read_text()


def test_throughput_bench_without_clips_says_what_to_pass(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "ASR_TEST_AUDIO_DIR"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "transcribe_throughput.py"), "--device", "cpu",
         "--model", "tiny.en", "--files", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "--source DIR" in done.stderr and "ASR_TEST_AUDIO_DIR" in done.stderr
