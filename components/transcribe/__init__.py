"""The ``transcribe`` component: Whisper over a shard of audio files, one record per file."""
