"""The planner: LPT balance properties, probing real files locally and on S3, the KFP step."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from components.common import storage
from components.common.errors import ConfigError
from components.common.ledger import IGNORE, PROCESS
from components.plan.planner import PlanOptions, balance, lower_bound, makespan, plan

weights_st = st.lists(st.floats(min_value=0.0, max_value=1e5, allow_nan=False), max_size=200)


@given(weights=weights_st, num_shards=st.integers(1, 40))
@example(weights=[0.0, 0.0], num_shards=2)  # found by a CI run: zero-length files
def test_every_file_in_exactly_one_shard(weights: list[float], num_shards: int) -> None:
    shards = balance(weights, num_shards)
    assert sorted(i for shard in shards for i in shard) == list(range(len(weights)))
    assert len(shards) == min(num_shards, len(weights))
    assert all(shards)


@given(weights=weights_st, num_shards=st.integers(1, 40))
def test_lpt_bound_holds_for_any_set(weights: list[float], num_shards: int) -> None:
    """LPT's guarantee: makespan <= max(longest, total/N + the (N+1)-th longest file)."""
    shards = balance(weights, num_shards)
    ranked = sorted(weights, reverse=True)
    next_longest = ranked[num_shards] if len(ranked) > num_shards else 0.0
    bound = max(max(weights, default=0.0), sum(weights) / num_shards + next_longest)
    assert makespan(weights, shards) <= bound * (1 + 1e-9) + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    num_shards=st.integers(1, 32),
    files_per_shard=st.integers(20, 60),
    sigma=st.floats(0.5, 2.0),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_makespan_within_5_percent_on_skewed_sets(
    num_shards: int, files_per_shard: int, sigma: float, seed: int, data: st.DataObject
) -> None:
    """Many short calls (log-normal) and a few hour-long recordings: within 5 % of the bound."""
    rng = random.Random(seed)
    weights = [rng.lognormvariate(4.0, sigma) for _ in range(num_shards * files_per_shard)]
    weights += [rng.uniform(1800, 3600) for _ in range(data.draw(st.integers(0, num_shards)))]
    shards = balance(weights, num_shards)
    assert makespan(weights, shards) <= 1.05 * lower_bound(weights, num_shards)


def test_balance_is_deterministic_and_rejects_zero_shards() -> None:
    weights = [5.0, 5.0, 3.0, 3.0, 2.0, 2.0]
    assert balance(weights, 2) == balance(list(weights), 2) == [[0, 2, 4], [1, 3, 5]]
    with pytest.raises(ConfigError, match="num_shards"):
        balance(weights, 0)


CLIPS = [
    "long01_meeting_en-us_s165.wav",
    "utt01_en-us_s175.wav",
    "utt03_en+m3_s170.mp3",
    "long02_news_en-gb+m3_s160.flac",
    "utt07_en-us_s130.wav",
]


@pytest.fixture
def clip_dir(audio_dir: Path, tmp_path: Path) -> Path:
    """Five clips (WAV, MP3, FLAC, two long) and a reference text in a fresh folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in CLIPS:
        shutil.copy(audio_dir / name, folder / name)
    (folder / "utt01_en-us_s175.txt").write_text("not audio: a reference text")
    return folder


def _check_plan(result, expected: dict[str, float], num_shards: int) -> None:
    ignored = {Path(f.source).name: f.reason for f in result.files if f.action == IGNORE}
    assert set(ignored) <= {"utt01_en-us_s175.txt"}  # the reference text, listed as ignored
    assert all(r == "reference transcript of utt01_en-us_s175.wav" for r in ignored.values())
    files = [f for f in result.files if f.action == PROCESS]
    by_name = {Path(f.source).name: f for f in files}
    assert set(by_name) == set(expected)
    for name, duration in expected.items():
        assert by_name[name].duration_s == pytest.approx(duration, abs=0.2)
        assert by_name[name].weight_s == pytest.approx(duration, abs=0.2)
    flat = [it.source for shard in result.shards for it in shard]
    assert sorted(flat) == sorted(f.source for f in files)
    assert len(result.shards) == num_shards
    for index, shard in enumerate(result.shards):
        assert all(by_name[Path(it.source).name].shard == index for it in shard)
        weights = [by_name[Path(it.source).name].weight_s for it in shard]
        assert weights == sorted(weights, reverse=True)
    weights = [f.weight_s for f in files]
    loads = [sum(by_name[Path(it.source).name].weight_s for it in shard) for shard in result.shards]
    assert max(loads) == pytest.approx(makespan(weights, balance(weights, num_shards)))


def test_plan_probes_local_files(clip_dir: Path, audio_manifest: dict[str, dict]) -> None:
    expected = {n: audio_manifest[n.rsplit(".", 1)[0] + ".wav"]["duration_s"] for n in CLIPS}
    result = plan(str(clip_dir), PlanOptions(num_shards=2))
    _check_plan(result, expected, num_shards=2)
    # The two long files (73 s and 68.5 s) go to different shards.
    long_shards = {f.shard for f in result.files if f.source.endswith(CLIPS[0])}
    long_shards |= {f.shard for f in result.files if f.source.endswith(CLIPS[3])}
    assert long_shards == {0, 1}


def test_unprobeable_file_weighs_its_size_at_the_batch_byte_rate(clip_dir: Path) -> None:
    wav = clip_dir / "utt07_en-us_s130.wav"
    broken = clip_dir / "broken.wav"
    broken.write_bytes(b"\x00not a RIFF header" * 4000)
    result = plan(str(clip_dir), PlanOptions(num_shards=3))
    files = {Path(f.source).name: f for f in result.files}
    assert files["broken.wav"].duration_s is None
    # Only WAVs share one byte rate; the median rate of the batch is the 16-bit mono WAV one
    # here (3 of 5 probed files), so the estimate is size / (wav bytes per second).
    wav_rate = wav.stat().st_size / files[wav.name].duration_s
    assert files["broken.wav"].weight_s == pytest.approx(broken.stat().st_size / wav_rate, rel=0.05)
    assert any(it.source == str(broken) for shard in result.shards for it in shard)


def test_more_shards_than_files_gives_one_file_per_shard(clip_dir: Path) -> None:
    result = plan(str(clip_dir), PlanOptions(num_shards=16))
    assert sorted(len(s) for s in result.shards) == [1] * len(CLIPS)


def test_input_without_audio_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no audio here")
    with pytest.raises(ConfigError, match="input_uri"):
        plan(str(tmp_path), PlanOptions())
    with pytest.raises(ConfigError, match="does not exist"):
        plan(str(tmp_path / "missing"), PlanOptions())


def test_plan_probes_s3_objects_through_presigned_urls(
    clip_dir: Path, audio_manifest: dict[str, dict], s3_bucket: str
) -> None:
    for name in CLIPS:
        storage.upload_file(clip_dir / name, f"s3://{s3_bucket}/calls/{name}")
    storage.upload_file(clip_dir / CLIPS[1], f"s3://{s3_bucket}/elsewhere/{CLIPS[1]}")
    expected = {n: audio_manifest[n.rsplit(".", 1)[0] + ".wav"]["duration_s"] for n in CLIPS}
    result = plan(f"s3://{s3_bucket}/calls/", PlanOptions(num_shards=3))
    _check_plan(result, expected, num_shards=3)
    assert len(result.files) == len(CLIPS)
    assert all(f.source.startswith(f"s3://{s3_bucket}/calls/") for f in result.files)
    assert all(f.etag for f in result.files)


@pytest.mark.slow
def test_plan_component_under_kfp_local(clip_dir: Path, tmp_path: Path) -> None:
    from kfp import local

    from components.plan.component import plan_op

    local.init(local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    from components.common.shards import read_shard

    task = plan_op(input_uri=str(clip_dir), num_shards=2)
    indices = task.outputs["Output"]
    assert indices == [0, 1]  # the loop's items: shard indices, not file lists
    shards = [read_shard(task.outputs["shards"].path, i) for i in indices]
    manifest = [
        json.loads(line) for line in Path(task.outputs["manifest"].path).read_text().splitlines()
    ]
    planned = [m for m in manifest if m["action"] == PROCESS]
    assert sorted(it.source for shard in shards for it in shard) == sorted(
        m["source"] for m in planned
    )
    assert {m["shard"] for m in planned} == {0, 1}
    assert len(planned) == len(CLIPS) == len(manifest) - 1  # and the reference text, ignored
