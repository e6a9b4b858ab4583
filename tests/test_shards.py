"""The plan's shard lists: written once, each task reads exactly its own line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.common.errors import ConfigError
from components.common.ledger import Item
from components.common.shards import read_shard, write_shards


def test_every_item_is_read_back_by_exactly_one_shard(tmp_path: Path) -> None:
    items = [Item(f"s3://b/in/{i}.wav", f"{i}.wav", f"e{i}", i) for i in range(10)]
    shards = [items[0:4], [], items[4:10]]
    path = tmp_path / "shards.jsonl"
    assert write_shards(path, shards) == [0, 1, 2]
    read = [read_shard(path, k) for k in range(3)]
    assert read == shards  # order kept: heaviest first, as the planner placed them
    assert read_shard(path, 2.0) == shards[2]  # kfp.local hands integer items over as floats
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["shard"] for line in lines] == [0, 1, 2]


def test_a_missing_shard_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "shards.jsonl"
    write_shards(path, [[]])
    with pytest.raises(ConfigError, match="shard 3 is not in the plan's shard list"):
        read_shard(path, 3)


def test_loop_items_stay_small_whatever_the_shard_sizes(tmp_path: Path) -> None:
    big = [[Item(f"s3://b/{s}/{i}.wav", f"{i}.wav", "e", 1) for i in range(5000)] for s in range(7)]
    indices = write_shards(tmp_path / "shards.jsonl", big)
    assert len(json.dumps(indices)) == len(json.dumps(list(range(7))))
    assert max(len(json.dumps(i)) for i in indices) == 1
