"""The ``plan`` step: list the input, probe durations, balance the files onto shards."""
