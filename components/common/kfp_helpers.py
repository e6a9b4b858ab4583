"""The one place that turns a plain function into a KFP lightweight component.

Components run on the project image, which already holds this package, so KFP installs
nothing at pod start (``install_kfp_package=False``) and air-gapped clusters need no pip.
The image is a compile-time setting: the pipeline builder calls :func:`lightweight` with the
deployment profile's image; tests and ``kfp.local`` use :data:`DEFAULT_IMAGE`.
"""

from __future__ import annotations

from collections.abc import Callable

from kfp import dsl

DEFAULT_IMAGE = "ghcr.io/kfp-asr-summarize/kfp-asr-summarize:0.1.0"


def lightweight(func: Callable, image: str = DEFAULT_IMAGE) -> dsl.component:
    """Wrap ``func`` as a lightweight component that runs on ``image``."""
    return dsl.component(func, base_image=image, install_kfp_package=False)
