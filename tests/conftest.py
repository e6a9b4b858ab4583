"""Shared pytest configuration.

The suite brings its own speech clips and CRDs; environment variables may point it at other
copies. Weights and binaries come from ``make assets`` (``make test`` runs it and sets their
variables); a test whose piece is missing skips and says which variable provides it.

- ``ASR_TEST_AUDIO_DIR``: spoken English clips with ``manifest.jsonl`` references. Unset: the
  corpus ``tools/make_test_corpus.sh`` synthesises with espeak-ng, sox and ffmpeg, made once
  and cached (``tests/fixtures/corpus.py``).
- ``ASR_TEST_CRDS_DIR``: CustomResourceDefinitions for manifest validation. Unset: the copies
  vendored in ``tests/data/crds/`` (sources and licence in its ``SOURCES.md``).
- ``ASR_TEST_WHISPER_CKPT``: an openai-whisper checkpoint file (tiny.en); or
  ``WHISPER_MODEL=tiny.en`` where the internet is reachable.
- ``ASR_TEST_LLM_GGUF`` and ``LLAMA_SERVER_BIN``: a GGUF model and llama.cpp's server.
- ``MINIO_ENDPOINT``, ``MINIO_ACCESS_KEY``, ``MINIO_SECRET_KEY``: a real MinIO; without them
  the S3 tests start a moto server on 127.0.0.1 (and the one test that needs MinIO's
  signature checks skips).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures import corpus

VENDORED_CRDS = Path(__file__).resolve().parent / "data" / "crds"

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.llm_server",
    "tests.fixtures.dialogues",
    "tests.fixtures.scripted",
]


def _env_path(var: str, how: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"{var} is not set: {how}")
    path = Path(value)
    if not path.exists():
        pytest.skip(f"{var}={value} does not exist: {how}")
    return path


def _given_dir(var: str) -> Path | None:
    """The folder ``var`` names, None when it is unset; a named folder that is missing fails."""
    value = os.environ.get(var)
    if not value:
        return None
    if not Path(value).is_dir():
        pytest.fail(
            f"{var}={value} is not a folder (unset it to use the suite's own)", pytrace=False
        )
    return Path(value)


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    """Folder of test clips with ``manifest.jsonl`` (``{"file", "text", "duration_s"}``):
    ``ASR_TEST_AUDIO_DIR``, else the synthesised corpus (made on first use, then cached)."""
    given = _given_dir("ASR_TEST_AUDIO_DIR")
    if given is not None:
        return given
    try:
        return corpus.cached_corpus()
    except corpus.CorpusToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"tools/make_test_corpus.sh failed:\n{exc.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def audio_manifest(audio_dir: Path) -> dict[str, dict]:
    """The clips' reference texts and durations, keyed by file name."""
    lines = (audio_dir / "manifest.jsonl").read_text().splitlines()
    return {rec["file"]: rec for rec in map(json.loads, filter(None, lines))}


@pytest.fixture(scope="session")
def whisper_model() -> str:
    """A Whisper checkpoint path (``ASR_TEST_WHISPER_CKPT``) or a model name (``WHISPER_MODEL``)."""
    if os.environ.get("ASR_TEST_WHISPER_CKPT"):
        return str(_env_path("ASR_TEST_WHISPER_CKPT", "run `make test-assets` to make tiny.en"))
    if os.environ.get("WHISPER_MODEL"):
        return os.environ["WHISPER_MODEL"]
    pytest.skip(
        "no Whisper weights: set ASR_TEST_WHISPER_CKPT=/path/tiny.en.pt (`make test-assets` "
        "makes one) or WHISPER_MODEL=tiny.en where the internet is reachable"
    )


@pytest.fixture(scope="session")
def crds_dir() -> Path:
    """Folder of CustomResourceDefinition YAML files: ``ASR_TEST_CRDS_DIR``, else the vendored
    ones in ``tests/data/crds/``."""
    return _given_dir("ASR_TEST_CRDS_DIR") or VENDORED_CRDS
