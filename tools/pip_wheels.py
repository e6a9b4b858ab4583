"""Fetch wheels with pip (from the index pip is configured for), for the set-up tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def pip_download(dest: Path | str, *packages: str) -> None:
    """Download the binary wheels of ``packages`` (no dependencies) into ``dest``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--only-binary", ":all:", "--dest", str(dest), *packages],
        check=True,
    )  # fmt: skip
