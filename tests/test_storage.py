"""The storage layer against a real S3 server process and the local file system."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from components.common import storage
from components.common.errors import ConfigError, StorageError, UnsafeKeyError


@pytest.mark.parametrize(
    "key",
    ["../../etc/x", "/etc/passwd", "a/../../b", "..", "", "a/./../../c", "..\\..\\x"],
)
def test_safe_join_refuses_keys_that_escape(tmp_path: Path, key: str) -> None:
    with pytest.raises(UnsafeKeyError):
        storage.safe_join(tmp_path, key)


def test_safe_join_keeps_nested_keys_inside(tmp_path: Path) -> None:
    expected = tmp_path.resolve() / "calls/2026/a.wav"
    assert storage.safe_join(tmp_path, "calls/2026/a.wav") == expected


def test_split_s3_uri() -> None:
    assert storage.split_s3_uri("s3://bucket/a/b.wav") == ("bucket", "a/b.wav")
    assert storage.split_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(ConfigError):
        storage.split_s3_uri("s3:///key")


def test_settings_name_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MINIO_ENDPOINT", "minio:9000")
    with pytest.raises(ConfigError, match="MINIO_ACCESS_KEY, MINIO_SECRET_KEY"):
        storage.S3Settings.from_env()


def test_settings_parse_endpoint_forms() -> None:
    env = {"MINIO_ACCESS_KEY": "a", "MINIO_SECRET_KEY": "s3cr3t-value"}
    https = storage.S3Settings.from_env({**env, "MINIO_ENDPOINT": "https://s3.example:9000"})
    assert (https.endpoint, https.secure) == ("s3.example:9000", True)
    plain = storage.S3Settings.from_env({**env, "MINIO_ENDPOINT": "minio-service.kubeflow:9000"})
    assert (plain.endpoint, plain.secure) == ("minio-service.kubeflow:9000", False)
    forced = storage.S3Settings.from_env(
        {**env, "MINIO_ENDPOINT": "minio:9000", "MINIO_SECURE": "true"}
    )
    assert forced.secure
    assert "s3cr3t-value" not in repr(forced)


def test_local_listing_and_roundtrip(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("b.wav", "sub/a.MP3", "notes.txt", "c.flac"):
        (tmp_path / "in" / name).write_bytes(b"x" * 10)
    audio = storage.list_audio(str(tmp_path / "in"))
    assert [Path(o.uri).name for o in audio] == ["b.wav", "c.flac", "a.MP3"]
    assert all(o.size == 10 for o in audio)
    out = str(tmp_path / "out" / "deep" / "r.txt")
    storage.write_text(out, "héllo")
    assert storage.read_text(out) == "héllo"
    assert storage.exists(out) and not storage.exists(out + ".missing")
    # local files are used in place, not copied
    assert storage.download(audio[0].uri, tmp_path / "work") == Path(audio[0].uri)
    with pytest.raises(ConfigError, match="does not exist"):
        list(storage.list_objects(str(tmp_path / "nowhere")))


def test_s3_list_download_upload(tmp_path: Path, s3_bucket: str) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "big.wav"
    src.write_bytes(payload)
    storage.upload_file(src, f"s3://{s3_bucket}/calls/big.wav")
    storage.write_text(f"s3://{s3_bucket}/calls/ref.txt", "reference")
    storage.write_bytes(f"s3://{s3_bucket}/calls/x/y.mp3", b"id3")
    storage.write_bytes(f"s3://{s3_bucket}/other/z.wav", b"RIFF")

    listed = storage.list_audio(f"s3://{s3_bucket}/calls/")
    assert [o.uri for o in listed] == [
        f"s3://{s3_bucket}/calls/big.wav",
        f"s3://{s3_bucket}/calls/x/y.mp3",
    ]
    assert listed[0].size == len(payload) and listed[0].etag

    local = storage.download(listed[0].uri, tmp_path / "work")
    assert local == (tmp_path / "work" / "calls" / "big.wav").resolve()
    assert hashlib.sha256(local.read_bytes()).digest() == hashlib.sha256(payload).digest()
    assert storage.read_text(f"s3://{s3_bucket}/calls/ref.txt") == "reference"
    assert storage.exists(f"s3://{s3_bucket}/other/z.wav")
    assert not storage.exists(f"s3://{s3_bucket}/other/none.wav")


def test_s3_multipart_upload(tmp_path: Path, s3_bucket: str) -> None:
    big = tmp_path / "model.pt"
    big.write_bytes(os.urandom(storage.PART_SIZE + 1024 * 1024))
    uri = f"s3://{s3_bucket}/models/model.pt"
    storage.upload_file(big, uri)
    etag = next(iter(storage.list_objects(uri))).etag
    assert etag.endswith("-2"), f"expected a 2-part multipart ETag, got {etag}"
    assert storage.download(uri, tmp_path / "w").read_bytes() == big.read_bytes()


def test_s3_traversal_key_never_writes_outside(tmp_path: Path, s3_bucket: str) -> None:
    # S3 servers accept such keys (the minio SDK refuses to write them, boto3 does not);
    # a download must refuse them.
    boto3 = pytest.importorskip("boto3")
    env = storage.S3Settings.from_env()
    boto3.client(
        "s3",
        endpoint_url=f"http://{env.endpoint}",
        aws_access_key_id=env.access_key,
        aws_secret_access_key=env.secret_key,
        region_name="us-east-1",
    ).put_object(Bucket=s3_bucket, Key="a/../../../escape.wav", Body=b"evil")
    work = tmp_path / "work"
    work.mkdir()
    uris = [o.uri for o in storage.list_objects(f"s3://{s3_bucket}/")]
    assert any("escape" in u for u in uris)
    for uri in uris:
        with pytest.raises(UnsafeKeyError):
            storage.download(uri, work)
    assert not list(tmp_path.rglob("escape.wav"))


def test_s3_missing_bucket_is_a_config_error(s3_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="no-such-bucket-here"):
        storage.list_audio("s3://no-such-bucket-here/prefix/")


def test_s3_bad_credentials_name_the_settings(
    s3_server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if s3_server.process is not None:
        pytest.skip("moto accepts any signature; set MINIO_ENDPOINT/KEYS to run this on MinIO")
    monkeypatch.setenv("MINIO_SECRET_KEY", "wrong-secret")
    with pytest.raises(ConfigError, match="MINIO_SECRET_KEY"):
        storage.list_audio(f"s3://{s3_bucket}/")


def test_s3_unreachable_endpoint_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fixtures.s3 import free_port

    monkeypatch.setenv("MINIO_ENDPOINT", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("MINIO_ACCESS_KEY", "k")
    monkeypatch.setenv("MINIO_SECRET_KEY", "s")
    monkeypatch.setenv("MINIO_REGION", "us-east-1")
    monkeypatch.setenv("MINIO_MAX_RETRIES", "1")
    with pytest.raises(StorageError, match=r"MINIO_ENDPOINT=127\.0\.0\.1"):
        storage.read_text("s3://bucket/key.txt")
