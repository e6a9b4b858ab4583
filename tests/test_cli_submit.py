"""``kfp-asr submit`` / ``schedule`` against a small KFP v2beta1 server that records requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pipelines.asr_summarize import compile_pipeline
from pipelines.cli import main


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes


@dataclass
class FakeKfp:
    """Answers the v2beta1 calls kfp.Client makes; ``pipelines`` are the existing ones."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    pipelines: list[dict] = field(default_factory=list)

    def answer(self, method: str, path: str) -> dict:
        api = "/apis/v2beta1"
        routes = {
            ("GET", f"{api}/pipelines"): {"pipelines": self.pipelines} if self.pipelines else {},
            ("POST", f"{api}/pipelines/upload"): {
                "pipeline_id": "pipe-1",
                "display_name": "asr-summarize",
            },
            ("GET", f"{api}/pipelines/pipe-1/versions"): {
                "pipeline_versions": [{"pipeline_id": "pipe-1", "pipeline_version_id": "ver-1"}]
            },
            ("POST", f"{api}/pipelines/upload_version"): {
                "pipeline_id": "pipe-1",
                "pipeline_version_id": "ver-2",
            },
            ("GET", f"{api}/experiments"): {},
            ("POST", f"{api}/experiments"): {"experiment_id": "exp-1", "display_name": "nightly"},
            ("POST", f"{api}/runs"): {"run_id": "run-1"},
            ("POST", f"{api}/recurringruns"): {"recurring_run_id": "rr-1"},
        }
        return routes[(method, path)]

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]


@pytest.fixture
def kfp_server() -> Iterator[FakeKfp]:
    fake = FakeKfp()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fake.requests.append(Recorded(self.command, url.path, parse_qs(url.query), body))
            try:
                payload, status = json.dumps(fake.answer(self.command, url.path)).encode(), 200
            except KeyError:
                payload, status = b'{"error": "unknown route"}', 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _handle

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline(None, tmp_path_factory.mktemp("pkg") / "asr_summarize.yaml")


def test_submit_uploads_the_package_and_starts_a_typed_run(
    kfp_server: FakeKfp, package: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(
        [
            "submit",
            "--host",
            kfp_server.url,
            "--namespace",
            "team-a",
            "--experiment",
            "nightly",
            "--run-name",
            "calls-2024-05-01",
            "--package",
            str(package),
            "--param",
            "input_uri=s3://calls/2024-05-01/",
            "--param",
            "num_shards=12",
            "--param",
            "whisper_model=large-v3",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "run run-1 of pipeline pipe-1 version ver-1 in experiment exp-1" in out

    (upload,) = kfp_server.calls("POST", "/apis/v2beta1/pipelines/upload")
    assert upload.query["name"] == ["asr-summarize"]
    assert package.read_bytes() in upload.body  # the multipart body carries the YAML as is

    (experiment,) = kfp_server.calls("POST", "/apis/v2beta1/experiments")
    assert json.loads(experiment.body) == {"display_name": "nightly", "namespace": "team-a"}

    (run,) = kfp_server.calls("POST", "/apis/v2beta1/runs")
    body = json.loads(run.body)
    assert body["display_name"] == "calls-2024-05-01"
    assert body["experiment_id"] == "exp-1"
    assert body["service_account"] == "asr-pipeline-runner"
    assert body["pipeline_version_reference"] == {
        "pipeline_id": "pipe-1",
        "pipeline_version_id": "ver-1",
    }
    assert body["runtime_config"]["parameters"] == {
        "input_uri": "s3://calls/2024-05-01/",
        "num_shards": 12,
        "whisper_model": "large-v3",
    }


def test_schedule_adds_a_version_to_an_existing_pipeline_and_a_cron_recurring_run(
    kfp_server: FakeKfp, package: Path
) -> None:
    kfp_server.pipelines = [{"pipeline_id": "pipe-1", "display_name": "asr-summarize"}]
    code = main(
        [
            "schedule",
            "--host",
            kfp_server.url,
            "--cron",
            "0 0 2 * * *",
            "--max-concurrency",
            "2",
            "--no-catchup",
            "--package",
            str(package),
            "--param",
            "output_uri=s3://results/nightly/",
        ]
    )
    assert code == 0
    assert not kfp_server.calls("POST", "/apis/v2beta1/pipelines/upload")
    (version,) = kfp_server.calls("POST", "/apis/v2beta1/pipelines/upload_version")
    assert version.query["pipelineid"] == ["pipe-1"]
    assert version.query["name"][0].startswith("asr-summarize-")

    (recurring,) = kfp_server.calls("POST", "/apis/v2beta1/recurringruns")
    body = json.loads(recurring.body)
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert int(body["max_concurrency"]) == 2
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["pipeline_version_reference"] == {
        "pipeline_id": "pipe-1",
        "pipeline_version_id": "ver-2",
    }
    assert body["runtime_config"]["parameters"] == {"output_uri": "s3://results/nightly/"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "shards=3"], "shards is not a pipeline parameter"),
        (["--param", "num_shards=three"], "num_shards='three'"),
        (["--param", "num_shards"], "is not NAME=VALUE"),
    ],
)
def test_bad_params_exit_2_before_any_request(
    kfp_server: FakeKfp,
    package: Path,
    capsys: pytest.CaptureFixture,
    args: list[str],
    message: str,
) -> None:
    assert main(["submit", "--host", kfp_server.url, "--package", str(package), *args]) == 2
    assert message in capsys.readouterr().err
    assert kfp_server.requests == []


def test_cron_needs_six_fields(
    kfp_server: FakeKfp, package: Path, capsys: pytest.CaptureFixture
) -> None:
    assert (
        main(
            ["schedule", "--host", kfp_server.url, "--cron", "0 2 * * *", "--package", str(package)]
        )
        == 2
    )
    assert "needs 6 fields" in capsys.readouterr().err
    assert kfp_server.requests == []
