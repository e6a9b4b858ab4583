"""Whisper settings checked before any audio is read: the language, and whether the model
can transcribe it.

The plan step and ``kfp-asr run-local`` call :func:`check_language` first, so a wrong
language is a :class:`ConfigError` naming the setting before any step (or GPU pod) starts;
the transcribe step checks again with the loaded model.
"""

from __future__ import annotations

import os

import torch
import whisper
from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

from components.common.errors import ConfigError

#: Vocabulary size of the multilingual models; the English-only (``.en``) ones have one less.
MULTILINGUAL_VOCAB = 51865


def normalize_language(language: str | None, setting: str = "language") -> str | None:
    """A Whisper language code, ``None`` for detection; unknown values raise ConfigError."""
    if language is None or language.strip().lower() in ("", "auto"):
        return None
    value = language.strip().lower()
    if value in LANGUAGES:
        return value
    if value in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[value]
    raise ConfigError(
        f"{setting}={language!r} is not a Whisper language: use 'auto' or a code such as "
        f"{', '.join(sorted(LANGUAGES)[:12])}, ..."
    )


def english_only(model: str) -> bool | None:
    """True for an English-only model, False for a multilingual one, ``None`` when that is
    not known without fetching it (an ``s3://`` checkpoint, a file that is not there).

    Model names say it (``*.en``); a checkpoint file's vocabulary size does (read through a
    memory map: only the header is loaded).
    """
    if model in whisper.available_models():
        return model.endswith(".en")
    if not os.path.isfile(model):
        return None
    try:
        checkpoint = torch.load(model, map_location="cpu", mmap=True, weights_only=True)
        return int(checkpoint["dims"]["n_vocab"]) < MULTILINGUAL_VOCAB
    except Exception:  # not readable this way: the transcribe step reports it
        return None


def check_language(
    language: str | None,
    model: str,
    setting: str = "language",
    model_setting: str = "whisper_model",
) -> str | None:
    """The language code of ``language`` (``None``: detect), checked against ``model``.

    Raises :class:`ConfigError` naming ``setting`` for an unknown language, or a language
    other than English for an English-only model.
    """
    code = normalize_language(language, setting)
    if code not in (None, "en") and english_only(model):
        raise ConfigError(
            f"{setting}={language!r}, but {model_setting}={model!r} is English-only: "
            "use 'en', 'auto' or a multilingual model"
        )
    return code
