# The project image: every component of kfp-asr-summarize runs on it as a KFP lightweight
# component (the package is installed here, so pods install nothing at start).
#
#   docker build -t registry.example.com/kfp-asr-summarize:0.1.0 .
#   docker build --build-arg WHISPER_MODEL=large-v3 -t …:0.1.0-large-v3 .   # bake weights in
#
# Whisper weights resolve in this order (components/transcribe/weights.py): an explicit
# checkpoint path, the weights baked in here (WHISPER_IMAGE_WEIGHTS), the model cache volume
# the profile mounts (WHISPER_CACHE_DIR), an s3:// object, and only then a download. The
# baked weights live outside the cache folder, so a cache volume never hides them.
#
# The base brings CUDA, cuDNN and a CUDA build of PyTorch (Python 3.11); openai-whisper
# accepts the torch that is already there, so pip adds no second torch.
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

# Optional: a Whisper model name (tiny.en, small, medium, large-v3, turbo, ...) whose
# weights are downloaded at build time into WHISPER_IMAGE_WEIGHTS, for clusters without
# internet (openai-whisper checks the SHA-256).
ARG WHISPER_MODEL=""

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WHISPER_IMAGE_WEIGHTS=/opt/whisper-weights \
    WHISPER_CACHE_DIR=/var/cache/whisper

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin app

WORKDIR /tmp/kfp-asr-summarize
COPY setup.py pyproject.toml README.md ./
COPY components ./components
COPY pipelines ./pipelines
RUN python -m pip install . \
    && python -c "import kfp, whisper, components.transcribe.engine" \
    && cd / && rm -rf /tmp/kfp-asr-summarize

RUN mkdir -p "${WHISPER_IMAGE_WEIGHTS}" "${WHISPER_CACHE_DIR}" \
    && if [ -n "${WHISPER_MODEL}" ]; then \
         python -c "import os, sys; from components.transcribe.weights import download_weights; download_weights(sys.argv[1], os.environ['WHISPER_IMAGE_WEIGHTS'])" "${WHISPER_MODEL}"; \
       fi \
    && chown -R 10001:10001 "${WHISPER_CACHE_DIR}"

USER 10001:10001
WORKDIR /home/app
