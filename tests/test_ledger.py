"""Deterministic result keys and the ledger, on local folders and the S3 server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.common import ledger, storage
from components.common.errors import ConfigError


def test_relative_names() -> None:
    assert ledger.relative_name("s3://b/calls/2026/a.wav", "s3://b/calls/") == "2026/a.wav"
    assert ledger.relative_name("s3://b/calls/a.wav", "s3://b/calls") == "a.wav"
    assert ledger.relative_name("s3://b/x.wav", "s3://b/x.wav") == "x.wav"
    assert ledger.relative_name("/data/in/sub/a.wav", "/data/in") == "sub/a.wav"
    assert ledger.relative_name("/data/in/a.wav", "/data/in/a.wav") == "a.wav"
    # a key with .. components never becomes a path outside the output prefix, and keys that
    # are no clean path get their base name plus a digest of the URI: distinct, stable
    odd = ["s3://b/calls/../../x.wav", "s3://b/calls/a/../x.wav", "s3://b/calls//x.wav"]
    names = [ledger.relative_name(uri, "s3://b/calls/") for uri in odd]
    assert all(re.fullmatch(r"x~[0-9a-f]{16}\.wav", n) for n in names), names
    assert len({*names, "x.wav"}) == 4
    assert names == [ledger.relative_name(uri, "s3://b/calls/") for uri in odd]
    assert ledger.relative_name("s3://b/calls//x.wav", "s3://b/calls") == names[2]


def _roundtrip(output: str) -> None:
    a = ledger.Item("s3://in/a.wav", "a.wav", "etag-1", 10)
    b = ledger.Item("s3://in/sub/b.wav", "sub/b.wav", '"e/2"', 20)
    assert ledger.finished(output) == set()
    ledger.store_result(output, ledger.TRANSCRIPTS_DIR, a, {"source": a.source, "status": "ok"})
    ledger.store_result(output, ledger.TRANSCRIPTS_DIR, b, {"source": b.source, "status": "failed"})
    assert ledger.load_result(output, ledger.TRANSCRIPTS_DIR, a)["etag"] == "etag-1"
    assert ledger.load_result(output, ledger.TRANSCRIPTS_DIR, b) is None  # failed: redo
    changed = ledger.Item(a.source, a.name, "etag-2", 10)
    assert ledger.load_result(output, ledger.TRANSCRIPTS_DIR, changed) is None
    assert ledger.load_results(output, ledger.TRANSCRIPTS_DIR, [a, b])[1] is None

    ledger.mark_finished(output, a)
    ledger.mark_finished(output, b)
    done = ledger.finished(output)
    assert ledger.is_finished(a, done) and ledger.is_finished(b, done)
    assert not ledger.is_finished(changed, done)
    # marking again is idempotent: same key, nothing duplicated
    ledger.mark_finished(output, a)
    assert ledger.finished(output) == done


def test_ledger_on_local_folder(tmp_path: Path) -> None:
    _roundtrip(str(tmp_path / "out"))


def test_ledger_on_s3(s3_bucket: str) -> None:
    _roundtrip(f"s3://{s3_bucket}/results")
    keys = [o.uri for o in storage.list_objects(f"s3://{s3_bucket}/results/_ledger/")]
    assert len(keys) == 2


def test_ledger_of_missing_bucket_is_a_config_error(s3_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ledger.finished("s3://no-such-output-bucket/results")
