"""Shared pytest configuration.

Test material lives outside the repository and is found through environment variables
(``.ci/run`` and ``make test`` set them). A test that needs a missing piece skips and says
which variable provides it:

- ``ASR_TEST_AUDIO_DIR``: spoken English clips with ``manifest.jsonl`` references.
- ``ASR_TEST_WHISPER_CKPT``: an openai-whisper checkpoint file (tiny.en); or
  ``WHISPER_MODEL=tiny.en`` where the internet is reachable.
- ``ASR_TEST_LLM_GGUF`` and ``LLAMA_SERVER_BIN``: a GGUF model and llama.cpp's server.
- ``ASR_TEST_CRDS_DIR``: CustomResourceDefinitions for manifest validation.
- ``MINIO_ENDPOINT``, ``MINIO_ACCESS_KEY``, ``MINIO_SECRET_KEY``: a real MinIO; without them
  the S3 tests start a moto server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.llm_server",
]


def _env_path(var: str, how: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"{var} is not set: {how}")
    path = Path(value)
    if not path.exists():
        pytest.skip(f"{var}={value} does not exist: {how}")
    return path


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    """Folder of test clips with ``manifest.jsonl`` (``{"file", "text", "duration_s"}``)."""
    return _env_path("ASR_TEST_AUDIO_DIR", "point it at a folder of clips with manifest.jsonl")


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
    """Folder of CustomResourceDefinition YAML files."""
    return _env_path("ASR_TEST_CRDS_DIR", "point it at the Kueue/GAIE/llm-d/DAS CRDs")
