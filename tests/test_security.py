"""No credential leaks anywhere; untrusted object keys never write outside the output prefix."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from components.common import ledger, storage
from components.common.errors import UnsafeKeyError
from components.common.records import TranscriptRecord, write_jsonl
from components.report.report import ReportOptions, build_report, export
from pipelines.asr_summarize import compile_pipeline
from pipelines.profiles import load_profiles
from tests.fixtures.run_local import run_local
from tests.fixtures.s3 import S3Server

CLIP = "utt07_en-us_s130.wav"
SECRETS = {
    "MINIO_ACCESS_KEY": "AKIAX9SECRETACCESSQ7",
    "MINIO_SECRET_KEY": "s3cr3t-key-value-7d1f0c9e2b",
    "LLM_API_KEY": "llm-api-key-secret-5a8e3b",
}
EVIL_KEY = "in/../../evil.wav"


@pytest.mark.slow
def test_no_secret_in_compiled_yaml_logs_metrics_report_or_export(
    audio_dir: Path,
    whisper_model: str,
    llm_server,
    s3_server: S3Server,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
    tmp_path: Path,
) -> None:
    """A run-local over S3 with distinctive credentials (the S3 server accepts any keys, the
    LLM server ignores the bearer token): none of them shows up in anything the product
    writes. The input also holds an object whose key climbs out of the prefix."""
    raw = boto3.client(
        "s3",
        endpoint_url=f"http://{s3_server.endpoint}",
        region_name="us-east-1",
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
    )
    raw.put_object(Bucket=s3_bucket, Key=EVIL_KEY, Body=(audio_dir / CLIP).read_bytes())
    storage.upload_file(audio_dir / CLIP, f"s3://{s3_bucket}/in/{CLIP}")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)

    out = f"s3://{s3_bucket}/out"
    code = run_local(
        f"s3://{s3_bucket}/in/", out, whisper_model, llm_server.endpoint, llm_server.model,
        "--shards", "1", "--max-tokens", "16",
    )  # fmt: skip
    logs = capfd.readouterr()
    assert code == 3  # the escaping key is a failed record; the run goes on

    texts = {"stdout": logs.out, "stderr": logs.err}
    keys = [o.uri for o in storage.list_objects(f"s3://{s3_bucket}/")]
    for uri in keys:
        if uri.startswith(out + "/"):
            texts[uri] = storage.read_bytes(uri).decode("utf-8", "replace")
    for name in load_profiles()[0]:
        texts[f"compiled {name}"] = compile_pipeline(name, tmp_path / f"{name}.yaml").read_text()
    texts["compiled/"] = (Path(__file__).parents[1] / "compiled/asr_summarize.yaml").read_text()
    assert len(texts) > 15 and f"{out}/metrics.json" in texts and f"{out}/report.html" in texts
    leaks = [
        (where, name)
        for where, text in texts.items()
        for name, value in SECRETS.items()
        if value in text
    ]
    assert leaks == []

    # outputs stay below the output prefix, whatever the input keys
    assert {k for k in keys if not k.startswith((f"s3://{s3_bucket}/in/", out + "/"))} == set()
    evil_name = ledger.relative_name(f"s3://{s3_bucket}/{EVIL_KEY}", f"s3://{s3_bucket}/in/")
    assert evil_name.startswith("evil~") and "/" not in evil_name
    evil = json.loads(storage.read_text(f"{out}/transcripts/{evil_name}.json"))
    assert evil["status"] == "failed" and "would leave the work folder" in evil["error"]
    metrics = json.loads(texts[f"{out}/metrics.json"])
    assert (metrics["files_ok"], metrics["files_failed"]) == (1, 1)


def test_output_keys_from_untrusted_names_are_refused(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    for name in ("../x.wav", "a/../../x.wav", "/etc/x.wav"):
        with pytest.raises(UnsafeKeyError):
            storage.child(out, name)
        with pytest.raises(UnsafeKeyError):
            ledger.result_uri(out, ledger.TRANSCRIPTS_DIR, name)
    with pytest.raises(UnsafeKeyError):
        storage.child(out, "")
    assert storage.child(out, "team/a.wav.json") == f"{out}/team/a.wav.json"
    assert ledger.relative_name("s3://b/in/../../x.wav", "s3://b/in/").startswith("x~")


def test_report_export_to_a_local_folder_stays_inside_it(tmp_path: Path) -> None:
    """A manifest naming a file with ``..`` (tampered, or an old plan): the export refuses
    it before writing any per-file output outside the folder."""
    source = str(tmp_path / "in" / "evil.wav")
    record = TranscriptRecord(
        source, language="en", duration_s=1.0, text="hi", model="m", processing_s=1.0
    )
    write_jsonl(tmp_path / "t.jsonl", [record])
    write_jsonl(tmp_path / "s.jsonl", [{"source": source, "status": "ok", "summary": "s"}])
    out = tmp_path / "deep" / "out"
    for name, raises in (("evil.wav", False), ("../../evil.wav", True)):
        write_jsonl(
            tmp_path / "m.jsonl",
            [
                {
                    "source": source,
                    "name": name,
                    "size": 1,
                    "etag": "e",
                    "duration_s": 1.0,
                    "shard": 0,
                }
            ],
        )
        report = build_report(
            str(tmp_path / "m.jsonl"),
            [str(tmp_path / "t.jsonl")],
            [str(tmp_path / "s.jsonl")],
            str(tmp_path / "in"),
            ReportOptions(),
        )
        if raises:
            with pytest.raises(UnsafeKeyError):
                export(str(out), report)
        else:
            export(str(out), report)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {p for p in written if not p.startswith("deep/out/")} == {
        "t.jsonl",
        "s.jsonl",
        "m.jsonl",
    }
    assert (out / "text" / "evil.wav.txt").read_text() == "hi\n"
