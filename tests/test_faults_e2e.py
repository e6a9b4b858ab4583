"""Faults during ``kfp-asr run-local``: the S3 endpoint down for a while, the LLM server killed.

Real parts throughout: the S3 server process (moto, or MinIO from the env), Whisper tiny.en
and llama-server. moto keeps its objects in memory, so "the S3 server process is down" is
played by a TCP forwarder process in front of it (``tests/fixtures/tcp_proxy.py``) that the
test kills and starts again: the clients see refused connections, as from a stopped server.
The LLM server is a real llama-server process that the test kills.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from minio import Minio

from components.common import ledger, storage
from tests.fixtures.llm_server import start_llama_server, stop_llama_server
from tests.fixtures.run_local import run_local
from tests.fixtures.s3 import S3Server, free_port
from tests.fixtures.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

CLIPS = ["utt06_en-gb+m3_s140.wav", "utt07_en-us_s130.wav", "utt11_en-us+m1_s155.wav"]
OUT = "results"


class Trigger(threading.Thread):
    """Runs ``action`` once, as soon as an object appears under ``prefix`` of ``bucket``.

    It reads the S3 server directly (not through the proxy), every 10 ms.
    """

    def __init__(
        self, server: S3Server, bucket: str, prefix: str, action: Callable[[], None]
    ) -> None:
        super().__init__(daemon=True)
        self.client = Minio(
            server.endpoint,
            server.access_key,
            server.secret_key,
            secure=server.secure,
            region="us-east-1",
        )
        self.bucket, self.prefix, self.action = bucket, prefix, action
        self.fired = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            if next(iter(self.client.list_objects(self.bucket, self.prefix, recursive=True)), None):
                self.action()
                self.fired.set()
                return
            time.sleep(0.01)


def _run(bucket: str, whisper_model: str, endpoint: str, model: str, *extra: str) -> int:
    """run-local over ``in/`` on one shard, decoding one file at a time: results are then
    stored file by file, which the outage triggers below wait for (batched decoding stores a
    whole batch at once)."""
    return run_local(
        f"s3://{bucket}/in/", f"s3://{bucket}/{OUT}", whisper_model, endpoint, model,
        "--shards", "1", "--batch-size", "1", *extra,
    )  # fmt: skip


def _upload(audio_dir: Path, bucket: str, names: list[str]) -> None:
    for name in names:
        storage.upload_file(audio_dir / name, f"s3://{bucket}/in/{name}")


def _metrics(bucket: str) -> dict:
    return json.loads(storage.read_text(f"s3://{bucket}/{OUT}/metrics.json"))


def _etags(bucket: str, folder: str) -> dict[str, str]:
    return {o.uri: o.etag for o in storage.list_objects(f"s3://{bucket}/{OUT}/{folder}/")}


def _expected_keys(bucket: str, names: list[str]) -> set[str]:
    per_input = {
        f"{folder}/{n}.{ext}"
        for n in names
        for folder, ext in (
            ("transcripts", "json"),
            ("summaries", "json"),
            ("text", "txt"),
            ("subtitles", "srt"),
            ("subtitles", "vtt"),
        )
    }
    ledger_keys = {
        f"_ledger/{o.uri.rsplit('/', 1)[1]}/{o.etag}.json"
        for o in storage.list_audio(f"s3://{bucket}/in/")
    }
    run_files = {"transcripts.jsonl", "summaries.jsonl", "report.html", "report.md", "metrics.json"}
    catalogue = {
        f"catalog/{folder}"
        for table in ("transcripts", "summaries")
        for folder in (f"{table}/part-000001.parquet", f"_jsonl/{table}/part-000001.jsonl")
    } | {"catalog/_index/transcripts.parquet", "catalog/_index/summaries.parquet"}
    runs = {f"runs/*/{name}" for name in [*run_files, "manifest.jsonl"]}
    return per_input | ledger_keys | run_files | catalogue | runs


def _keys(bucket: str) -> set[str]:
    """The keys under the output prefix, each run's folder written ``runs/*/``."""
    base = f"s3://{bucket}/{OUT}/"
    keys = {o.uri[len(base) :] for o in storage.list_objects(base)}
    return {re.sub(r"^runs/[^/]+/", "runs/*/", k) for k in keys}


@pytest.fixture
def s3_proxy(s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch):
    """A forwarder in front of the S3 server; the run's ``MINIO_ENDPOINT`` points at it."""
    proxy = TcpProxy(free_port(), int(s3_server.endpoint.rsplit(":", 1)[1]))
    proxy.start()
    monkeypatch.setenv("MINIO_ENDPOINT", f"127.0.0.1:{proxy.listen_port}")
    yield proxy
    proxy.stop()


def test_s3_outage_within_the_retry_window_is_survived(
    audio_dir: Path,
    whisper_model: str,
    llm_server,
    s3_server: S3Server,
    s3_bucket: str,
    s3_proxy: TcpProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The S3 endpoint goes away for 2 s after the first transcript is stored; the storage
    layer's retries (5: 0+1+2+4+8 s of backoff) ride it out: nothing lost or duplicated."""
    _upload(audio_dir, s3_bucket, CLIPS[:2])
    monkeypatch.setenv("MINIO_MAX_RETRIES", "5")

    def outage() -> None:
        s3_proxy.stop()
        time.sleep(2)
        s3_proxy.start()

    trigger = Trigger(s3_server, s3_bucket, f"{OUT}/transcripts/", outage)
    trigger.start()
    code = _run(s3_bucket, whisper_model, llm_server.endpoint, llm_server.model)
    trigger.done.set()
    trigger.join()
    assert trigger.fired.is_set(), "the outage never happened"
    assert code == 0
    m = _metrics(s3_bucket)
    assert (m["files_processed"], m["files_ok"], m["summaries_ok"]) == (2, 2, 2)
    assert _keys(s3_bucket) == _expected_keys(s3_bucket, CLIPS[:2])


def test_s3_outage_past_the_retry_window_fails_clearly_and_the_next_run_completes_the_rest(
    audio_dir: Path,
    whisper_model: str,
    llm_server,
    s3_server: S3Server,
    s3_bucket: str,
    s3_proxy: TcpProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """The S3 endpoint goes away after the first transcript is stored and stays away past
    the retries (2: about 1 s): the run fails naming MINIO_ENDPOINT; once it is back, the
    next run completes the rest and reuses the stored transcript."""
    _upload(audio_dir, s3_bucket, CLIPS[:2])
    monkeypatch.setenv("MINIO_MAX_RETRIES", "2")
    trigger = Trigger(s3_server, s3_bucket, f"{OUT}/transcripts/", s3_proxy.stop)
    trigger.start()
    code = _run(s3_bucket, whisper_model, llm_server.endpoint, llm_server.model, "--retries", "0")
    trigger.done.set()
    trigger.join()
    assert trigger.fired.is_set(), "the outage never happened"
    assert code == 1
    err = capsys.readouterr().err
    assert f"MINIO_ENDPOINT=127.0.0.1:{s3_proxy.listen_port} unreachable" in err

    s3_proxy.start()
    first = _etags(s3_bucket, "transcripts")
    assert len(first) == 1 and not ledger.finished(f"s3://{s3_bucket}/{OUT}")
    assert _run(s3_bucket, whisper_model, llm_server.endpoint, llm_server.model) == 0
    m = _metrics(s3_bucket)
    assert (m["files_processed"], m["files_ok"], m["summaries_ok"]) == (2, 2, 2)
    after = _etags(s3_bucket, "transcripts")
    assert {uri: after[uri] for uri in first} == first  # reused, not transcribed again
    assert _keys(s3_bucket) == _expected_keys(s3_bucket, CLIPS[:2])


def test_llm_server_killed_mid_run_then_only_missing_summaries_are_requested(
    audio_dir: Path,
    whisper_model: str,
    llm_server,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    """llama-server is killed once the first summary is stored: the transcripts are kept and
    the other summaries fail with a reason. The next run (a fresh server behind a counting
    forwarder) transcribes nothing and sends exactly one chat request per missing summary."""
    _upload(audio_dir, s3_bucket, CLIPS)
    doomed = start_llama_server(tmp_path)
    try:
        trigger = Trigger(s3_server, s3_bucket, f"{OUT}/summaries/", doomed.process.kill)
        trigger.start()
        code = _run(
            s3_bucket,
            whisper_model,
            doomed.endpoint,
            doomed.model,
            "--concurrency",
            "1",
            "--max-tokens",
            "128",
        )
        trigger.done.set()
        trigger.join()
    finally:
        stop_llama_server(doomed)
    assert trigger.fired.is_set(), "the LLM server was never killed"
    assert code == 3
    m = _metrics(s3_bucket)
    missing = m["summaries_failed"]
    assert (m["files_ok"], m["summaries_ok"] + missing) == (3, 3)
    assert missing >= 1 and m["summaries_ok"] >= 1
    failed = [
        json.loads(line)
        for line in storage.read_text(f"s3://{s3_bucket}/{OUT}/summaries.jsonl").splitlines()
    ]
    assert all(s["error"] for s in failed if s["status"] != "ok")
    transcripts = _etags(s3_bucket, "transcripts")
    assert len(transcripts) == 3

    port = urlsplit(llm_server.endpoint).port
    counter = TcpProxy(free_port(), port, b"POST /v1/chat/completions ", tmp_path / "count")
    counter.start()
    try:
        endpoint = f"http://127.0.0.1:{counter.listen_port}/v1"
        # Text summaries: one request per summary (a structured one may be asked again).
        args = ("--max-tokens", "32", "--no-structured-summary")
        assert _run(s3_bucket, whisper_model, endpoint, llm_server.model, *args) == 0
        requests_sent = counter.counted
    finally:
        counter.stop()
    assert requests_sent == missing
    m = _metrics(s3_bucket)
    assert (m["files_processed"], m["files_skipped"], m["summaries_ok"]) == (
        missing,
        3 - missing,
        missing,
    )
    assert _etags(s3_bucket, "transcripts") == transcripts  # nothing transcribed again
    assert _keys(s3_bucket) == _expected_keys(s3_bucket, CLIPS)
