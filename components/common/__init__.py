"""Code shared by every component: storage, records, audio probing, subtitles, KFP helpers."""
