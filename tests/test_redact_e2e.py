"""End to end over the planted-PII corpus: ``run-local`` with real Whisper and llama-server.

With ``--redact outputs`` no planted value (card, phone, e-mail, surname) survives in any file
under the output folder, while the ``--raw-output`` folder keeps what Whisper heard (so the
scan is not empty-handed). With ``--redact before_llm`` none reaches the LLM server either:
every byte sent to it goes through a recording forwarder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.llm_server import LlamaServer, start_llama_server, stop_llama_server
from tests.fixtures.pii_corpus import CALLS, Planted, survivors, synthesize
from tests.fixtures.recording_proxy import RecordingProxy
from tests.fixtures.run_local import run_local

#: Two calls with planted values and one clean call (the bench runs them all).
_NAMES = ("pii01_card_phone", "pii02_card_phone", "clean01_order")
SUBSET = tuple(c for c in CALLS if c.name in _NAMES)
PLANTED: tuple[Planted, ...] = tuple(p for c in SUBSET for p in c.planted)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pii-corpus")
    try:
        synthesize(folder, SUBSET)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    return folder


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    # --no-jinja: the tiny GGUF's grammar setup needs the legacy template path (structured).
    server = start_llama_server(
        tmp_path_factory.mktemp("llm"), ctx_size=8192, parallel=2, extra_args=("--no-jinja",)
    )
    yield server
    stop_llama_server(server)


def scan(folder: Path) -> dict[str, list[str]]:
    """File (relative) → entity types of the planted values readable in it."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        hits = survivors(path.read_text(encoding="utf-8", errors="replace"), PLANTED)
        if hits:
            found[str(path.relative_to(folder))] = [f"{p.entity}:{p.needle}" for p in hits]
    return found


def test_outputs_mode_leaves_no_planted_value_in_any_output_file(
    corpus, llm, whisper_model, tmp_path
):
    out, raw = tmp_path / "out", tmp_path / "raw"
    args = ("--redact", "outputs", "--raw-output", str(raw), "--max-tokens", "1024")
    rc = run_local(str(corpus), str(out), whisper_model, llm.endpoint, llm.model, *args)
    assert rc == 0
    heard = scan(raw)
    # Whisper heard planted values (the phone numbers at least; tiny.en may drop digits of a
    # card number), so the scan below has something to find.
    heard_types = {hit.split(":")[0] for hits in heard.values() for hit in hits}
    assert "PHONE_NUMBER" in heard_types, heard
    assert scan(out) == {}
    summaries = [json.loads(line) for line in (out / "summaries.jsonl").read_text().splitlines()]
    assert len(summaries) == len(SUBSET) and all(s["status"] == "ok" for s in summaries)
    transcripts = (out / "transcripts.jsonl").read_text()
    assert "[CARD]" in transcripts and "[PHONE]" in transcripts
    report = (out / "report.html").read_text()
    assert "Action items and topics" in report


def test_before_llm_mode_sends_no_planted_value_to_the_llm(corpus, llm, whisper_model, tmp_path):
    out = tmp_path / "out"
    port = int(llm.endpoint.rsplit(":", 1)[1].split("/")[0])
    with RecordingProxy(port) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.port}/v1"
        args = ("--redact", "before_llm", "--max-tokens", "1024")
        rc = run_local(str(corpus), str(out), whisper_model, endpoint, llm.model, *args)
        sent = proxy.received().decode("utf-8", errors="replace")
    assert rc == 0
    assert "/chat/completions" in sent
    assert "[CARD]" in sent and "[PHONE]" in sent
    assert survivors(sent, PLANTED) == []
    assert scan(out) == {}
