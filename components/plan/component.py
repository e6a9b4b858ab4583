"""KFP wrapper of :mod:`components.plan.planner` (no ``from __future__``: KFP reads the types)."""

from kfp.dsl import Dataset, Output

from components.common.kfp_helpers import lightweight


def plan(
    input_uri: str,
    manifest: Output[Dataset],
    shards: Output[Dataset],
    output_uri: str = "",
    num_shards: int = 4,
    reprocess: bool = False,
    whisper_model: str = "",
    language: str = "auto",
) -> list[int]:
    """Check the settings, list the input, skip finished inputs, ignore non-audio objects,
    split the rest into duration-balanced shards.

    Args:
        input_uri: Audio to process: an s3://bucket/prefix/ or a local folder.
        output_uri: Output prefix whose ledger marks finished inputs; empty: no ledger.
        num_shards: Number of shards (parallel transcribe tasks); fewer when fewer files.
        reprocess: Process every input again, even those the ledger marks as finished.
        whisper_model: Whisper model of the run; a language it cannot transcribe (English-only
            model) fails this step before any transcribe pod starts. Empty: not checked.
        language: Spoken language code or name of the run (auto: detect); checked here.

    Returns:
        Output: The shard indices 0 … K-1 (at least one shard, possibly empty): what the
            pipeline loops over, a few bytes whatever the number of inputs.
        shards: JSON Lines, one line per shard, {shard, items}: the items
            {source, name, etag, size} of each shard, heaviest file first; each transcribe
            and summarize task reads its own line.
        manifest: JSON Lines, one object per object under the input (source, name, size,
            etag, duration_s, weight_s, shard, action: process, skip (finished earlier) or
            ignore (not audio), reason of a skip or ignore, step_started_at, step_finished_at).
    """
    import logging

    from components.common.records import stamped, utc_now, write_jsonl
    from components.common.shards import write_shards
    from components.common.whisper_settings import check_language
    from components.plan.planner import PlanOptions
    from components.plan.planner import plan as make_plan

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started_at = utc_now()
    check_language(language, whisper_model)
    options = PlanOptions(num_shards=num_shards, reprocess=reprocess)
    result = make_plan(input_uri, options, output_uri or None)
    write_jsonl(manifest.path, stamped(result.files, started_at, utc_now()))
    return write_shards(shards.path, result.shards)


plan_op = lightweight(plan)
