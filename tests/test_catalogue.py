"""The cumulative catalogue: one record per input in JSON Lines and Parquet, latest version,
deleted inputs removed, restored from per-input records, and updates that touch only the
tail part (local folder and the S3 server)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from components.common import ledger, storage
from components.common.ledger import SUMMARIES_DIR, TRANSCRIPTS_DIR, Item
from components.common.records import Segment, SummaryRecord, TranscriptRecord
from components.report import catalogue
from components.report.catalogue import CatalogueOptions, update_catalogue


def _item(n: int, etag: str = "v1") -> dict:
    return {"source": f"/in/call{n:03d}.wav", "name": f"call{n:03d}.wav", "etag": etag}


def _records(items: list[dict], text: str = "hello", size: int = 0) -> tuple[list, list]:
    body = text + " " + "x" * size
    transcripts = [
        TranscriptRecord(
            it["source"],
            duration_s=10.0,
            text=f"{body} {it['etag']}",
            segments=[Segment(0, 2.5, body)],
            step_started_at="2026-12-01T00:00:00.000000Z",
        ).to_dict()
        for it in items
    ]
    summaries = [SummaryRecord(it["source"], summary=f"sum {it['etag']}").to_dict() for it in items]
    return transcripts, summaries


def _run(
    out: str, manifest: list[dict], new: list[dict], run: str, part_bytes: int, size: int = 0
) -> dict:
    t, s = _records(new, size=size)
    return update_catalogue(out, manifest, t, s, run, CatalogueOptions(part_bytes=part_bytes))


def _jsonl(out: str, table: str) -> list[dict]:
    return [json.loads(x) for x in storage.read_text(f"{out}/{table}.jsonl").splitlines()]


def _check(out: str, expected: dict[str, str]) -> None:
    """Both files and both datasets hold exactly one record per expected source, at its etag."""
    for table in ("transcripts", "summaries"):
        records = _jsonl(out, table)
        assert sorted(r["source"] for r in records) == sorted(expected)
        assert {r["source"]: r["etag"] for r in records} == expected


def test_three_runs_then_a_change_and_a_deletion_locally(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    small = 600  # small parts: the runs seal some
    first = [_item(i) for i in range(3)]
    up = _run(out, first, first, "run-1", small)
    assert (up["transcripts"].records, up["transcripts"].added) == (3, 3)
    _check(out, {i["source"]: "v1" for i in first})

    up = _run(out, first, [], "run-2", small)  # nothing new: the catalogue stays whole
    assert (up["transcripts"].records, up["transcripts"].parts_written) == (3, 0)
    _check(out, {i["source"]: "v1" for i in first})

    manifest = [*first, _item(3)]
    up = _run(out, manifest, [_item(3)], "run-3", small)
    assert (up["transcripts"].records, up["summaries"].records) == (4, 4)
    assert len(catalogue._Table(out, "transcripts").twin_sizes()) > 1

    changed = _item(0, "v2")  # first[1] left the bucket
    manifest = [changed, first[2], _item(3)]
    up = _run(out, manifest, [changed], "run-4", small)
    t = up["transcripts"]
    assert (t.records, t.replaced, t.removed, t.added) == (3, 1, 1, 0)
    expected = {changed["source"]: "v2", first[2]["source"]: "v1", _item(3)["source"]: "v1"}
    _check(out, expected)
    rows = (
        duckdb.connect()
        .execute(
            f"SELECT source, etag, run, segments[1].text AS seg FROM "
            f"read_parquet('{out}/catalog/transcripts/*.parquet') ORDER BY source"
        )
        .fetchall()
    )
    assert [(r[0], r[1]) for r in rows] == sorted(expected.items())
    assert {r[2] for r in rows} == {"run-1", "run-3", "run-4"}
    assert all(r[3].startswith("hello") for r in rows)
    summaries = (
        duckdb.connect()
        .execute(
            f"SELECT count(*), count(DISTINCT source) FROM '{out}/catalog/summaries/*.parquet'"
        )
        .fetchall()[0]
    )
    assert summaries == (3, 3)


def test_restores_finished_inputs_the_catalogue_lacks(tmp_path: Path) -> None:
    """An output prefix from before the catalogue, or an object that came back: the stored
    per-input records at the current ETag fill the catalogue without processing."""
    out = str(tmp_path / "out")
    items = [_item(i) for i in range(3)]
    t, s = _records(items)
    for it, tr, su in zip(items, t, s, strict=True):
        ledger.store_result(out, TRANSCRIPTS_DIR, Item.from_dict(it), tr)
        ledger.store_result(out, SUMMARIES_DIR, Item.from_dict(it), su)
    stale = _item(2, "v0")  # stored records of another version are not restored
    up = update_catalogue(out, [*items[:2], stale], [], [], "run-1", CatalogueOptions())
    assert (up["transcripts"].restored, up["transcripts"].records) == (2, 2)
    _check(out, {items[0]["source"]: "v1", items[1]["source"]: "v1"})
    assert {r["run"] for r in _jsonl(out, "transcripts")} == {""}


def test_an_update_cut_off_half_way_is_completed_by_the_next(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    items = [_item(i) for i in range(2)]
    _run(out, items, items, "run-1", 1 << 20)
    table = catalogue._Table(out, "transcripts")
    table.write_part(7, [json.dumps({"source": items[0]["source"], "status": "ok"}) + "\n"])
    _run(out, items, [], "run-2", 1 << 20)
    assert not Path(table.twin(7)).exists() and not Path(table.parquet(7)).exists()
    _check(out, {i["source"]: "v1" for i in items})


def test_s3_updates_read_only_the_tail_and_compose_the_jsonl_on_the_server(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Parts of 5 MiB (the S3 minimum): the sealed parts are neither read nor rewritten when
    new inputs arrive; a change inside a sealed part rewrites only that part."""
    out = f"s3://{s3_bucket}/results"
    part = catalogue.MIN_COMPOSE_BYTES
    big = 700 * 1024  # ~1.4 MiB per transcript line (text and segment): 4 lines seal a part
    items = [_item(i) for i in range(9)]
    _run(out, items, items, "run-1", part, size=big)
    sizes = catalogue._Table(out, "transcripts").twin_sizes()
    assert len(sizes) == 3 and all(
        v >= catalogue.MIN_COMPOSE_BYTES for v in list(sizes.values())[:2]
    )
    sealed = {o.uri: o.etag for o in storage.list_objects(f"{out}/catalog/transcripts/")}

    reads: list[str] = []
    real_read = storage.read_bytes
    monkeypatch.setattr(storage, "read_bytes", lambda uri: reads.append(uri) or real_read(uri))
    manifest = [*items, _item(9)]
    up = _run(out, manifest, [_item(9)], "run-2", part, size=big)
    assert (up["transcripts"].records, up["transcripts"].parts_written) == (10, 1)
    read_parts = {u.rpartition("/")[2] for u in reads if "/_jsonl/transcripts/" in u}
    assert read_parts == {"part-000003.jsonl"}  # the tail only
    after = {o.uri: o.etag for o in storage.list_objects(f"{out}/catalog/transcripts/")}
    assert {k: after[k] for k in list(sealed)[:2]} == dict(list(sealed.items())[:2])
    _check(out, {i["source"]: "v1" for i in manifest})

    changed = _item(0, "v2")  # its old line sits in sealed part 1
    manifest[0] = changed
    _run(out, manifest, [changed], "run-3", part, size=big)
    expected = {i["source"]: i["etag"] for i in manifest}
    _check(out, expected)
    rows = []
    for obj in storage.list_objects(f"{out}/catalog/transcripts/"):
        rows += pq.read_table(storage.download(obj.uri, tmp_path)).to_pylist()
    assert {r["source"]: r["etag"] for r in rows} == expected and len(rows) == 10
