"""``python -m pipelines``: the ``kfp-asr`` command line."""

import sys

from pipelines.cli import main

sys.exit(main())
